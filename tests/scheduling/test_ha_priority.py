"""HA restarts in priority order (oVirt's HaAutoStartVmsRunner): a VM waits while a
higher-priority one is still to be restarted or not Up yet, at most ``ha_priority_wait``
in all. libvirt's test driver for the hosts, a fake clock, real ``Vms.start``."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

import pytest

from tests.conftest import need
from tests.fake_clock import Clock
from virtplane import model
from virtplane.errors import InvalidState
from virtplane_engine.codes import Code
from virtplane_engine.ha import Ha
from virtplane_engine.locks import ObjectLocks
from virtplane_engine.placement import AutomationSettings
from virtplane_engine.scheduling.fencing import FenceAgents
from virtplane_engine.scheduling.registry import UnitRegistry

URI = "test:///default"
REASON = "fenced: host h2 was powered off by its fence agent"


@pytest.fixture
def world(manager_factory: Any) -> Any:
    need(find_spec("libvirt") is not None, "libvirt-python is not installed")
    m = manager_factory()
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    m.hosts.add("h1", "cl1", URI)
    for name, prio in (("high", 100), ("mid", 50), ("low", 1)):
        m.vms.create(model.VmSpec(name=name, memory_mib=256, highly_available=True,
                                  ha_priority=prio), "cl1")

        def fenced(v: model.Vm) -> None:
            v.status, v.status_reason = model.VmStatus.DOWN, REASON

        m.context.store.modify(model.Vm, name, fenced)
    events: list[tuple[str, Code, str]] = []
    clock = Clock()
    settings = AutomationSettings(ha_retry_interval=30.0, ha_priority_wait=600.0)
    ha = Ha(m, settings, ObjectLocks(), FenceAgents(UnitRegistry(entry_points=False)),
            lambda oid, code, msg, _c: events.append((oid, code, msg)), clock,
            started_at=0.0)
    yield m, ha, clock, events
    for v in m.vms.list():
        if v.status != model.VmStatus.DOWN and v.started_xml:
            m.vms.destroy(v.name)


def _queue_all(m: Any, ha: Ha) -> None:
    for name in ("low", "mid", "high"):  # queued in the wrong order on purpose
        ha.enqueue(m.vms.get(name), REASON)


def _up(m: Any) -> set[str]:
    return {v.name for v in m.vms.list() if v.status == model.VmStatus.UP}


def test_all_start_in_priority_order_when_nothing_blocks(world):
    m, ha, _clock, events = world
    _queue_all(m, ha)
    order: list[str] = []
    real = m.vms.start

    def start(name: str, *a: Any, **kw: Any) -> model.Vm:
        order.append(name)
        return real(name, *a, **kw)

    m.vms.start = start
    ha.restart_due()
    assert order == ["high", "mid", "low"]
    assert _up(m) == {"high", "mid", "low"}
    assert Code.HA_VM_WAITS not in [c for _o, c, _m in events]


def test_lower_priorities_wait_for_a_failing_higher_one_at_most_the_cap(world):
    m, ha, clock, events = world
    _queue_all(m, ha)
    real = m.vms.start

    def start(name: str, *a: Any, **kw: Any) -> model.Vm:
        if name == "high":
            raise InvalidState("no host fits (for the test)")
        return real(name, *a, **kw)

    m.vms.start = start
    ha.restart_due()  # high fails (retried in 30 s); mid and low wait for it
    assert _up(m) == set()
    waits = [msg for _o, c, msg in events if c == Code.HA_VM_WAITS]
    assert len(waits) == 2 and "mid (priority 50)" in waits[0] and "(100)" in waits[0]
    assert ha.describe()["ha_waiting_for_priority"] == ["low", "mid"]
    for _ in range(19):  # 570 s of retries: still waiting, and said only once
        clock.t += 30
        ha.restart_due()
    assert _up(m) == set()
    assert len([c for _o, c, _m in events if c == Code.HA_VM_WAITS]) == 2
    clock.t += 31  # 601 s in all: the cap is reached, they start without high
    ha.restart_due()
    assert _up(m) == {"mid", "low"}
    assert [r.name for r in ha.queue.values()] == ["high"]


def test_lower_priorities_wait_until_the_higher_one_is_up(world):
    m, ha, clock, _events = world
    _queue_all(m, ha)
    real = m.vms.start

    def start(name: str, *a: Any, **kw: Any) -> model.Vm:
        vm = real(name, *a, **kw)
        if name == "high":  # started, but not Up yet (as a hook starting it paused)
            def paused(v: model.Vm) -> None:
                v.status = model.VmStatus.PAUSED

            return m.context.store.modify(model.Vm, name, paused)
        return vm

    m.vms.start = start
    ha.restart_due()
    assert m.vms.get("high").status == model.VmStatus.PAUSED and _up(m) == set()
    clock.t += 5
    ha.restart_due()
    assert _up(m) == set()  # still waiting for high

    def resumed(v: model.Vm) -> None:
        v.status = model.VmStatus.UP

    m.context.store.modify(model.Vm, "high", resumed)
    clock.t += 1
    ha.restart_due()
    assert _up(m) == {"high", "mid", "low"} and not ha.queue and not ha.coming_up


def test_equal_priorities_do_not_wait_for_each_other(world):
    m, ha, _clock, _events = world

    def fifty(v: model.Vm) -> None:
        v.spec.ha_priority = 50

    for name in ("high", "low"):
        m.context.store.modify(model.Vm, name, fifty)
    _queue_all(m, ha)
    real = m.vms.start

    def start(name: str, *a: Any, **kw: Any) -> model.Vm:
        if name == "high":
            raise InvalidState("no host fits (for the test)")
        return real(name, *a, **kw)

    m.vms.start = start
    ha.restart_due()
    assert _up(m) == {"mid", "low"}
