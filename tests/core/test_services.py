"""The services layer: the operation skeleton, typed driver contracts, logged hook failures."""

from __future__ import annotations

import logging
import types
import warnings

import pytest

from tests.libvirt_hosts import forget_test_domains
from virtplane import HookVeto, drivers, hookimpl, model
from virtplane.capabilities import HostCapabilities
from virtplane.errors import HypervisorError, InvalidInput
from virtplane.hookspecs import VirtplaneDeprecationWarning


@pytest.fixture
def m(manager_factory, tmp_path):
    m = manager_factory()
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    m.hosts.add("h1", "cl1", "test:///default")
    m.storage.add("data1", "localfs", "dc1", {"path": str(tmp_path / "sd")})
    yield m
    forget_test_domains(vm.name for vm in m.vms.list())


def _plugin(name: str, **hooks):
    mod = types.ModuleType(name)
    for point, fn in hooks.items():
        setattr(mod, point, hookimpl(fn))
    return mod


def test_hook_failure_at_close_is_logged_not_lost(m, caplog):
    def after_vdsm_stop():
        raise RuntimeError("flush failed")

    m.plugins.pm.register(_plugin("closer", after_vdsm_stop=after_vdsm_stop), name="closer")
    with caplog.at_level(logging.ERROR, logger="virtplane"):
        m.close()
    assert any("after_vdsm_stop" in r.getMessage() and "flush failed" in r.getMessage()
               and "closer" in r.getMessage() for r in caplog.records)


OPENER = '''
from virtplane import hookimpl

VIRTPLANE_PLUGIN_API = ">=2.0,<3"


class Hooks:
    VIRTPLANE_PLUGIN_API = VIRTPLANE_PLUGIN_API

    def __init__(self, settings=None):
        self.settings = settings

    @hookimpl
    def before_vdsm_start(self, context):
        raise RuntimeError("warm-up failed")
'''


def test_hook_failure_at_open_is_logged_not_lost(plugin_site, manager_factory, caplog):
    plugin_site.add("virtplane-opener", {"virtplane_opener/__init__.py": OPENER},
                    {"virtplane.hooks": {"opener": "virtplane_opener:Hooks"}})
    with caplog.at_level(logging.ERROR, logger="virtplane"):
        m = manager_factory()
    assert m.plugins.records["opener"].status == "loaded", m.plugins.records["opener"].reason
    assert any("before_vdsm_start" in r.getMessage() and "warm-up failed" in r.getMessage()
               and "opener" in r.getMessage() for r in caplog.records), caplog.text
    # the open went on: the Manager works
    assert m.datacenters.add("dc1").name == "dc1"


def test_veto_leaves_status_and_records_the_failure(m):
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "cl1")
    m.vms.start("vm1")

    def before_vm_pause(vm, domxml):
        raise HookVeto("not now")

    m.plugins.pm.register(_plugin("veto", before_vm_pause=before_vm_pause), name="veto")
    with pytest.raises(Exception, match="not now"):
        m.vms.pause("vm1")
    assert m.vms.get("vm1").status == model.VmStatus.UP


def test_failed_hibernate_restores_status_runs_undo_and_fires_nothing_after(m, monkeypatch):
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "cl1")
    m.vms.start("vm1")
    seen = []

    def after_vm_hibernate(vm):
        seen.append("after")

    m.plugins.pm.register(_plugin("watch", after_vm_hibernate=after_vm_hibernate), name="w")
    conn = m.hosts.connection(m.hosts.get("h1"))

    def broken_save(name, path):
        assert name in m.context.expected_stops  # the event thread must ignore this stop
        raise HypervisorError("disk full while saving")

    monkeypatch.setattr(conn, "save", broken_save)
    with pytest.raises(HypervisorError, match="disk full"):
        m.vms.hibernate("vm1")
    vm = m.vms.get("vm1")
    assert vm.status == model.VmStatus.UP and vm.saved_state is None
    assert "vm1" not in m.context.expected_stops  # the undo stack ran
    assert seen == []
    assert any("hibernate failed: disk full" in msg for _t, _l, msg in m.vms.events("vm1"))


