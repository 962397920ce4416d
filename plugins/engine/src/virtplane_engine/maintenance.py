"""Host maintenance, balancing and power saving: the engine moving VMs by policy.

**Maintenance** (``virtplane host maintenance NAME`` through the engine): the host
becomes PreparingForMaintenance; its VMs are live-migrated away one at a time,
highest ``ha_priority`` first, each to the host the cluster's policy chooses with
the host excluded; once none is left the host is in Maintenance. A VM that can go
nowhere (no host fits, the migration fails) keeps the host PreparingForMaintenance
with the VM and the reason in the host's status reason and an event (100052), and
is tried again every ``maintenance_retry`` seconds. ``host maintenance NAME --off``
cancels.

**Balancing** every ``balance_interval`` (oVirt: one minute): one
:func:`~virtplane_engine.scheduling.balance.run_cycle` per cluster whose policy has
a balancer: at most one migration per cluster per cycle, no VM moved again within
its cooldown, no move for less than the improvement margin; each move is event
12001 with its reason.

**Power saving** carries out the cycle's host power step: an empty host goes into
maintenance (event 100062); with a power agent a host in maintenance is powered
off (it stays Maintenance, its reason starting "powered off") and back on, then
activated, as the plan says.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING

import attrs

from virtplane import model
from virtplane.errors import Conflict, InvalidState, NotFound, VirtplaneError
from virtplane_engine.codes import Code
from virtplane_engine.ha import target_of
from virtplane_engine.locks import ObjectLocks
from virtplane_engine.monitoring import Emit, vm_key
from virtplane_engine.placement import (
    POWERED_OFF,
    AutomationSettings,
    EngineFacts,
    EngineScheduler,
    cluster_policy,
)
from virtplane_engine.scheduling.balance import BalanceReport, format_report, run_cycle
from virtplane_engine.scheduling.fencing import FenceAction, FenceAgents, FenceError
from virtplane_engine.scheduling.params import PolicyError
from virtplane_engine.scheduling.units import Mode

if TYPE_CHECKING:
    from virtplane.manager import Manager
    from virtplane.state import StateStore

log = logging.getLogger("virtplane.engine.maintenance")

_RUNNING = frozenset({model.VmStatus.UP, model.VmStatus.PAUSED})


@attrs.define
class Preparing:
    """A host on its way to Maintenance."""

    host_id: str
    name: str
    why: str
    inflight: Future[None] | None = None
    blocked: str = ""
    retry_at: float = 0.0


class Mover:
    """Maintenance, balancing and power saving over the engine's scheduler."""

    def __init__(self, m: Manager, settings: AutomationSettings, locks: ObjectLocks,
                 scheduler: EngineScheduler, facts: EngineFacts, agents: FenceAgents,
                 emit: Emit, executor: Executor, clock: Callable[[], float]) -> None:
        self.m = m
        self.settings = settings
        self.locks = locks
        self.scheduler = scheduler
        self.facts = facts
        self.agents = agents
        self.emit = emit
        self.executor = executor
        self.clock = clock
        self.preparing: dict[str, Preparing] = {}
        self._lock = threading.RLock()

    @property
    def store(self) -> StateStore:
        return self.m.context.store

    # ------------------------------------------------------------ maintenance

    def request(self, name: str, why: str = "maintenance requested") -> model.Host:
        """Begin moving a host into Maintenance (what ``host maintenance`` runs in the
        engine); returns the host, PreparingForMaintenance or already in Maintenance."""
        host = self.m.hosts.get(name)
        if host.status == model.HostStatus.MAINTENANCE:
            return host
        running = [v for v in self.store.list(model.Vm)
                   if v.host_id == host.id and v.status != model.VmStatus.DOWN]
        if host.status in (model.HostStatus.NON_RESPONSIVE, model.HostStatus.CONNECTING) \
                and running:
            raise InvalidState(
                f"host {name!r} is {host.status.value} and its VMs "
                f"{', '.join(v.name for v in running)} may still run there: they cannot be "
                "migrated; the engine fences it first (docs/ha.md), or stop them")
        status = (model.HostStatus.PREPARING_FOR_MAINTENANCE if running
                  else model.HostStatus.MAINTENANCE)
        reason = (f"{why}: moving {len(running)} VM(s) away" if running else why)

        def change(h: model.Host) -> None:
            h.status, h.status_reason = status, reason

        host = self.store.modify(model.Host, host.id, change)
        if running:
            with self._lock:
                self.preparing[host.id] = Preparing(host.id, host.name, why)
            self.emit(host.id, Code.HOST_PREPARING_MAINTENANCE, f"host {host.name} is "
                      f"PreparingForMaintenance ({why}): live-migrating "
                      f"{', '.join(v.name for v in running)} away", None)
        else:
            self.emit(host.id, Code.HOST_MAINTENANCE, f"host {host.name} is in Maintenance "
                      f"({why}); it runs no VM", None)
        return host

    def activate(self, name: str, original: Callable[[str, bool], model.Host]) -> model.Host:
        """``host maintenance NAME --off``: cancel a preparation, bring the host Up."""
        host = self.m.hosts.get(name)
        with self._lock:
            self.preparing.pop(host.id, None)
        host = original(name, False)
        self.emit(host.id, Code.HOST_ACTIVATED, f"host {host.name} activated: "
                  f"{host.status.value}", None)
        return host

    def tick(self) -> None:
        """Move the next VM off each preparing host; finish hosts that are empty. Hosts
        found PreparingForMaintenance in the store are taken on too (set by another
        engine, or before this one restarted)."""
        for host in self.store.list(model.Host):
            if host.status == model.HostStatus.PREPARING_FOR_MAINTENANCE:
                with self._lock:
                    if host.id not in self.preparing:
                        why = host.status_reason.split(":", 1)[0] or "maintenance requested"
                        self.preparing[host.id] = Preparing(host.id, host.name, why)
        for prep in list(self.preparing.values()):
            try:
                self._step(prep)
            except VirtplaneError:
                log.exception("maintenance of host %s", prep.name)

    def _step(self, prep: Preparing) -> None:
        if prep.inflight is not None and not prep.inflight.done():
            return
        try:
            host = self.store.get(model.Host, prep.host_id)
        except NotFound:
            self._forget(prep)
            return
        if host.status != model.HostStatus.PREPARING_FOR_MAINTENANCE:
            self._forget(prep)  # activated (or set) by someone else meanwhile
            return
        vms = sorted((v for v in self.store.list(model.Vm)
                      if v.host_id == host.id and v.status != model.VmStatus.DOWN),
                     key=lambda v: (-v.spec.ha_priority, v.name))
        if not vms:
            def change(h: model.Host) -> None:
                h.status, h.status_reason = model.HostStatus.MAINTENANCE, prep.why

            self.store.modify(model.Host, host.id, change)
            self._forget(prep)
            self.emit(host.id, Code.HOST_MAINTENANCE, f"host {host.name} is in Maintenance "
                      f"({prep.why}): every VM moved away", None)
            return
        if self.clock() < prep.retry_at:
            return
        vm = next((v for v in vms if v.status in _RUNNING), None)
        if vm is None:
            return  # only VMs in flight (migrating, starting): wait for them
        hosts = self.store.list(model.Host)
        cluster = self.facts.cluster_facts(host.cluster_id, hosts)
        decision = self.scheduler.service.schedule(
            self.scheduler.policy_for(host.cluster_id), cluster, self.facts.vm_facts(vm),
            mode=Mode.MIGRATE, source_host_id=host.id, exclude={host.id},
            exclude_reason=f"{host.name} is going to maintenance")
        self.scheduler.decisions[vm.id] = decision
        if decision.host_id is None or decision.host_name is None:
            self._blocked(prep, host, vm, f"no host can take it: {decision.summary}")
            return
        dest = decision.host_name
        prep.inflight = self.executor.submit(self._migrate, prep, host, vm, dest)

    def _migrate(self, prep: Preparing, host: model.Host, vm: model.Vm, dest: str) -> None:
        try:
            with self.locks.hold([vm_key(vm.name)]):
                self.m.migrations.migrate(vm.name, dest)
        except VirtplaneError as exc:
            self.scheduler.release(vm.id)
            self._blocked(prep, host, vm, f"its migration to {dest} failed: {exc}")
            return
        prep.blocked = ""

    def _blocked(self, prep: Preparing, host: model.Host, vm: model.Vm, why: str) -> None:
        reason = f"{prep.why}: VM {vm.name} cannot leave: {why}"
        prep.retry_at = self.clock() + self.settings.maintenance_retry

        def change(h: model.Host) -> None:
            if h.status == model.HostStatus.PREPARING_FOR_MAINTENANCE:
                h.status_reason = reason

        try:
            self.store.modify(model.Host, host.id, change)
        except (Conflict, NotFound) as exc:
            log.warning("host %s: reason not recorded: %s", host.name, exc)
        if prep.blocked != reason:
            prep.blocked = reason
            self.emit(host.id, Code.MAINTENANCE_BLOCKED, f"host {host.name} stays "
                      f"PreparingForMaintenance: VM {vm.name} cannot leave: {why}; retried "
                      f"every {self.settings.maintenance_retry:g} s", None)

    def _forget(self, prep: Preparing) -> None:
        with self._lock:
            self.preparing.pop(prep.host_id, None)

    # -------------------------------------------------------------- balancing

    def balance(self, cluster_name: str | None = None, *, dry_run: bool = False,
                wait: bool = False) -> list[BalanceReport]:
        """One balancing cycle per cluster (or the named one); performs each move (in the
        background unless ``wait``) and the power step, unless ``dry_run``."""
        reports = []
        hosts = self.store.list(model.Host)
        for cluster in self.store.list(model.Cluster):
            if cluster_name is not None and cluster_name not in (cluster.name, cluster.id):
                continue
            try:
                policy = cluster_policy(self.scheduler.service.registry, cluster)
            except PolicyError as exc:
                log.warning("cluster %s: not balanced: %s", cluster.name, exc)
                continue
            if policy.balancer == "None" and cluster_name is None:
                continue
            facts = self.facts.cluster_facts(cluster.id, hosts)
            report = run_cycle(self.scheduler.service, policy, facts, dry_run=dry_run)
            reports.append(report)
            if dry_run:
                continue
            if report.move is not None:
                fut = self.executor.submit(self._balance_move, report)
                if wait:
                    fut.result()
            if report.power is not None and report.power.action:
                self._power(report)
        return reports

    def _balance_move(self, report: BalanceReport) -> None:
        move = report.move
        assert move is not None
        self.emit(move.vm_id, Code.VM_BALANCED, f"balancing ({report.policy}): moving VM "
                  f"{move.vm_name} from {move.source_host_name} to {move.dest_host_name}: "
                  f"{move.reason}; {move.metric} imbalance {move.cost_before:.3g} -> "
                  f"{move.cost_after:.3g}", None)
        try:
            with self.locks.hold([vm_key(move.vm_name)]):
                vm = self.store.get(model.Vm, move.vm_id)
                if vm.host_id != move.source_host_id or vm.status != model.VmStatus.UP:
                    raise InvalidState(f"VM {vm.name} is no longer Up on "
                                       f"{move.source_host_name}")
                self.m.migrations.migrate(vm.name, move.dest_host_name)
        except VirtplaneError as exc:
            self.scheduler.release(move.vm_id)
            self.emit(move.vm_id, Code.BALANCE_FAILED, f"balancing move of VM {move.vm_name} "
                      f"to {move.dest_host_name} failed: {exc}", None)

    def _power(self, report: BalanceReport) -> None:
        step = report.power
        assert step is not None and step.action and step.host_name
        host = self.m.hosts.get(step.host_name)
        why = f"power saving: {step.reason}"
        try:
            if step.action == "maintenance":
                self.request(host.name, why)
            elif step.action == "activate":
                self.activate(host.name, self._original_maintenance)
            elif step.action in ("power_off", "power_on"):
                self._switch(host, step.action == "power_on", why)
            self.emit(host.id, Code.POWER_SAVING, f"{why}: {step.action} host {host.name}",
                      None)
        except (VirtplaneError, FenceError, PolicyError) as exc:
            self.emit(host.id, Code.POWER_SAVING, f"{why}: {step.action} host {host.name} "
                      f"failed: {exc}", None)

    #: set by the engine: the core's own ``hosts.maintenance`` (before the engine wrapped it)
    _original_maintenance: Callable[[str, bool], model.Host]

    def _switch(self, host: model.Host, on: bool, why: str) -> None:
        agent = self.agents.agent(host.fence_agent)
        result = agent.run(target_of(host), FenceAction.ON if on else FenceAction.OFF)
        if not result.ok:
            raise FenceError(result.message or "refused")
        reason = (f"{POWERED_OFF} ({why})" if not on else
                  f"powered on ({why}); activate it to use it")

        def change(h: model.Host) -> None:
            h.status_reason = reason

        self.store.modify(model.Host, host.id, change)

    def describe(self) -> dict[str, object]:
        with self._lock:
            return {"preparing": {p.name: p.blocked or "moving VMs"
                                  for p in self.preparing.values()}}


def report_text(reports: list[BalanceReport]) -> str:
    """What ``scheduling balance`` prints."""
    if not reports:
        return "no cluster to balance"
    return "\n".join(format_report(r) for r in reports)
