"""HA restarts with several engines on one store: the leader restarts what any engine's
monitor saw go down, under its lease; an engine that does not lead starts nothing, and a
leader paused past its lease has its late restart refused.

Two engines, A and B, each with its own Manager, keeper, monitor and ``Ha`` on one store
(shared leases: the store's lease rows and fenced transactions, as on PostgreSQL);
libvirt's test driver for the hosts (test:///default: one domain namespace for the
process, like one real libvirtd that both engines reach), a fake clock for ``Ha``.
A "pause" is a takeover of the leader lease behind A's back: A still believes it leads
(its local deadline has not passed), the store knows better.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from importlib.util import find_spec
from typing import Any

import pytest

from tests.conftest import need
from tests.fake_clock import Clock
from tests.libvirt_hosts import forget_test_domains
from virtplane import model
from virtplane.state import StateStore
from virtplane_engine.codes import Code
from virtplane_engine.ha import UNDER_WAY, Ha, LeaderFence
from virtplane_engine.leases import Keeper
from virtplane_engine.locks import ObjectLocks
from virtplane_engine.monitoring import Monitor
from virtplane_engine.placement import AutomationSettings
from virtplane_engine.scheduling.fencing import FenceAgents
from virtplane_engine.scheduling.registry import UnitRegistry
from virtplane_engine.settings import EngineSettings
from virtplane_engine.storewatch import ServerWatch, VmCache

URI = "test:///default"


class Side:
    """One engine: its Manager, keeper, leader fence, monitor and HA, and what it did."""

    def __init__(self, name: str, m: Any, clock: Clock,
                 events: list[tuple[str, Code, str]]) -> None:
        self.name = name
        self.m = m
        store: StateStore = m.context.store
        self.keeper = Keeper(lambda: store, f"engine-{name}", 30.0, shared=True)
        self.fence = LeaderFence(lambda: store, self.keeper)
        locks = ObjectLocks()

        def emit(oid: str, code: Code, msg: str, _c: str | None) -> None:
            events.append((oid, code, f"{name}: {msg}"))

        self.ha = Ha(m, AutomationSettings(ha_retry_interval=30.0), locks,
                     FenceAgents(UnitRegistry(entry_points=False)), emit, clock,
                     started_at=clock(), fence=self.fence)
        self.monitor = Monitor(m, EngineSettings(), locks,
                               VmCache(store, ServerWatch(store)), emit, clock,
                               keeper=self.keeper)
        self.starts: list[str] = []
        start, mark_down = m.vms.start, m.vms.mark_down

        def counted(vm_name: str, *a: Any, **kw: Any) -> model.Vm:
            self.starts.append(vm_name)
            return start(vm_name, *a, **kw)

        def told(vm: model.Vm, reason: str) -> None:  # as automation.attach wires it
            mark_down(vm, reason)
            self.ha.on_down(vm, reason)

        m.vms.start = counted
        m.vms.mark_down = told

    def round(self, hosts: list[str]) -> None:
        self.keeper.round(hosts)


@contextlib.contextmanager
def two_engines(make: Callable[[], Any]) -> Iterator[tuple[Side, Side, Clock, list[Any],
                                                          list[str]]]:
    """Engines A (the leader) and B over Managers ``make`` builds on one store; each holds
    one of two hosts; an HA VM ha1 (Down)."""
    need(find_spec("libvirt") is not None, "libvirt-python is not installed")
    ma, mb = make(), make()
    ma.datacenters.add("dc1")
    ma.clusters.add("cl1", "dc1")
    ma.hosts.add("h1", "cl1", URI)
    ma.hosts.add("h2", "cl1", URI)
    ma.vms.create(model.VmSpec(name="ha1", memory_mib=256, highly_available=True), "cl1")
    clock: Clock = Clock()
    events: list[Any] = []
    a, b = Side("a", ma, clock, events), Side("b", mb, clock, events)
    hosts = sorted(h.id for h in ma.hosts.list())
    a.round(hosts)  # alone: A leads and holds both hosts
    b.round(hosts)  # B is alive: the fair share is one host each
    a.round(hosts)  # A hands one back ...
    b.round(hosts)  # ... B takes it
    assert a.keeper.is_leader and not b.keeper.is_leader
    assert len(a.keeper.held) == 1 and len(b.keeper.held) == 1
    try:
        yield a, b, clock, events, hosts
    finally:
        for v in ma.vms.list():
            if v.status != model.VmStatus.DOWN and v.started_xml:
                ma.vms.destroy(v.name)
        _forget_domain("ha1")


@pytest.fixture
def two(manager_factory: Any) -> Iterator[tuple[Side, Side, Clock, list[Any], list[str]]]:
    with two_engines(manager_factory) as world:
        yield world


def _forget_domain(name: str) -> None:
    """Remove ``name`` from libvirt's test driver (shared by the whole process)."""
    forget_test_domains([name])


def _crash_on_bs_host(a: Side, b: Side) -> model.Host:
    """ha1 runs on the host B monitors; its QEMU dies behind virtplane's back; B's
    monitor sees it gone and records it Down ("crashed")."""
    host_id = next(iter(b.keeper.held))
    host = a.m.context.store.get(model.Host, host_id)
    if a.m.vms.get("ha1").status != model.VmStatus.DOWN:
        a.m.vms.destroy("ha1")
    a.m.vms.start("ha1", host.name)
    a.starts.clear()
    import libvirt

    conn = libvirt.open(URI)
    try:
        conn.lookupByName("ha1").destroy()  # not through virtplane
    finally:
        conn.close()
    assert b.monitor.poll_vms(host_id) == 1
    vm = a.m.vms.get("ha1")
    assert vm.status == model.VmStatus.DOWN and vm.status_reason.startswith("crashed")
    return host