def test_failed_snapshot_removes_the_new_layers(m, monkeypatch):
    dom = m.storage.get("data1")
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256, disks=[
        model.DiskSpec(name="a", size_bytes=1 << 20, domain_id=dom.id),
        model.DiskSpec(name="b", size_bytes=1 << 20, domain_id=dom.id)]), "cl1")
    m.vms.start("vm1")
    conn = m.hosts.connection(m.hosts.get("h1"))

    def broken(name, switch, memory_path):
        raise HypervisorError("snapshot refused by the hypervisor")

    monkeypatch.setattr(conn, "snapshot_disks", broken)
    with pytest.raises(HypervisorError):
        m.snapshots.take("vm1", "s1")
    for disk in m.vms.get("vm1").spec.disks:
        assert len(m.store.get(model.Image, disk.image_id).volumes) == 1
    assert m.storage.verify("data1") == []


def test_flat_methods_warn_and_delegate(m):
    with pytest.warns(VirtplaneDeprecationWarning, match=r"Manager.list_vms is deprecated; "
                                                         r"use Manager.vms.list"):
        assert m.list_vms() == []
    with pytest.raises(AttributeError, match="no attribute 'start_vmm'"):
        m.start_vmm  # noqa: B018 - a typo is an AttributeError, not a silent None


def test_services_are_typed_and_public(m):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arch = m.context.drivers.architecture("x86_64")
        assert isinstance(arch, drivers.ArchitectureDriver)
        conn = m.hosts.connection(m.hosts.get("h1"))
        assert isinstance(conn, drivers.HypervisorConnection)
        assert isinstance(conn, drivers.SupportsEvents)


def test_legacy_capabilities_read_both_memory_spellings():
    assert HostCapabilities.from_legacy({"memory_mib": 2048}).memory_mib == 2048
    assert HostCapabilities.from_legacy({"memory_bytes": 3 << 30}).memory_mib == 3072
    caps = HostCapabilities.from_legacy({"arch": "x86_64", "guest_arches": ["x86_64"],
                                         "accepts_any_arch": True, "numa": 1})
    assert caps.any_guest_arch and caps.extra == {"numa": 1}
    assert HostCapabilities.of(caps.to_payload()) == caps
    assert HostCapabilities.memory_of({"memory_bytes": 3 << 30}) == 3072
    assert HostCapabilities.memory_of(caps) == 0 and HostCapabilities.memory_of({}) == 0


def test_a_misspelt_optional_member_is_reported():
    class Typo:
        def connect(self, domain): ...

        def import_volumes(self, domain, image, volume, path): ...  # for import_volume

    assert drivers.undeclared_members(Typo(), "storage") == ["import_volumes"]


def test_optional_driver_attributes_are_declared_and_typed():
    class Arch:
        name, default_os, memory_granularity_mib = "a", "other", 1
        max_vcpus = 64

        def compat_versions(self):
            return ["4.8"]

        max_vcpu = 64  # for max_vcpus

    class Conn:
        live_snapshots = False
        live_snapshot = False  # for live_snapshots

        def adapt_domian(self, domain, arch, virt_type): ...  # for adapt_domain

    assert drivers.undeclared_members(Arch(), "architecture") == ["max_vcpu"]
    assert drivers.undeclared_members(Conn(), "hypervisor") == ["adapt_domian", "live_snapshot"]
    # what belongs to another kind is reported too
    assert drivers.undeclared_members(Arch(), "hypervisor") == [
        "compat_versions", "default_os", "max_vcpu", "max_vcpus", "memory_granularity_mib"]
    assert isinstance(Arch(), drivers.DeclaresVcpuLimit)
    assert isinstance(Arch(), drivers.SupportsCompatVersions)
    assert isinstance(Conn(), drivers.DeclaresLiveSnapshots)
    assert not isinstance(Conn(), drivers.AdaptsDomain)
    assert drivers.live_snapshots(Conn()) is False and drivers.live_snapshots(object()) is True
    assert drivers.memory_granularity_mib(Arch()) == 1
    assert drivers.memory_granularity_mib(object()) == 1  # a 1.x driver without it


