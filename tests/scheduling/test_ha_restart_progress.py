"""An HA restart in progress is in the store, so an engine that stops in the middle of
one never runs the VM twice: the next engine asks every host first. libvirt's test
driver for the hosts (one domain namespace for both: a VM found on h1 is found on
h2 too, which is all these tests need), a fake clock, real ``Vms.start``."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

import pytest

from tests.conftest import need
from tests.fake_clock import Clock
from tests.libvirt_hosts import forget_test_domains
from virtplane import model
from virtplane.errors import HypervisorError
from virtplane_engine.codes import Code
from virtplane_engine.ha import UNDER_WAY, Ha
from virtplane_engine.locks import ObjectLocks
from virtplane_engine.placement import AutomationSettings
from virtplane_engine.scheduling.fencing import FenceAgents
from virtplane_engine.scheduling.registry import UnitRegistry

URI = "test:///default"
REASON = "fenced: host h3 was powered off by its fence agent"


@pytest.fixture
def world(manager_factory: Any) -> Any:
    need(find_spec("libvirt") is not None, "libvirt-python is not installed")
    m = manager_factory()
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    m.hosts.add("h1", "cl1", URI)
    m.vms.create(model.VmSpec(name="ha1", memory_mib=256, highly_available=True), "cl1")
    events: list[tuple[str, Code, str]] = []
    clock = Clock()

    def engine() -> Ha:
        """A freshly started engine's HA (nothing in memory, the store as it is)."""
        return Ha(m, AutomationSettings(ha_retry_interval=30.0), ObjectLocks(),
                  FenceAgents(UnitRegistry(entry_points=False)),
                  lambda oid, code, msg, _c: events.append((oid, code, msg)), clock,
                  started_at=clock())

    starts: list[str] = []
    real = m.vms.start

    def counted(name: str, *a: Any, **kw: Any) -> model.Vm:
        starts.append(name)
        return real(name, *a, **kw)

    m.vms.start = counted
    yield m, engine, clock, events, starts
    for v in m.vms.list():
        if v.status != model.VmStatus.DOWN and v.started_xml:
            m.vms.destroy(v.name)
    _forget_domain("ha1")


def _forget_domain(name: str) -> None:
    """Remove ``name`` from libvirt's test driver itself: a test that marks a running
    VM Down in the store leaves its domain behind, and test:///default is shared by
    the whole process while any connection to it is open (later tests would find it)."""
    forget_test_domains([name])


def _down(m: Any, reason: str) -> None:
    def change(v: model.Vm) -> None:
        v.status, v.status_reason, v.host_id = model.VmStatus.DOWN, reason, None

    m.context.store.modify(model.Vm, "ha1", change)


def test_the_restart_is_marked_in_the_store_while_under_way(world):
    m, engine, _clock, _events, starts = world
    _down(m, REASON)
    ha = engine()
    seen: list[str] = []
    inner = m.vms.start

    def watching(name: str, *a: Any, **kw: Any) -> model.Vm:
        seen.append(m.context.store.get(model.Vm, m.vms.get(name).id).status_reason)
        return inner(name, *a, **kw)

    m.vms.start = watching
    assert ha.recover() == 1
    ha.restart_due()
    assert seen == [REASON + UNDER_WAY]
    vm = m.vms.get("ha1")
    assert vm.status == model.VmStatus.UP and vm.status_reason == "" and starts == ["ha1"]


def test_an_interrupted_restart_whose_vm_runs_is_not_started_again(world):
    m, engine, _clock, events, starts = world
    m.vms.start("ha1", "h1")  # the first engine's start reached the host ...
    _down(m, REASON + UNDER_WAY)  # ... and it stopped before the store said Up
    starts.clear()
    ha = engine()
    assert ha.recover() == 1
    ha.restart_due()
    assert starts == [] and not ha.queue
    said = [msg for _o, c, msg in events if c == Code.VM_ADOPTED]
    assert said and "runs on h1" in said[0] and "not started again" in said[0]


def test_an_interrupted_restart_waits_for_a_host_nobody_can_ask(world):
    m, engine, clock, events, starts = world
    m.hosts.add("h2", "cl1", URI)

    def gone(h: model.Host) -> None:
        h.status = model.HostStatus.NON_RESPONSIVE

    m.context.store.modify(model.Host, "h2", gone)
    _down(m, REASON + UNDER_WAY)
    ha = engine()
    ha.recover()
    ha.restart_due()
    assert starts == [] and list(ha.queue) == [m.vms.get("ha1").id]
    failed = [msg for _o, c, msg in events if c == Code.HA_VM_RESTART_FAILED]
    assert "host h2 is NonResponsive" in failed[-1]

    def back(h: model.Host) -> None:
        h.status = model.HostStatus.UP

    m.context.store.modify(model.Host, "h2", back)
    clock.t += 31
    ha.restart_due()  # every host answers, none runs it: started, once
    assert starts == ["ha1"] and m.vms.get("ha1").status == model.VmStatus.UP


def test_a_start_that_fails_on_the_host_leaves_the_vm_restartable(world, monkeypatch):
    m, engine, clock, events, starts = world
    _down(m, REASON)
    ha = engine()
    ha.recover()
    conn = m.context.connections.get(m.hosts.get("h1"))

    def refused(*_a: Any, **_kw: Any) -> Any:
        raise HypervisorError("the host refused to start it (for the test)")

    monkeypatch.setattr(conn, "start", refused)
    ha.restart_due()
    vm = m.vms.get("ha1")
    # the failed start's error does not replace the reason it is restarted for
    assert vm.status == model.VmStatus.DOWN and vm.status_reason == REASON
    assert any(c == Code.HA_VM_RESTART_FAILED for _o, c, _m in events)
    monkeypatch.undo()
    clock.t += 31
    ha.restart_due()
    assert starts == ["ha1", "ha1"] and m.vms.get("ha1").status == model.VmStatus.UP
