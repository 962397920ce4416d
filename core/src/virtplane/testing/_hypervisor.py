"""Contract of a hypervisor driver (entry-point group ``virtplane.hypervisors``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from virtplane.testing._base import PluginContract

if TYPE_CHECKING:
    from virtplane.manager import Manager
    from virtplane.model import Host, VmSpec


class HypervisorContract(PluginContract):
    """Host discovery, VM lifecycle and stats against a host the kit can reach.

    Provide the ``host_uri`` fixture (libvirt's ``test:///default`` for a
    libvirt-based driver, a lab host or a local simulator otherwise). The
    cluster uses :attr:`architecture`, whose plugin must be installed too.
    Override :meth:`prepare_host` when a host needs set-up before VMs start,
    and :meth:`vm_spec` when your hypervisor needs more than a diskless VM.
    Name in :attr:`unsupported` what the hypervisor cannot do (``"hibernate"``,
    ``"pause"``, ``"reboot"``); the kit then checks it is refused clearly
    instead of checking that it works.
    """

    kind = "hypervisor"
    architecture: ClassVar[str] = "x86_64"
    unsupported: ClassVar[frozenset[str]] = frozenset()

    @pytest.fixture
    def host_uri(self) -> str:
        """The URI of a host to test against; override in your test class."""
        pytest.fail(f"{type(self).__name__}: define a `host_uri` fixture returning the URI "
                    "of a host the kit can reach")

    @pytest.fixture
    def host(self, manager: Manager, host_uri: str) -> Host:
        self.record(manager)
        if self.architecture not in manager.loaded("architecture"):
            pytest.fail(f"the hypervisor contract needs the {self.architecture!r} architecture "
                        "plugin installed (set `architecture` to one that is)")
        manager.datacenters.add("kit-dc")
        manager.clusters.add("kit-cl", "kit-dc", architecture=self.architecture)
        host = manager.hosts.add("kit-host", "kit-cl", host_uri, driver=self.plugin)
        self.prepare_host(manager, host)
        return host

    def prepare_host(self, manager: Manager, host: Host) -> None:
        """Set the host up before VMs start (default: nothing)."""

    def vm_spec(self, name: str) -> VmSpec:
        """The VM the lifecycle tests run (default: 256 MiB, one vCPU, no disks)."""
        from virtplane.model import VmSpec

        return VmSpec(name=name, memory_mib=256, vcpus=1)

    def connection(self, manager: Manager, host: Host) -> Any:
        return manager.hosts.connection(host)

    def running(self, manager: Manager, name: str = "kit-vm") -> Any:
        manager.vms.create(self.vm_spec(name), "kit-cl")
        return manager.vms.start(name)

    def refused_or_done(self, feature: str, action: Any) -> bool:
        """Run ``action``; True when it worked. For an :attr:`unsupported` feature it must
        raise a virtplane error instead, and False is returned."""
        from virtplane.errors import VirtplaneError

        if feature not in self.unsupported:
            action()
            return True
        with pytest.raises(VirtplaneError):
            action()
        return False

    # ------------------------------------------------------------ the tests

    def test_implements_the_protocol(self, manager: Manager, host: Host) -> None:
        from virtplane.drivers import HypervisorDriver

        cls = manager.plugins.driver("hypervisor", self.plugin)
        factory = manager.context.drivers.hypervisor(self.plugin)
        assert callable(getattr(factory, "connect", None)), (
            f"{cls.__name__} has no connect(uri) returning a host connection")
        conn = self.connection(manager, host)
        assert isinstance(conn, HypervisorDriver), (
            "the connection lacks HypervisorDriver members: " + ", ".join(
                m for m in ("capabilities", "host_stats", "adapt_domain", "start", "shutdown",
                            "destroy", "pause", "resume", "reboot", "save", "restore",
                            "state", "all_vm_stats", "attach_device", "detach_device",
                            "update_device", "live_xml", "snapshot_disks", "ping", "close")
                if not hasattr(conn, m)))

    def test_host_capabilities_and_stats(self, manager: Manager, host: Host) -> None:
        from virtplane.model import HostStatus

        assert host.status == HostStatus.UP, host.status_reason
        conn = self.connection(manager, host)
        caps = conn.capabilities()
        assert isinstance(caps, dict) and caps, "capabilities() must be a non-empty dict"
        json.dumps(caps)  # stored in the state file: must be JSON
        archs = caps.get("guest_arches")
        assert caps.get("accepts_any_arch") or (archs and self.architecture in archs), (
            f"capabilities() lists guest_arches {archs!r}; the host must offer "
            f"{self.architecture!r} (or say accepts_any_arch)")
        stats = manager.hosts.stats("kit-host")
        assert isinstance(stats, dict) and stats
        json.dumps(stats)
        conn.ping()

    def test_start_stats_and_stop(self, manager: Manager, host: Host) -> None:
        from virtplane.model import VmStatus

        vm = self.running(manager)
        assert vm.status == VmStatus.UP and vm.host_id == host.id
        conn = self.connection(manager, host)
        assert conn.state("kit-vm")[0] == "Up"
        assert conn.live_xml("kit-vm").strip()
        stats = manager.vms.stats("kit-vm")
        assert stats["name"] == "kit-vm"
        json.dumps(stats)
        names = [s["name"] for s in manager.vms.all_stats("kit-host")]
        assert "kit-vm" in names
        manager.vms.destroy("kit-vm")
        assert manager.vms.get("kit-vm").status == VmStatus.DOWN
        assert conn.state("kit-vm")[0] == "Down"
        assert "kit-vm" not in [s["name"] for s in conn.all_vm_stats()]

    def test_graceful_shutdown(self, manager: Manager, host: Host) -> None:
        from virtplane.model import VmStatus

        self.running(manager)
        assert manager.vms.shutdown("kit-vm", timeout=10) in ("shutdown", "destroyed")
        assert manager.vms.get("kit-vm").status == VmStatus.DOWN
        assert self.connection(manager, host).state("kit-vm")[0] == "Down"

    def test_pause_resume_reboot(self, manager: Manager, host: Host) -> None:
        from virtplane.model import VmStatus

        self.running(manager)
        conn = self.connection(manager, host)
        if self.refused_or_done("pause", lambda: manager.vms.pause("kit-vm")):
            assert manager.vms.get("kit-vm").status == VmStatus.PAUSED
            assert conn.state("kit-vm")[0] == "Paused"
            manager.vms.resume("kit-vm")
        assert manager.vms.get("kit-vm").status == VmStatus.UP
        assert conn.state("kit-vm")[0] == "Up"
        self.refused_or_done("reboot", lambda: manager.vms.reboot("kit-vm"))
        assert manager.vms.get("kit-vm").status == VmStatus.UP
        manager.vms.destroy("kit-vm")

    def test_hibernate_and_restore(self, manager: Manager, host: Host) -> None:
        from virtplane.model import VmStatus

        self.running(manager)
        conn = self.connection(manager, host)
        if self.refused_or_done("hibernate", lambda: manager.vms.hibernate("kit-vm")):
            assert conn.state("kit-vm")[0] == "Down"
            manager.vms.restore("kit-vm")
            assert conn.state("kit-vm")[0] == "Up"
        assert manager.vms.get("kit-vm").status == VmStatus.UP
        manager.vms.destroy("kit-vm")

    def test_two_vms_side_by_side(self, manager: Manager, host: Host) -> None:
        self.running(manager, "kit-a")
        self.running(manager, "kit-b")
        names = {s["name"] for s in manager.vms.all_stats("kit-host")}
        assert {"kit-a", "kit-b"} <= names
        manager.vms.destroy("kit-a")
        assert self.connection(manager, host).state("kit-b")[0] == "Up"
        manager.vms.destroy("kit-b")

    def test_failed_start_leaves_nothing_defined(self, manager: Manager, host: Host) -> None:
        from virtplane.errors import VirtplaneError

        conn = self.connection(manager, host)
        with pytest.raises(VirtplaneError):
            conn.start("kit-broken", "this is not a VM definition <")
        assert conn.state("kit-broken")[0] == "Down"
        assert "kit-broken" not in [s["name"] for s in conn.all_vm_stats()]

    def test_unknown_vm(self, manager: Manager, host: Host) -> None:
        from virtplane.errors import VirtplaneError

        conn = self.connection(manager, host)
        assert conn.state("kit-no-such-vm")[0] == "Down"
        with pytest.raises(VirtplaneError, match="kit-no-such-vm"):
            conn.destroy("kit-no-such-vm")