def test_first_party_drivers_declare_their_optional_attributes(m):
    for name in m.loaded("architecture"):  # max_vcpus, compat_versions() are declared
        drv = m.context.drivers.architecture(name)
        assert drivers.undeclared_members(drv, "architecture") == [], name
    from virtplane_ovm3.driver import Ovm3Connection

    conn = object.__new__(Ovm3Connection)
    assert isinstance(conn, drivers.DeclaresLiveSnapshots) and not drivers.live_snapshots(conn)
    assert "live_snapshots" not in drivers.undeclared_members(conn, "hypervisor")


def test_the_core_probes_no_optional_driver_member_by_name():
    """Optional members are asked with ``isinstance`` on a declared protocol
    (:mod:`virtplane.drivers`), so mypy checks the calls and the kit's
    ``undeclared_members`` knows them."""
    import re
    from pathlib import Path

    import virtplane

    core = Path(virtplane.__file__).parent
    probe = re.compile(r"(getattr|hasattr)\((conn|drv|driver|arch|factory), *[\"']")
    found = [f"{p.relative_to(core)}:{n}" for p in sorted(core.rglob("*.py"))
             if "testing" not in p.parts
             for n, line in enumerate(p.read_text().splitlines(), 1) if probe.search(line)]
    assert found == []


def test_vcpus_of_a_down_vm_change_for_the_next_start(m):
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "cl1")
    assert m.devices.set_vcpus("vm1", 2).spec.vcpus == 2
    with pytest.raises(InvalidInput, match="at least one vCPU"):
        m.devices.set_vcpus("vm1", 0)


def test_cli_vcpus_and_memory_verbs(cli):
    assert cli("dc", "add", "dc1")[0] == 0
    assert cli("cluster", "add", "cl1", "--dc", "dc1")[0] == 0
    assert cli("host", "add", "h1", "test:///default", "--cluster", "cl1")[0] == 0
    rc, out, err = cli("vm", "create", "v", "--cluster", "cl1", "--memory", "256",
                       "--max-memory", "1024", "--max-vcpus", "4")
    assert rc == 0, err
    rc, out, err = cli("vm", "vcpus", "v", "2")
    assert rc == 0 and "2 vCPUs" in out, err
    rc, out, err = cli("vm", "vcpus", "v", "0")
    assert rc == 1 and "at least one vCPU" in err
    rc, out, err = cli("vm", "memory-plug", "v", "256M")
    assert rc == 1 and "is Down; memory hotplug needs Up or Paused" in err
    rc, out, err = cli("vm", "memory-plug", "v", "lots")
    assert rc != 0 and "Traceback" not in err


def test_snapshot_and_vcpu_events_carry_ovirts_codes(m):
    """Events of snapshots and vCPU changes carry their oVirt audit codes (68, 356, 2033)
    like the lifecycle events do."""
    from virtplane.events import Code

    dom = m.storage.get("data1")
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256, disks=[
        model.DiskSpec(name="d1", size_bytes=1 << 20, domain_id=dom.id)]), "cl1")
    start = m.store.last_event_seq()
    m.snapshots.take("vm1", "s1")
    m.devices.set_vcpus("vm1", 2)
    m.snapshots.delete("vm1", "s1")
    codes = {(msg.split(" (")[0], code) for _seq, _ts, _obj, _lvl, msg, code, _cid
             in m.store.events_since(start)}
    assert ("snapshot s1 taken", Code.SNAPSHOT_TAKEN) in codes
    assert ("vCPUs set to 2", Code.VM_CPUS_SET) in codes
    assert ("snapshot s1 deleted", Code.SNAPSHOT_DELETED) in codes
