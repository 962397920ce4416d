"""The monitor's rules in-process, on libvirt's test driver (one process shares its
``test:///default`` domains, so a domain can be destroyed behind virtplane's back)."""

from __future__ import annotations

import libvirt
import pytest

from virtplane import model
from virtplane_engine.codes import Code
from virtplane_engine.jobs import JobRunner
from virtplane_engine.locks import ObjectLocks
from virtplane_engine.monitoring import Monitor, vm_key
from virtplane_engine.settings import EngineSettings
from virtplane_engine.storewatch import StoreWatch, VmCache


@pytest.fixture
def mon(manager_factory, tmp_path):
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.hosts.add("h1", "cl", "test:///default")
    events: list[tuple[str, Code, str]] = []
    locks = ObjectLocks()
    watch = StoreWatch(tmp_path / "state.db")
    monitor = Monitor(m, EngineSettings(), locks, VmCache(m.store, watch),
                      lambda oid, code, msg, cid: events.append((oid, code, msg)))
    from virtplane_engine.instrument import instrument

    instrument(m, JobRunner(lambda: m.store, locks, EngineSettings()),
               lambda oid, code, msg, cid: events.append((oid, code, msg)))
    yield m, monitor, events, locks
    for vm in m.vms.list():
        if vm.status != model.VmStatus.DOWN:
            m.vms.destroy(vm.name)
    watch.close()


def _host(m):
    return m.hosts.get("h1")


def test_a_vm_whose_domain_vanished_goes_down_once_with_the_reason(mon):
    m, monitor, events, _ = mon
    m.vms.create(model.VmSpec(name="gone", memory_mib=256), "cl")
    m.vms.start("gone")
    destroyed: list[str] = []
    from virtplane import hookimpl

    class Rec:
        @hookimpl
        def after_vm_destroy(self, vm, reason):
            destroyed.append(reason)

    m.plugins.pm.register(Rec(), name="rec")
    libvirt.open("test:///default").lookupByName("gone").destroy()  # behind virtplane's back
    assert monitor.poll_vms(_host(m).id) == 1
    vm = m.vms.get("gone")
    assert vm.status == model.VmStatus.DOWN and vm.status_reason.startswith("crashed")
    assert destroyed == [vm.status_reason]
    assert [c for _, c, _ in events if c in (Code.VM_DOWN, Code.VM_DOWN_ERROR)] == [
        Code.VM_DOWN_ERROR]
    assert monitor.poll_vms(_host(m).id) == 0  # nothing twice
    assert destroyed == [vm.status_reason]


def test_a_running_vm_the_store_has_down_is_adopted_and_strangers_are_external(mon):
    m, monitor, events, _ = mon
    m.vms.create(model.VmSpec(name="adopt", memory_mib=256), "cl")
    m.vms.start("adopt")
    m.store.modify(model.Vm, "adopt", lambda v: setattr(v, "status", model.VmStatus.DOWN)
                   or setattr(v, "host_id", None))
    assert monitor.poll_vms(_host(m).id) == 1
    vm = m.vms.get("adopt")
    assert vm.status == model.VmStatus.UP and vm.host_id == _host(m).id
    assert "adopted" in vm.status_reason
    assert monitor.external[_host(m).id] == {"test": "Up"}
    codes = [c for _, c, _ in events]
    assert Code.VM_ADOPTED in codes and codes.count(Code.VM_EXTERNAL) == 1
    monitor.poll_vms(_host(m).id)
    assert [c for _, c, _ in events].count(Code.VM_EXTERNAL) == 1  # reported once


def test_the_monitor_leaves_a_vm_alone_while_an_operation_holds_it(mon):
    m, monitor, _events, locks = mon
    m.vms.create(model.VmSpec(name="busy", memory_mib=256), "cl")
    m.vms.start("busy")
    libvirt.open("test:///default").lookupByName("busy").destroy()
    with locks.hold([vm_key("busy")]):
        assert monitor.poll_vms(_host(m).id) == 0
        assert m.vms.get("busy").status == model.VmStatus.UP
    assert monitor.poll_vms(_host(m).id) == 1


def test_the_host_reports_paused_and_the_store_follows(mon):
    m, monitor, events, _ = mon
    m.vms.create(model.VmSpec(name="p", memory_mib=256), "cl")
    m.vms.start("p")
    libvirt.open("test:///default").lookupByName("p").suspend()
    assert monitor.poll_vms(_host(m).id) == 1
    assert m.vms.get("p").status == model.VmStatus.PAUSED
    assert any(c == Code.VM_STATUS_FROM_HOST for _, c, _ in events)


