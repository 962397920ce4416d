"""Contract of an architecture driver (entry-point group ``virtplane.architectures``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from virtplane.testing._base import PluginContract

if TYPE_CHECKING:
    from virtplane.manager import Manager
    from virtplane.model import Cluster, VmSpec

#: Interfaces the core knows for disks; each gets a hot-plug verdict.
DISK_INTERFACES = ("virtio", "virtio-scsi", "sata", "ide", "spapr-vscsi")


class ArchitectureContract(PluginContract):
    """Validates and renders VmSpecs, refuses what it must refuse, reports features.

    Override :attr:`foreign_arch` if your architecture is ``s390x``, and
    :attr:`compat_version` for the cluster level to test at.
    """

    kind = "architecture"
    #: A guest architecture that must be refused in a cluster of this one.
    foreign_arch: ClassVar[str] = "s390x"
    compat_version: ClassVar[str] = "4.8"

    def driver(self, manager: Manager) -> Any:
        self.record(manager)
        return manager.context.drivers.architecture(self.plugin)

    def cluster(self, manager: Manager) -> Cluster:
        # at the kit's level: a cluster is never older than its data center
        manager.datacenters.add("kit-dc", compat_version=self.compat_version)
        return manager.clusters.add("kit-cl", "kit-dc", architecture=self.plugin,
                                   compat_version=self.compat_version)

    def spec(self, manager: Manager, **changes: Any) -> VmSpec:
        """A small VM spec of the architecture's default OS."""
        from virtplane.model import DiskSpec, NicSpec, VmSpec

        drv = self.driver(manager)
        info = manager.arch.os_info(drv.default_os)
        interfaces = info["disk_interfaces"] or ["virtio"]
        nics = info["nic_models"] or ["virtio"]
        low = info["values"].get("resources.minimum.ram", {}).get("value") or 0
        memory = max(1024, int(low))
        memory -= memory % max(1, drv.memory_granularity_mib)
        fields: dict[str, Any] = {
            "name": "kit-vm", "memory_mib": memory, "vcpus": 1,
            "disks": [DiskSpec(name="d0", path="/var/tmp/kit-d0.qcow2",
                               interface="virtio" if "virtio" in interfaces
                                         else interfaces[0])],
            "nics": [NicSpec(name="n0", model=nics[0])],
        }
        fields.update(changes)
        return VmSpec(**fields)

    def render(self, manager: Manager, spec: VmSpec, cluster: Cluster) -> str:
        from virtplane import domxml, drivers

        source = {"type": "file", "source": {"@file": "/var/tmp/kit-d0.qcow2"}}
        domain = domxml.build_domain(spec, "00000000-0000-0000-0000-00000000c0de", [source])
        drivers.apply_architecture(self.driver(manager), spec, cluster, domain)
        return domain.to_xml()

    # ------------------------------------------------------------ the tests

    def test_implements_the_protocol(self, manager: Manager) -> None:
        from virtplane.drivers import ArchitectureDriver

        drv = self.driver(manager)
        assert isinstance(drv, ArchitectureDriver), (
            "the driver lacks members of virtplane.drivers.ArchitectureDriver: " + ", ".join(
                m for m in ("name", "default_os", "memory_granularity_mib", "chipset",
                            "osinfo_files", "disk_hotplug_refusal", "cpu_models",
                            "machine_types", "features", "validate", "customize_domain")
                if not hasattr(drv, m)))
        assert drv.name == self.plugin, (
            f"driver.name is {drv.name!r}; it must equal the entry-point name {self.plugin!r}")
        assert isinstance(drv.memory_granularity_mib, int) and drv.memory_granularity_mib >= 1

    def test_lists_machine_types_and_cpu_models(self, manager: Manager) -> None:
        drv = self.driver(manager)
        machines, cpus = drv.machine_types(), drv.cpu_models()
        assert machines and all(isinstance(m, str) and m for m in machines)
        assert cpus and all(isinstance(c, str) and c for c in cpus)
        assert len(set(cpus)) == len(cpus), "cpu_models() repeats a model"

    def test_osinfo_knows_the_default_os(self, manager: Manager) -> None:
        drv = self.driver(manager)
        for path in drv.osinfo_files():
            assert path.is_file(), f"osinfo_files() names {path}, which does not exist"
        names = [o["name"] for o in manager.arch.os_list(self.plugin)]
        assert drv.default_os in names, (
            f"default_os {drv.default_os!r} is not an OS of architecture {self.plugin!r} in "
            f"osinfo (known: {', '.join(names) or 'none'}); ship it in osinfo_files()")

    def test_features_are_booleans_and_reach_the_cluster_view(self, manager: Manager) -> None:
        drv = self.driver(manager)
        feats = drv.features(self.compat_version)
        assert feats and all(isinstance(k, str) and isinstance(v, bool)
                             for k, v in feats.items()), feats
        listed = {a["name"]: a for a in manager.arch.list(self.compat_version)}
        assert self.plugin in listed
        assert listed[self.plugin]["features"] == manager.arch.features(
            self.plugin, self.compat_version)

    def test_disk_hotplug_verdicts(self, manager: Manager) -> None:
        drv = self.driver(manager)
        for iface in DISK_INTERFACES:
            verdict = drv.disk_hotplug_refusal(iface)
            assert verdict is None or (isinstance(verdict, str) and verdict.strip()), (
                f"disk_hotplug_refusal({iface!r}) = {verdict!r}: return None or the reason")

    def test_default_spec_validates_and_renders(self, manager: Manager) -> None:
        import xml.etree.ElementTree as ET

        cluster = self.cluster(manager)
        spec = self.spec(manager)
        manager.arch.validate(spec, cluster)
        root = ET.fromstring(self.render(manager, spec, cluster))
        ostype = root.find("os/type")
        assert ostype is not None and ostype.get("arch"), "render() set no <os><type arch=...>"
        machine = ostype.get("machine")
        allowed = self.driver(manager).machine_types()
        assert machine is None or any(machine == m or machine.startswith(m) for m in allowed), (
            f"rendered machine {machine!r} is not among machine_types() {allowed}")
        assert root.findtext("name") == "kit-vm"

    def test_every_listed_machine_type_validates(self, manager: Manager) -> None:
        cluster = self.cluster(manager)
        for machine in self.driver(manager).machine_types():
            manager.arch.validate(self.spec(manager, machine=machine), cluster)

    @pytest.mark.parametrize("field,value", [
        ("machine", "kit-no-such-machine"),
        ("cpu_model", "kit-no-such-cpu"),
    ])
    def test_refuses_unknown_values_and_names_them(self, manager: Manager, field: str,
                                                   value: str) -> None:
        from virtplane.errors import InvalidInput

        cluster = self.cluster(manager)
        with pytest.raises(InvalidInput, match=value):
            manager.arch.validate(self.spec(manager, **{field: value}), cluster)

    def test_refuses_a_foreign_guest_architecture(self, manager: Manager) -> None:
        from virtplane.errors import InvalidInput

        cluster = self.cluster(manager)
        with pytest.raises(InvalidInput, match=self.foreign_arch):
            manager.arch.validate(self.spec(manager, arch=self.foreign_arch), cluster)

    def test_refuses_memory_below_the_os_minimum(self, manager: Manager) -> None:
        from virtplane.errors import InvalidInput

        cluster = self.cluster(manager)
        with pytest.raises(InvalidInput, match="memory|RAM|ram"):
            manager.arch.validate(self.spec(manager, memory_mib=1), cluster)

