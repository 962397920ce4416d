"""Live migration between two real libvirt hosts on one machine.

Host 2 is a second libvirtd in its own mount namespace (tools/start-second-host.sh).
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.conftest import need
from tests.libvirt_hosts import H1, H2, reachable, running
from virtplane import model
from virtplane.errors import HookError, HypervisorError, InvalidInput

pytestmark = pytest.mark.integration


@pytest.fixture
def two_hosts(manager_factory):
    need(reachable(H1), f"libvirtd not reachable at {H1} (tools/start-daemons.sh)")
    need(reachable(H2), f"second libvirtd not reachable at {H2} (tools/start-second-host.sh)")
    from tests.kvm.conftest import Recorder

    rec = Recorder()
    m = manager_factory()
    m.plugins.pm.register(rec.module, name="recorder")
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    m.clusters.add("other", "dc1")
    m.hosts.add("h1", "cl1", H1)
    m.hosts.add("h2", "cl1", H2)
    m.hosts.add("h3", "other", H2)
    rec.take()
    yield m, rec
    for vm in m.vms.list():
        if vm.status != model.VmStatus.DOWN and vm.host_id:
            m.vms.destroy(vm.name)


def test_live_migration_moves_a_running_guest(two_hosts):
    m, rec = two_hosts
    name = f"vp-mig-{os.getpid()}"
    # device hooks fire for devices with custom properties only (as in VDSM): give one NIC some
    m.vms.create(model.VmSpec(name=name, memory_mib=256, nics=[
        model.NicSpec(name="n0", network="user", custom_properties={"vp_mark": "1"}),
        model.NicSpec(name="n1", network="user")]), "cl1")
    m.vms.start(name)
    rec.take()
    seen: list[float] = []
    m.migrations.migrate(name, "h2", bandwidth_mib=1000, max_downtime_ms=500, progress=seen.append)
    assert name in running(H2) and name not in running(H1)
    vm = m.vms.get(name)
    assert vm.host_id == m.store.find(model.Host, "h2").id and vm.status == model.VmStatus.UP
    assert seen and seen[-1] == 100.0
    calls = rec.take()
    assert [c for c in calls if "_vm_" in c] == [
        "before_vm_migrate_source", "before_vm_migrate_destination",
        "after_vm_migrate_source", "after_vm_migrate_destination"]
    # device hooks run once per device with custom properties (n0, not n1), on both sides
    per_device = {c: calls.count(c) for c in calls if "_device_" in c}
    assert per_device == {"before_device_migrate_source": 1,
                          "before_device_migrate_destination": 1,
                          "after_device_migrate_source": 1, "after_device_migrate_destination": 1}
    # and it keeps working on its new host
    m.vms.pause(name)
    m.vms.resume(name)
    assert m.vms.stats(name)["status"] == "Up"
    m.vms.destroy(name)
    m.vms.remove(name)


def test_cancelled_migration_leaves_the_guest_on_its_source(two_hosts):
    m, rec = two_hosts
    name = f"vp-mig-cancel-{os.getpid()}"
    m.vms.create(model.VmSpec(name=name, memory_mib=256), "cl1")
    m.vms.start(name)
    cancel = threading.Event()
    progress: list[float] = []

    def on_progress(p: float) -> None:
        progress.append(p)
        cancel.set()  # cancel as soon as data is moving

    t0 = time.monotonic()
    with pytest.raises(HypervisorError, match="was cancelled"):
        m.migrations.migrate(name, "h2", bandwidth_mib=1, progress=on_progress, cancel=cancel)
    assert time.monotonic() - t0 < 60
    assert progress, "the migration never reported progress"
    assert name in running(H1) and name not in running(H2)
    vm = m.vms.get(name)
    assert vm.host_id == m.store.find(model.Host, "h1").id
    assert vm.status == model.VmStatus.UP
    assert any("migration to h2 failed" in e[2] for e in m.vms.events(name))
    m.vms.destroy(name)
    m.vms.remove(name)


def test_migration_refusals(two_hosts):
    m, rec = two_hosts
    name = f"vp-mig-ref-{os.getpid()}"
    m.vms.create(model.VmSpec(name=name, memory_mib=256), "cl1")
    m.vms.start(name)
    with pytest.raises(InvalidInput, match="not in the VM's cluster"):
        m.migrations.migrate(name, "h3")
    with pytest.raises(InvalidInput, match="already runs on 'h1'"):
        m.migrations.migrate(name, "h1")
    rec.veto["before_vm_migrate_source"] = "maintenance window closed"
    with pytest.raises(HookError, match="maintenance window closed"):
        m.migrations.migrate(name, "h2")
    assert name in running(H1) and m.vms.get(name).status == model.VmStatus.UP
    m.vms.destroy(name)
    m.vms.remove(name)


def test_host_goes_nonresponsive_and_comes_back_after_a_libvirtd_restart(two_hosts):
    import subprocess
    from pathlib import Path

    m, rec = two_hosts
    assert m.hosts.check("h2").status == model.HostStatus.UP
    root = Path(__file__).resolve().parents[2]
    pidfile = Path("/srv/vp-h2/run/libvirtd.pid")
    os.kill(int(pidfile.read_text().strip()), 15)
    for _ in range(50):
        if not reachable(H2):
            break
        time.sleep(0.1)
    try:
        h = m.hosts.check("h2")
        assert h.status == model.HostStatus.NON_RESPONSIVE
        assert "does not answer" in h.status_reason or "cannot connect" in h.status_reason
    finally:
        proc = subprocess.run(["bash", str(root / "tools" / "start-second-host.sh")],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"restarting host 2 failed: {proc.stdout}{proc.stderr}"
    h = m.hosts.check("h2")
    assert h.status == model.HostStatus.UP and h.status_reason == ""
    # the reopened connection works for real operations
    name = f"vp-reconnect-{os.getpid()}"
    m.vms.create(model.VmSpec(name=name, memory_mib=256), "cl1")
    m.vms.start(name, host="h2")
    assert name in running(H2)
    m.vms.destroy(name)
    m.vms.remove(name)


def test_maintenance_needs_an_empty_host(two_hosts):
    m, rec = two_hosts
    name = f"vp-maint-{os.getpid()}"
    m.vms.create(model.VmSpec(name=name, memory_mib=256), "cl1")
    m.vms.start(name, host="h1")
    from virtplane.errors import InvalidState

    with pytest.raises(InvalidState, match=f"still runs {name}"):
        m.hosts.maintenance("h1")
    m.migrations.migrate(name, "h2")
    assert m.hosts.maintenance("h1").status == model.HostStatus.MAINTENANCE
    m.vms.destroy(name)
    with pytest.raises(InvalidState, match="no host is Up"):
        m.hosts.maintenance("h2")
        m.vms.start(name)
    assert m.hosts.maintenance("h1", on=False).status == model.HostStatus.UP


def test_migration_gives_the_destination_the_prepared_disk_path(two_hosts, tmp_path):
    """after_disk_prepare may hand the destination another path for a volume (as
    VDSM's may): the guest runs there from that path."""
    import types

    import libvirt

    from virtplane import hookimpl

    m, rec = two_hosts
    name = f"vp-mig-prep-{os.getpid()}"
    alt = tmp_path / "moved.qcow2"
    moves: list[str] = []

    def after_disk_prepare(payload):
        if m.vms.get(name).status != model.VmStatus.UP:
            return  # the start keeps the volume where it is
        # the same image under another name: a hard link (both hosts see this folder)
        os.link(payload.data["path"], alt)
        moves.append(payload.data["path"])
        payload.data = {**payload.data, "path": str(alt)}

    mod = types.ModuleType("mover")
    mod.after_disk_prepare = hookimpl(after_disk_prepare)
    m.plugins.pm.register(mod, name="mover")
    m.storage.add("data1", "localfs", "dc1", {"path": str(tmp_path / "sd")})
    dom = m.storage.get("data1")
    m.vms.create(model.VmSpec(name=name, memory_mib=256, disks=[
        model.DiskSpec(name="d0", size_bytes=1 << 20, domain_id=dom.id)]), "cl1")
    m.vms.start(name)
    # a local file is not shared storage to libvirt: the migration is "unsafe" to it
    m.migrations.migrate(name, "h2", unsafe=True)
    assert len(moves) == 1 and name in running(H2) and name not in running(H1)
    conn = libvirt.open(H2)
    try:
        live = conn.lookupByName(name).XMLDesc(0)
    finally:
        conn.close()
    assert f"file='{alt}'" in live and moves[0] not in live
    assert f"file='{alt}'" in m.vms.get(name).started_xml
    m.vms.destroy(name)
    m.vms.remove(name)
