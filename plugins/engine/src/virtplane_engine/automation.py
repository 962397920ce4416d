"""Scheduling, HA, fencing, maintenance, balancing and power saving, wired into one engine.

:func:`attach` builds them over the engine's Manager and monitor and wraps four
services of that Manager (instance attributes only, like
:mod:`~virtplane_engine.instrument`):

* ``vms.scheduler`` becomes the cluster-policy scheduler (each cluster's policy;
  decisions stored), and a failed start releases what its decision held;
* ``vms.mark_down`` also tells HA (a crashed highly available VM is queued at once
  when this engine leads; otherwise the leader picks it up from the store);
* ``migrations.migrate`` records when each VM last moved (the balancing cooldown);
* ``hosts.maintenance`` migrates the host's VMs away instead of refusing.

On a store several engines share, only the leader decides, and HA restarts are
written under its lease (:class:`~virtplane_engine.restarts.LeaderFence`): an engine
whose leader lease the store refused stops leading at once (not only at its next
lease round).

The engine then runs :meth:`Automation.ha_tick`, :meth:`Automation.maintenance_tick`
(every second) and :meth:`Automation.balance_tick` (every ``balance_interval``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from virtplane_engine.ha import Ha
from virtplane_engine.maintenance import Mover
from virtplane_engine.placement import (
    AutomationSettings,
    EngineFacts,
    EngineScheduler,
    host_stats_or_none,
)
from virtplane_engine.restarts import LeaderFence
from virtplane_engine.scheduling.clock import SystemClock
from virtplane_engine.scheduling.fencing import FenceAgents
from virtplane_engine.scheduling.registry import UnitRegistry
from virtplane_engine.scheduling.scheduler import SchedulingService

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from virtplane import model
    from virtplane.config import Config
    from virtplane.manager import Manager
    from virtplane.state import StateStore
    from virtplane_engine.codes import Code
    from virtplane_engine.leases import Keeper
    from virtplane_engine.locks import ObjectLocks
    from virtplane_engine.monitoring import Monitor

log = logging.getLogger("virtplane.engine.automation")


class Automation:
    """What :func:`attach` built for one engine."""

    def __init__(self, settings: AutomationSettings, facts: EngineFacts,
                 scheduler: EngineScheduler, ha: Ha, mover: Mover,
                 leader: Callable[[], bool] = lambda: True) -> None:
        self.settings = settings
        #: whether this engine takes the singleton decisions now (several engines on one
        #: store: only the leader fences, restarts, moves and balances)
        self.leader = leader
        self.facts = facts
        self.scheduler = scheduler
        self.ha = ha
        self.mover = mover
        self._busy = {name: threading.Lock() for name in ("ha", "maintenance", "balance")}

    def _once(self, name: str, fn: Callable[[], Any]) -> None:
        """Run ``fn`` unless its previous round still runs (a loop whose round outlived
        its timeout must not start a second, concurrent one)."""
        if not self.leader():
            return
        lock = self._busy[name]
        if not lock.acquire(blocking=False):
            log.info("%s: the previous round still runs; this one is skipped", name)
            return
        try:
            fn()
        finally:
            lock.release()

    def ha_tick(self) -> None:
        self._once("ha", self.ha.tick)

    def maintenance_tick(self) -> None:
        self._once("maintenance", self.mover.tick)

    def balance_tick(self) -> None:
        self._once("balance", self.mover.balance)

    def describe(self) -> dict[str, Any]:
        return {**self.ha.describe(), **self.mover.describe(), **self.facts.describe()}


class EngineParts(Protocol):
    """What :func:`attach` takes from the engine (:class:`virtplane_engine.engine.Engine`
    has them; the engine imports this module, not the other way round)."""

    cfg: Config
    m: Manager
    monitor: Monitor
    keeper: Keeper
    locks: ObjectLocks
    executor: ThreadPoolExecutor
    clock: Callable[[], float]

    def store(self) -> StateStore: ...

    def emit(self, object_id: str, code: Code, message: str,
             correlation_id: str | None = None) -> None: ...


def attach(engine: EngineParts) -> Automation:
    """Build the automation of ``engine`` (after its Manager and monitor exist)."""
    m = engine.m
    settings = AutomationSettings.from_config(engine.cfg)
    registry = UnitRegistry()
    service = SchedulingService(registry, SystemClock())
    facts = EngineFacts(m, registry, service.clock, settings.load_source,
                        vms_by_name=lambda: engine.monitor.vms.snapshot().by_name)
    scheduler = EngineScheduler(facts, service, engine.emit)
    agents = FenceAgents(registry)
    fence = LeaderFence(engine.store, engine.keeper)
    ha = Ha(m, settings, engine.locks, agents, engine.emit, engine.clock, engine.clock(),
            fence=fence, vms=engine.monitor.vms.vms)
    mover = Mover(m, settings, engine.locks, scheduler, facts, agents, engine.emit,
                  engine.executor, engine.clock)

    m.vms.scheduler = scheduler
    monitor = engine.monitor
    own_stats = settings.load_source == "host"
    monitor.on_stats = lambda host, reports: facts.observe(
        host, reports, host_stats_or_none(m, host) if own_stats else None)
    monitor.on_transition = ha.on_transition
    monitor.on_failed_poll = ha.on_failed_poll

    start = m.vms.start

    def scheduled_start(name: str, host: str | None = None) -> model.Vm:
        try:
            return start(name, host)
        except BaseException:
            scheduler.release(m.vms.get(name).id)  # what its decision held is free again
            raise

    m.vms.start = scheduled_start  # type: ignore[method-assign]

    mark_down = m.vms.mark_down

    def ha_mark_down(vm: model.Vm, reason: str) -> None:
        mark_down(vm, reason)
        ha.on_down(vm, reason)

    m.vms.mark_down = ha_mark_down  # type: ignore[method-assign]

    migrate = m.migrations.migrate

    def recorded_migrate(name: str, dest_host: str, **options: Any) -> model.Vm:
        vm = migrate(name, dest_host, **options)
        facts.migrated_at[vm.id] = service.clock.now()
        return vm

    m.migrations.migrate = recorded_migrate  # type: ignore[method-assign]

    maintenance = m.hosts.maintenance
    mover._original_maintenance = maintenance

    def engine_maintenance(name: str, on: bool = True) -> model.Host:
        return mover.request(name) if on else mover.activate(name, maintenance)

    m.hosts.maintenance = engine_maintenance  # type: ignore[method-assign]
    queued = ha.recover()  # a sole engine leads at once; a shared one at its first round
    if queued:
        log.info("%d highly available VM(s) left down by a failure are queued for restart",
                 queued)
    return Automation(settings, facts, scheduler, ha, mover, fence.leads)
