"""Hook administration: which implementations and scripts serve each point, and dry runs."""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Protocol, runtime_checkable

from virtplane import domxml, hookspecs, model
from virtplane.errors import InvalidInput
from virtplane.payloads import XmlPayload
from virtplane.services.context import Context
from virtplane.services.vm_xml import device_alias
from virtplane.services.vms import Vms


@runtime_checkable
class ScriptRunner(Protocol):
    """A hook plugin that runs external scripts (the hook-scripts plugin)."""

    def describe_hook_point(self, point: str) -> list[dict[str, Any]]:
        """The scripts installed for a point."""

    def run(self, point: str, dry_run: bool = False, **kwargs: Any) -> Any:
        """Run a point's scripts; with ``dry_run`` nothing outside the payload changes."""


def _specs() -> dict[str, Any]:
    return {name: spec for name, spec in vars(hookspecs).items()
            if inspect.isfunction(spec) and hasattr(spec, "virtplane_spec")}


class HookAdmin:
    """What ``virtplane hooks list`` and ``hooks run --dry-run`` show."""

    def __init__(self, ctx: Context, vms: Vms) -> None:
        self.ctx = ctx
        self.vms = vms

    def describe(self) -> list[dict[str, Any]]:
        """Every hook point with its policy, in-process implementations and scripts."""
        from virtplane.plugins import fails_operation

        out = []
        for point in _specs():
            impls = []
            for impl in self.ctx.hooks.impls(point):
                entry: dict[str, Any] = {"plugin": impl.plugin_name}
                if isinstance(impl.plugin, ScriptRunner):
                    entry["scripts"] = impl.plugin.describe_hook_point(point)
                impls.append(entry)
            out.append({"point": point, "fails_operation": fails_operation(point),
                        "implementations": impls})
        return out

    def dry_run(self, point: str, vm_name: str, run_scripts: bool = False) -> list[
            dict[str, Any]]:
        """Run a point's implementations on a copy of a VM's XML without the operation.

        In-process implementations run against a copy of the payload; hook
        scripts are programs with side effects, so they run only with
        ``run_scripts`` (and are reported as skipped otherwise). Returns one step
        per implementation or script: who, whether it ran, the unified diff of
        pretty-printed XML it produced (each script's own), and its error if it
        failed. Nothing is started and nothing is stored.

        A device point runs, as in the operation, once per disk or NIC with custom
        properties (exact alias match, :meth:`Vms.device_hook`); each step names its
        device (``device``, and `` on device ua-NAME`` in ``by``). With no such
        device every implementation is reported as not run.
        """
        spec = _specs().get(point)
        if spec is None:
            raise InvalidInput(f"no hook point named {point!r}; see `virtplane hooks list`")
        args = set(inspect.signature(spec).parameters)
        if not args & {"domxml", "devxml"}:
            raise InvalidInput(f"{point} carries no XML; dry runs work on XML points "
                               "(before_vm_start, before_device_create ...)")
        vm = self.vms.get(vm_name)
        if vm.status != model.VmStatus.DOWN and vm.host_id:
            _host, conn = self.vms.host_of(vm)
            xml = conn.live_xml(vm.name)
        else:
            xml = self.vms.domain_xml(vm, self.vms.pick_host(vm, None))
        if "devxml" in args:
            payloads = self._device_payloads(vm, xml)
            if not payloads:
                return [{"by": impl.plugin_name, "ran": False, "rc": 0, "error": "",
                         "diff": [], "device": None,
                         "note": f"no disk or NIC of VM {vm.name!r} has custom properties; "
                                 "device points run only for those (as VDSM's), so the "
                                 "operation runs none"}
                        for impl in self.ctx.hooks.impls(point)]
        else:
            payloads = [(None, XmlPayload(xml))]
        extras = {"from_snapshot": False, "destination": "", "source": "", "vcpus":
                  vm.spec.vcpus, "params": {}, "error": "", "host": None}
        steps: list[dict[str, Any]] = []
        for alias, payload in payloads:
            kwargs = {"vm": vm, ("devxml" if "devxml" in args else "domxml"): payload,
                      **{k: v for k, v in extras.items() if k in args}}
            on = "" if alias is None else f" on device {alias}"
            for impl in self.ctx.hooks.impls(point):
                if isinstance(impl.plugin, ScriptRunner):
                    if not run_scripts:
                        steps.append({"by": impl.plugin_name + on, "ran": False, "rc": 0,
                                      "error": "", "diff": [], "device": alias,
                                      "note": "scripts not run (they are programs with side "
                                              "effects); pass --run-scripts to run them"})
                        continue
                    result = impl.plugin.run(point, dry_run=True, **kwargs)
                    for res in result.scripts if result else []:
                        steps.append({"by": f"{impl.plugin_name}:{res.path}{on}", "ran": True,
                                      "diff": res.diff, "rc": res.rc, "device": alias,
                                      "error": res.stderr if res.rc else ""})
                    if result:
                        payload.xml = result.payload
                    continue
                before = payload.xml
                error = ""
                try:
                    impl.function(*[kwargs[a] for a in impl.argnames])
                except Exception as exc:  # noqa: BLE001 - a dry run reports, never raises
                    error = f"{type(exc).__name__}: {exc}"
                steps.append({"by": impl.plugin_name + on, "ran": True, "device": alias,
                              "rc": 1 if error else 0, "error": error,
                              "diff": _diff(before, payload.xml, impl.plugin_name)})
        return steps

    def _device_payloads(self, vm: model.Vm, xml: str) -> list[tuple[str | None, XmlPayload]]:
        """The devices a device point runs for, as the operation picks them
        (:meth:`Vms.device_hook`): the disks and NICs with custom properties, matched by
        their exact alias; each with that alias."""
        wanted = self.vms._devices_with_properties(vm)
        out: list[tuple[str | None, XmlPayload]] = []
        for _tag, dev in domxml.devices_xml(xml):
            alias = device_alias(dev)
            if alias in wanted:
                out.append((alias, XmlPayload(dev)))
        return out


def _pretty(xml: str) -> list[str]:
    from xml.dom import minidom
    from xml.parsers.expat import ExpatError

    try:
        text = minidom.parseString(xml).toprettyxml(indent="  ")
    except ExpatError:
        return xml.splitlines()
    return [line for line in text.splitlines() if line.strip()][1:]


def _diff(before: str, after: str, who: str) -> list[str]:
    """A unified diff of pretty-printed XML (one-line documents diff as one line)."""
    return list(difflib.unified_diff(_pretty(before), _pretty(after), "before", who,
                                     lineterm=""))