def test_a_host_poll_records_up_and_watches_events(mon):
    m, monitor, _events, _ = mon
    assert monitor.poll_host(_host(m).id) == model.HostStatus.UP
    assert _host(m).id in monitor._watched
    assert monitor.describe()["hosts"][0]["name"] == "h1"


def test_storage_marks_vms_on_an_inactive_domain_and_clears_it(mon, tmp_path):
    m, monitor, events, _ = mon
    path = tmp_path / "sd"
    m.storage.add("sd", "localfs", "dc", {"path": str(path)})
    m.vms.create(model.VmSpec(name="s", memory_mib=256, disks=[model.DiskSpec(
        name="d0", size_bytes=1 << 20, domain_id=m.storage.get("sd").id)]), "cl")
    m.vms.start("s")
    path.rename(tmp_path / "away")
    try:
        assert monitor.probe_storage() == 1
        assert m.storage.get("sd").status == model.DomainStatus.INACTIVE
        assert m.vms.get("s").status_reason.startswith("storage domain sd is Inactive")
        assert m.vms.get("s").status == model.VmStatus.UP  # marked, never stopped
    finally:
        (tmp_path / "away").rename(path)
    assert monitor.probe_storage() == 1
    assert m.storage.get("sd").status == model.DomainStatus.ACTIVE
    assert m.vms.get("s").status_reason == ""
    codes = [c for _, c, _ in events]
    for code in (Code.STORAGE_INACTIVE, Code.VM_STORAGE_INACTIVE, Code.STORAGE_ACTIVE,
                 Code.VM_STORAGE_BACK):
        assert code in codes


def test_jobs_left_by_a_dead_engine_fail_at_start_and_queued_jobs_cancel(mon):
    m, _monitor, _events, locks = mon
    runner = JobRunner(lambda: m.store, locks, EngineSettings(job_timeout=0.2))
    left = runner.create("vm.migrate", None, None, "virtplane vm migrate x")
    runner._start(left)
    # a new engine: every queued/started job of the old one fails
    fresh = JobRunner(lambda: m.store, locks, EngineSettings())
    assert [j.id for j in fresh.recover()] == [left.id]
    assert m.store.get_job(left.id).status == model.JobStatus.FAILED
    # a queued job waiting for a lock is aborted by cancel
    import threading

    with locks.hold(["vm:x"]):
        h = runner.create("vm.start", None, None, "virtplane vm start x")
        t = threading.Thread(target=runner.run, args=(h, ["vm:x"], lambda _h: {"rc": 0}))
        t.start()
        assert "cancelled" in runner.cancel(h.id)
        t.join(5)
    assert m.store.get_job(h.id).status == model.JobStatus.ABORTED
    # a job running past job_timeout is failed, and its late result never lands
    import time

    slow = runner.create("vm.start", None, None, "slow")

    def body(handle):
        while not handle.cancel.is_set():
            runner.check_timeouts()
            time.sleep(0.05)
        return {"rc": 0, "stdout": "late"}

    job = runner.run(slow, [], body)
    assert job.status == model.JobStatus.FAILED and "timed out" in (job.error or "")
    assert m.store.get_job(slow.id).result is None


def test_a_quiet_host_is_looked_at_again_when_the_store_or_the_host_moves(mon):
    """A poll that finds nothing to do lets the next identical one stop after one pass
    over the reports; any change in the store's VMs or in what the host reports ends
    that (the monitor's shortcut must never hide a change)."""
    m, monitor, _events, _ = mon
    m.vms.create(model.VmSpec(name="q", memory_mib=256), "cl")
    m.vms.start("q")
    host = _host(m).id
    monitor.poll_vms(host)
    assert monitor.poll_vms(host) == 0 and host in monitor._quiet
    assert monitor.poll_vms(host) == 0
    # the store moves behind the monitor: the running VM recorded Down
    m.store.modify(model.Vm, "q", lambda v: setattr(v, "status", model.VmStatus.DOWN)
                   or setattr(v, "host_id", None))
    assert monitor.poll_vms(host) == 1
    assert m.vms.get("q").status == model.VmStatus.UP  # adopted again
    assert monitor.poll_vms(host) == 0
    # the host moves: the domain paused
    libvirt.open("test:///default").lookupByName("q").suspend()
    assert monitor.poll_vms(host) == 1
    assert m.vms.get("q").status == model.VmStatus.PAUSED
