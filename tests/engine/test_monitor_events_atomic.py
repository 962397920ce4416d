"""The monitor writes a status it learned from a host and the event that says so
together: an event that cannot be stored leaves the status as it was (the next poll
tries again), and nothing is half-recorded. ``store_event`` is what the engine's
``emit`` runs: inside the caller's transaction a failure raises."""

from __future__ import annotations

from typing import Any

import libvirt
import pytest

from virtplane import model
from virtplane.errors import StateError
from virtplane_engine.codes import Code, store_event
from virtplane_engine.locks import ObjectLocks
from virtplane_engine.monitoring import Monitor
from virtplane_engine.settings import EngineSettings
from virtplane_engine.storewatch import StoreWatch, VmCache


@pytest.fixture
def mon(manager_factory: Any, tmp_path: Any) -> Any:
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.hosts.add("h1", "cl", "test:///default")
    watch = StoreWatch(tmp_path / "state.db")
    monitor = Monitor(m, EngineSettings(), ObjectLocks(), VmCache(m.store, watch),
                      lambda oid, code, msg, cid: store_event(m.store, oid, code, msg, cid))
    yield m, monitor
    # test:///default is shared by the process: leave none of these domains running,
    # whatever the store says (a test keeps one recorded Down on purpose)
    conn = libvirt.open("test:///default")
    running = {d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}
    for vm in m.vms.list():
        if vm.name in running:
            conn.lookupByName(vm.name).destroy()
    conn.close()
    watch.close()


def _codes(m: Any, vm: model.Vm) -> list[int]:
    return [row[5] for row in m.store.events_since(0) if row[2] == vm.id]


def _paused(m: Any) -> tuple[model.Vm, str]:
    vm = m.vms.create(model.VmSpec(name="p", memory_mib=256), "cl")
    m.vms.start("p")
    libvirt.open("test:///default").lookupByName("p").suspend()
    return vm, m.hosts.get("h1").id


def test_a_status_from_the_host_is_stored_with_its_event(mon: Any) -> None:
    m, monitor = mon
    vm, host = _paused(m)
    assert monitor.poll_vms(host) == 1
    assert m.vms.get("p").status == model.VmStatus.PAUSED
    assert _codes(m, vm).count(Code.VM_STATUS_FROM_HOST) == 1


def test_an_event_that_cannot_be_stored_keeps_the_status_unwritten(
        mon: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    m, monitor = mon
    vm, host = _paused(m)
    before = m.vms.get("p")

    def full(*_args: Any, **_kwargs: Any) -> None:
        raise StateError("state store x failed: database or disk is full")

    monkeypatch.setattr(m.store, "add_event", full)
    assert monitor.poll_vms(host) == 0
    monkeypatch.undo()
    after = m.vms.get("p")
    assert (after.status, after.revision) == (model.VmStatus.UP, before.revision)
    assert Code.VM_STATUS_FROM_HOST not in _codes(m, vm)
    assert monitor.poll_vms(host) == 1  # the next poll records both
    assert m.vms.get("p").status == model.VmStatus.PAUSED
    assert _codes(m, vm).count(Code.VM_STATUS_FROM_HOST) == 1


def test_an_adoption_whose_event_fails_is_not_recorded(
        mon: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    m, monitor = mon
    vm = m.vms.create(model.VmSpec(name="a", memory_mib=256), "cl")
    m.vms.start("a")
    m.store.modify(model.Vm, "a", lambda v: setattr(v, "status", model.VmStatus.DOWN)
                   or setattr(v, "host_id", None))
    host = m.hosts.get("h1").id

    def full(*_args: Any, **_kwargs: Any) -> None:
        raise StateError("state store x failed: database or disk is full")

    monkeypatch.setattr(m.store, "add_event", full)
    assert monitor.poll_vms(host) == 0
    monkeypatch.undo()
    assert m.vms.get("a").status == model.VmStatus.DOWN
    assert Code.VM_ADOPTED not in _codes(m, vm)


def test_outside_a_transaction_a_lost_event_is_logged_not_raised(
        manager_factory: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    m = manager_factory()
    m.datacenters.add("dc")

    def full(*_args: Any, **_kwargs: Any) -> None:
        raise StateError("disk is full")

    monkeypatch.setattr(m.store, "add_event", full)
    assert store_event(m.store, "x", Code.ENGINE_STARTED, "hello") is False
    assert "event 1 not stored: hello (disk is full)" in caplog.text
    with pytest.raises(StateError, match="disk is full"), m.store.transaction():
        store_event(m.store, "x", Code.ENGINE_STARTED, "hello")


def test_a_left_job_is_failed_with_its_event_or_not_at_all(
        manager_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from virtplane_engine.jobs import fail_left

    m = manager_factory()
    job = model.Job(kind="vm.start", object_id="o1",
                    steps=[model.JobStep(description="start", status=model.JobStatus.STARTED)])
    job.status = model.JobStatus.STARTED
    m.store.add_job(job, engine="gone")

    def full(*_args: Any, **_kwargs: Any) -> None:
        raise StateError("disk is full")

    monkeypatch.setattr(m.store, "add_event", full)
    with pytest.raises(StateError, match="disk is full"):
        fail_left(m.store, m.store.get_job(job.id), "its engine stopped")
    monkeypatch.undo()
    assert m.store.get_job(job.id).status == model.JobStatus.STARTED  # not half-failed
    assert fail_left(m.store, m.store.get_job(job.id), "its engine stopped")
    assert m.store.get_job(job.id).status == model.JobStatus.FAILED
    assert [row[5] for row in m.store.events_since(0) if row[2] == "o1"] == [
        Code.JOB_FAILED_ON_RESTART]