def _codes(events: list[tuple[str, Code, str]], code: Code) -> list[str]:
    return [msg for _o, c, msg in events if c == code]


def test_the_leader_restarts_once_what_another_engines_monitor_saw_crash(two):
    crash_seen_by_another_engine(*two)


def crash_seen_by_another_engine(a: Side, b: Side, clock: Clock, events: list[Any],
                                 _hosts: list[str]) -> None:
    """ha1 crashes on B's host: B records it, A (the leader) restarts it, once."""
    _crash_on_bs_host(a, b)
    assert not b.ha.queue and not a.ha.queue  # B does not lead; A's monitor saw nothing
    b.ha.tick()  # a non-leader's round (the engine does not even run it) starts nothing
    assert b.starts == [] and not b.ha.queue
    a.ha.tick()  # the leader finds it in the store
    vm = a.m.vms.get("ha1")
    assert a.starts == ["ha1"] and vm.status == model.VmStatus.UP
    for _ in range(3):  # later rounds of both: nothing is started again
        clock.t += 60
        a.ha.tick()
        b.ha.tick()
    assert a.starts == ["ha1"] and b.starts == []
    assert len(_codes(events, Code.HA_VM_RESTART)) == 1
    failed = _codes(events, Code.HA_VM_FAILED)
    assert len(failed) == 1 and failed[0].startswith("a: ")


def test_a_user_stop_on_another_engines_host_is_not_restarted(two):
    a, b, _clock, _events, _hosts = two
    host_id = next(iter(b.keeper.held))
    a.m.vms.start("ha1", a.m.context.store.get(model.Host, host_id).name)
    b.m.vms.destroy("ha1")  # a user's stop, through engine B
    a.starts.clear()
    a.ha.tick()
    assert a.starts == [] and not a.ha.queue
    assert a.m.vms.get("ha1").status_reason == "destroyed"


class Takeover(LeaderFence):
    """A's leader fence; before its ``n``-th use B takes the leader lease over (A was
    paused past its lease: its own check still says it leads)."""

    def __init__(self, side: Side, other: Side, hosts: list[str], n: int) -> None:
        super().__init__(lambda: side.m.context.store, side.keeper)
        self.side, self.other, self.hosts, self.n, self.used = side, other, hosts, n, 0

    def __call__(self) -> AbstractContextManager[StateStore]:
        self.used += 1
        if self.used == self.n:
            store = self.side.m.context.store
            lease = self.side.keeper.leader
            assert lease is not None
            store.release_lease(lease)  # as if it had expired while A was stopped
            self.other.round(self.hosts)
            assert self.other.keeper.is_leader
            assert self.side.keeper.is_leader  # A's local view: it still leads
        return super().__call__()


@pytest.mark.parametrize("paused_before", ["mark", "start"])
def test_a_paused_leaders_late_restart_is_refused_and_the_new_leader_starts_it(
        two, paused_before):
    paused_leader(*two, paused_before)


def paused_leader(a: Side, b: Side, clock: Clock, events: list[Any], hosts: list[str],
                  paused_before: str) -> None:
    """A picks the crashed VM up while leading; B takes the leader lease over before A's
    mark (or between A's mark and its start); A writes nothing, B starts the VM once."""
    _crash_on_bs_host(a, b)
    fence = Takeover(a, b, hosts, n=1 if paused_before == "mark" else 2)
    a.ha.fence = fence
    a.ha.tick()  # A picked it up while leading, then its write is refused
    vm = a.m.vms.get("ha1")
    assert a.starts == [] and vm.status == model.VmStatus.DOWN
    assert vm.status_reason.endswith(UNDER_WAY) == (paused_before == "start")
    assert not a.ha.queue and not fence.leads()  # A stepped back
    assert a.keeper.is_leader  # ... on the store's word alone
    b.ha.tick()  # the new leader takes it from the store
    assert b.starts == ["ha1"] and b.m.vms.get("ha1").status == model.VmStatus.UP
    clock.t += 60
    a.ha.tick()
    b.ha.tick()
    assert a.starts == [] and b.starts == ["ha1"]
    assert len(_codes(events, Code.HA_VM_RESTART)) == 1
    if paused_before == "start":  # A's mark says a QEMU may run: B asked every host first
        assert any("interrupted" in msg for msg in _codes(events, Code.HA_VM_FAILED))
    assert not _codes(events, Code.VM_ADOPTED)


def test_a_queued_restart_asks_the_hosts_when_another_leader_marked_the_vm(two):
    """A queued ha1 while leading; meanwhile another leader marked it, started it and
    stopped before recording Up. A's old entry must not start it blindly."""
    a, b, _clock, events, _hosts = two
    _crash_on_bs_host(a, b)
    assert a.ha.recover() == 1  # queued; no mark of A's own
    reason = a.m.vms.get("ha1").status_reason
    a.m.vms.start("ha1", "h1")  # the other leader's start reached the host ...

    def interrupted(v: model.Vm) -> None:  # ... and it stopped before recording Up
        v.status, v.status_reason, v.host_id = model.VmStatus.DOWN, reason + UNDER_WAY, None

    a.m.context.store.modify(model.Vm, "ha1", interrupted)
    a.starts.clear()
    a.ha.restart_due()
    assert a.starts == [] and not a.ha.queue
    assert any("runs on h1" in msg for msg in _codes(events, Code.VM_ADOPTED))
