"""Contract of a hook plugin (entry-point group ``virtplane.hooks``)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from virtplane.testing._base import PluginContract

if TYPE_CHECKING:
    from virtplane.manager import Manager

DOMAIN = ("<domain type='kvm'><name>kit-vm</name><uuid>00000000-0000-0000-0000-00000000c0de"
          "</uuid><memory unit='KiB'>262144</memory><vcpu>1</vcpu><os><type arch='x86_64'>"
          "hvm</type></os><devices/></domain>")
DEVICE = "<interface type='network'><source network='default'/><model type='virtio'/></interface>"


class HookPluginContract(PluginContract):
    """Hook implementations match the specs, use nothing deprecated, and run.

    Every implementation is called once with sample arguments
    (:meth:`sample_arguments`); it may veto (``HookVeto``) but must not crash.
    """

    kind = "hooks"

    def implementations(self, manager: Manager) -> list[tuple[str, Any]]:
        """``(hook name, HookImpl)`` of the plugin under test."""
        rec = self.record(manager)
        plugin = rec.objects.get("hooks_instance", rec.objects.get("hooks"))
        assert plugin is not None, f"plugin {self.plugin!r} is {rec.status}: {rec.reason}"
        out = []
        for caller in manager.plugins.pm.get_hookcallers(plugin) or []:
            out += [(caller.name, i) for i in caller.get_hookimpls() if i.plugin is plugin]
        return sorted(out, key=lambda x: x[0])

    def sample_arguments(self, manager: Manager) -> dict[str, Any]:
        """An argument for every name a hook spec uses."""
        from virtplane import model
        from virtplane.payloads import JsonPayload, XmlPayload
        from virtplane.plugins import DaemonContext

        spec = model.VmSpec(name="kit-vm", memory_mib=256)
        cluster = model.Cluster(name="kit-cl", datacenter_id="kit-dc")
        return {
            "vm": model.Vm(spec=spec, cluster_id=cluster.id),
            "spec": spec,
            "cluster": cluster,
            "host": model.Host(name="kit-host", cluster_id=cluster.id, driver="kvm",
                               uri="test:///default"),
            "domain": model.StorageDomain(name="kit-sd", type="localfs"),
            "domxml": XmlPayload(DOMAIN),
            "devxml": XmlPayload(DEVICE),
            "payload": JsonPayload({"kit": True}),
            "caps": {"arch": "x86_64"},
            "features": {"live_migration": True},
            "params": {"protocol": "vnc", "password": "kit"},
            "from_snapshot": False,
            "vcpus": 2,
            "error": "kit: sample failure",
            "reason": "kit: sample reason",
            "destination": "test:///default",
            "source": "test:///default",
            "arch": "x86_64",
            "compat_version": "4.8",
            "context": DaemonContext.of(manager),
            "manager": manager,
        }

    # ------------------------------------------------------------ the tests

    def test_implements_hooks(self, manager: Manager) -> None:
        assert self.implementations(manager), f"{self.plugin!r} implements no hook"

    def test_arguments_match_the_specs(self, manager: Manager) -> None:
        from virtplane import hookspecs

        for name, impl in self.implementations(manager):
            spec = hookspecs.specs().get(name)
            if spec is None:
                assert impl.optionalhook, f"{name} is not a hook of this core"
                continue
            allowed = list(inspect.signature(spec).parameters)
            extra = [a for a in impl.argnames if a not in allowed]
            assert not extra, f"{name} takes {extra}; the spec has only {allowed}"
            assert not (impl.hookwrapper or impl.wrapper), f"{name} is a wrapper"

    def test_uses_no_deprecated_argument(self, manager: Manager) -> None:
        from virtplane.plugins import _compat

        rec = self.record(manager)
        plugin = rec.objects.get("hooks_instance", rec.objects.get("hooks"))
        uses = _compat.deprecated_uses(manager.plugins.pm, plugin)
        assert uses == [], f"{self.plugin!r} takes deprecated hook arguments: {'; '.join(uses)}"

    def test_every_implementation_runs(self, manager: Manager) -> None:
        from virtplane import hookspecs
        from virtplane.errors import HookVeto
        from virtplane.plugins import fails_operation

        samples = self.sample_arguments(manager)
        for name, impl in self.implementations(manager):
            args = [samples[a] for a in impl.argnames]
            try:
                result = impl.function(*args)
            except HookVeto as veto:
                assert fails_operation(name), (
                    f"{name} vetoed ({veto}), but its spec declares Policy."
                    f"{hookspecs.policy_of(name).name}: only Policy.FAIL points can be vetoed")
                continue
            if name.startswith("validate_"):
                assert result is None or (isinstance(result, list) and all(
                    isinstance(m, str) for m in result)), (
                    f"{name} returned {result!r}: return None or a list of messages")
