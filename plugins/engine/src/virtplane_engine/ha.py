"""Fencing and high availability: what the engine does about a host that stopped answering.

oVirt's non-responding treatment, carried out over the pure rules of
:func:`~virtplane_engine.scheduling.fencing_rules.decide`:

1. A host goes NonResponsive (its grace period is over): its running VMs become
   **Unknown** (they may still run there) with an event (100020). Every further
   failed poll is a failed check.
2. Each :meth:`Ha.tick` asks the rules for the next step and takes it: nothing
   while the engine is young, the cluster's fencing is off or too many of its
   hosts are unreachable (event 100021, once per reason); a second failed check
   confirms the first; then **soft fencing** (the host's soft-fence agent restarts
   libvirtd; its VMs are untouched; event 100022), unless its power agent already
   reports the host off; then, after the soft-fence timeout, **power fencing**:
   the power agent switches the host off and must confirm it
   (:func:`~virtplane_engine.scheduling.fencing_rules.confirmed_off`).
3. Only after a confirmed power-off are the host's VMs set **Down** ("fenced: ...",
   event 100027) and its highly available ones restarted on other hosts by the
   cluster's policy, highest ``ha_priority`` first (events 9602, 506); then the
   host is powered on again. Without a confirmation the VMs stay Unknown and the
   reason is an event (100025): the engine never risks a second copy of a VM.
4. A highly available VM that crashed (its QEMU died on a host that still answers,
   so the host itself says it is not running) is restarted the same way. A VM a
   user or its guest shut down is never restarted.

Restarts (who starts which VM, in what order, how it is never started twice, the
leader lease around them) are :mod:`virtplane_engine.restarts`; :class:`Ha` is both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from virtplane import model
from virtplane.errors import Conflict, NotFound, VirtplaneError
from virtplane_engine.codes import Code
from virtplane_engine.fence_agents import SupportsSoftFence
from virtplane_engine.hoststate import Transition
from virtplane_engine.locks import ObjectLocks
from virtplane_engine.monitoring import Emit, vm_key
from virtplane_engine.placement import AutomationSettings
from virtplane_engine.restarts import (
    COMING_UP,
    RESTARTABLE,
    UNDER_WAY,
    LeaderFence,
    Restart,
    Restarts,
    restartable,
)
from virtplane_engine.scheduling.fencing import (
    FenceAction,
    FenceAgents,
    FenceError,
    FenceResult,
    FenceTarget,
    PowerState,
)
from virtplane_engine.scheduling.fencing_rules import (
    FenceDecision,
    FencingPolicy,
    HostFenceState,
    Step,
    confirmed_off,
    decide,
)
from virtplane_engine.scheduling.params import PolicyError

if TYPE_CHECKING:
    from virtplane.manager import Manager
    from virtplane.state import StateStore

log = logging.getLogger("virtplane.engine.ha")

__all__ = ["COMING_UP", "RESTARTABLE", "UNDER_WAY", "Ha", "LeaderFence", "Restart",
           "restartable", "target_of"]


def target_of(host: model.Host) -> FenceTarget:
    """What an agent needs to know about ``host`` (its fence options)."""
    opts = dict(host.fence_options)
    return FenceTarget(host.id, host.name, address=opts.pop("address", ""),
                       login=opts.pop("login", ""), password=opts.pop("password", ""),
                       port=opts.pop("port", ""), options=opts)


class Ha(Restarts):
    """Fencing and HA restarts of one engine (its state lives in memory; after an
    engine restart the startup grace keeps it from fencing anything at once, and the
    restartable VMs are picked up from the store again).

    :param fence: the leader lease around restart writes (default: this engine leads
        always, as the one engine of an SQLite store).
    :param vms: reads every stored VM (default: the store; the engine gives its
        monitor's cache).
    """

    def __init__(self, m: Manager, settings: AutomationSettings, locks: ObjectLocks,
                 agents: FenceAgents, emit: Emit, clock: Callable[[], float],
                 started_at: float, *, fence: LeaderFence | None = None,
                 vms: Callable[[], Iterable[model.Vm]] | None = None) -> None:
        self.m = m
        self.settings = settings
        self.locks = locks
        self.agents = agents
        self.emit = emit
        self.clock = clock
        self.started_at = started_at
        self.hosts: dict[str, HostFenceState] = {}
        self._said: dict[str, str] = {}
        self._lock = threading.RLock()
        self._init_restarts(fence, vms)

    @property
    def store(self) -> StateStore:
        return self.m.context.store

    def policy(self, cluster: model.Cluster) -> FencingPolicy:
        s = self.settings
        return FencingPolicy(enabled=cluster.fencing_enabled,
                             connectivity_threshold_percent=s.fence_connectivity_threshold,
                             startup_grace=s.fence_startup_grace,
                             soft_fence_timeout=s.soft_fence_timeout,
                             confirm_interval=s.fence_confirm_interval)

    # ------------------------------------------------------ monitoring hooks

    def on_transition(self, host: model.Host, t: Transition) -> None:
        """A host changed status: NonResponsive starts the treatment; Up ends it."""
        now = self.clock()
        if t.status == model.HostStatus.NON_RESPONSIVE:
            with self._lock:
                self.hosts[host.id] = HostFenceState(
                    host.id, host.name, t.status.value, failed_checks=(now,),
                    power_management=bool(host.fence_agent))
            self._unknown(host)
        elif t.status in (model.HostStatus.UP, model.HostStatus.NON_OPERATIONAL):
            with self._lock:
                was = self.hosts.pop(host.id, None)
                self._said.pop(host.id, None)
            if was is not None and was.soft_fenced_at is not None:
                self.emit(host.id, Code.SOFT_FENCE, f"host {host.name} answers again after "
                          "soft fencing; its VMs were not touched", None)

    def on_failed_poll(self, host: model.Host, now: float) -> None:
        """Another failed check of a NonResponsive host (the confirmation rule)."""
        with self._lock:
            state = self.hosts.get(host.id)
            if state is None:
                self.hosts[host.id] = HostFenceState(
                    host.id, host.name, "NonResponsive", failed_checks=(now,),
                    power_management=bool(host.fence_agent))
            else:
                checks = (*state.failed_checks, now)[-20:]
                self.hosts[host.id] = attrs.evolve(state, failed_checks=checks)

    def _unknown(self, host: model.Host) -> None:
        """Mark the host's running VMs Unknown: nobody knows whether they still run."""
        reason = f"host {host.name} is non responsive: the VM may still run there"
        for vm in self.store.list(model.Vm):
            if vm.host_id != host.id or vm.status in (model.VmStatus.DOWN,
                                                      model.VmStatus.UNKNOWN):
                continue

            def change(v: model.Vm) -> None:
                if v.host_id == host.id and v.status != model.VmStatus.DOWN:
                    v.status, v.status_reason = model.VmStatus.UNKNOWN, reason

            try:
                self.store.modify(model.Vm, vm.id, change)
            except (Conflict, NotFound) as exc:
                log.warning("VM %s: Unknown not recorded: %s", vm.name, exc)
                continue
            self.emit(vm.id, Code.VM_UNKNOWN, f"VM {vm.name} is Unknown: {reason}", None)

    # ------------------------------------------------------------- the loop

    def tick(self) -> None:
        """One round (the leader's): the next fencing step of every NonResponsive host,
        then the restartable VMs of the store picked up and the due restarts started (in
        the engine's thread pool)."""
        for host in self.store.list(model.Host):
            if host.status == model.HostStatus.NON_RESPONSIVE:
                try:
                    self._treat(host)
                except (VirtplaneError, PolicyError) as exc:
                    log.exception("fencing host %s failed", host.name)
                    self.emit(host.id, Code.FENCE_FAILED, f"fencing host {host.name} failed: "
                              f"{exc}; its VMs stay Unknown", None)
        self.recover()
        self.restart_due()

    def _state(self, host: model.Host) -> HostFenceState:
        with self._lock:
            state = self.hosts.get(host.id)
            if state is None:  # NonResponsive before this engine started: count from now
                state = self.hosts[host.id] = HostFenceState(
                    host.id, host.name, host.status.value, failed_checks=(self.clock(),),
                    power_management=bool(host.fence_agent))
            return state

    def _check(self, host: model.Host, state: HostFenceState, now: float) -> bool:
        """This engine's own check of a NonResponsive host, once per confirm interval (the
        confirmation must not rest on one observer: with several engines the leader
        fences a host another engine monitors). False: the host answers."""
        checks = state.failed_checks
        if checks and now - checks[-1] < self.settings.fence_confirm_interval:
            return True
        try:
            self.m.context.connections.get(host).ping()
        except VirtplaneError:
            self.m.context.connections.drop(host.id)
            self.on_failed_poll(host, now)
            return True
        return False  # it answers: its monitor sets it Up at its next poll

    def _treat(self, host: model.Host) -> None:
        state = self._state(host)
        if not self._check(host, state, self.clock()):
            return
        state = self._state(host)
        cluster = self.store.get(model.Cluster, host.cluster_id)
        statuses = [h.status.value for h in self.store.list(model.Host)
                    if h.cluster_id == host.cluster_id]
        policy = self.policy(cluster)
        now = self.clock()
        d = decide(state, statuses, policy, self.started_at, now)
        if d.step is Step.SOFT_FENCE and host.fence_agent and state.power is PowerState.UNKNOWN:
            # the rule: no soft fencing of a host its power agent reports off
            power = self._status(host)
            with self._lock:
                state = self.hosts[host.id] = attrs.evolve(state, power=power)
            d = decide(state, statuses, policy, self.started_at, now)
        if d.step in (Step.NOTHING, Step.SKIP):
            self._say(host, d)
        elif d.step is Step.SOFT_FENCE:
            self._soft(host, state, now)
        elif d.step is Step.HARD_FENCE:
            self._hard(host, state, now)

    def _say(self, host: model.Host, d: FenceDecision) -> None:
        """An event for a rule that holds fencing off, once per rule."""
        with self._lock:
            if self._said.get(host.id) == d.rule:
                return
            self._said[host.id] = d.rule
        self.emit(host.id, Code.FENCE_SKIPPED, f"host {host.name} is not fenced ({d.rule}): "
                  f"{d.reason}", None)

    def _status(self, host: model.Host) -> PowerState:
        try:
            r = self.agents.agent(host.fence_agent).run(target_of(host), FenceAction.STATUS)
        except (FenceError, PolicyError) as exc:
            log.warning("host %s: power status unknown: %s", host.name, exc)
            return PowerState.UNKNOWN
        return r.power if r.ok else PowerState.UNKNOWN

    def _soft(self, host: model.Host, state: HostFenceState, now: float) -> None:
        name = host.soft_fence_agent
        ok, why = False, "no soft-fence agent is set (virtplane fencing set --soft AGENT)"
        if name:
            try:
                agent = self.agents.agent(name)
                if not isinstance(agent, SupportsSoftFence):
                    why = f"agent {name} cannot soft-fence"
                else:
                    result = agent.soft_fence(target_of(host))
                    ok, why = result.ok, result.message
            except (FenceError, PolicyError) as exc:
                why = str(exc)
        with self._lock:
            self.hosts[host.id] = attrs.evolve(state, soft_fenced_at=now,
                                               soft_fence_failed=not ok)
        if ok:
            self.emit(host.id, Code.SOFT_FENCE, f"host {host.name}: soft fencing restarted "
                      f"its libvirtd ({why}); its VMs are not touched; waiting up to "
                      f"{self.settings.soft_fence_timeout:g} s for it to answer", None)
        else:
            self.emit(host.id, Code.SOFT_FENCE_FAILED, f"host {host.name}: soft fencing "
                      f"failed: {why}", None)

    def _hard(self, host: model.Host, state: HostFenceState, now: float) -> None:
        agent = self.agents.agent(host.fence_agent)
        target = target_of(host)
        with self._lock:
            self.hosts[host.id] = attrs.evolve(state, in_fence_flow=True)
        results: list[FenceResult] = []
        try:
            results.append(agent.run(target, FenceAction.OFF))
            if not confirmed_off(results):
                results.append(agent.run(target, FenceAction.STATUS))
        except FenceError as exc:
            results.append(FenceResult(FenceAction.OFF, False, message=str(exc)))
        proved = confirmed_off(results)
        with self._lock:
            self.hosts[host.id] = attrs.evolve(
                self.hosts.get(host.id, state), in_fence_flow=False,
                last_power_operation_at=now,
                power=PowerState.OFF if proved else results[-1].power)
        said = "; ".join(f"{r.action.value}: {r.message or ('ok' if r.ok else 'refused')}"
                         for r in results)
        if not proved:
            self.emit(host.id, Code.FENCE_FAILED, f"host {host.name}: its fence agent "
                      f"{host.fence_agent} did not confirm the power off ({said}); its VMs "
                      "stay Unknown", None)
            return
        self.emit(host.id, Code.HOST_FENCED, f"host {host.name} fenced: power off confirmed "
                  f"by {host.fence_agent} ({said})", None)
        self._fenced_vms_down(host)
        self.restart_due()  # before the host powers on: the failover is what matters
        try:
            on = agent.run(target, FenceAction.ON)
        except FenceError as exc:
            on = FenceResult(FenceAction.ON, False, message=str(exc))
        if on.ok:
            self.emit(host.id, Code.HOST_POWERED_ON, f"host {host.name} powered on after "
                      f"fencing ({on.message or 'ok'})", None)
        else:
            self.emit(host.id, Code.FENCE_FAILED, f"host {host.name}: power on after "
                      f"fencing failed ({on.message}); it stays off", None)

    def _fenced_vms_down(self, host: model.Host) -> None:
        """The host's VMs died with its power: Down, and the HA ones queued."""
        reason = f"fenced: host {host.name} was powered off by its fence agent"
        for vm in self.store.list(model.Vm):
            if vm.host_id != host.id or vm.status == model.VmStatus.DOWN:
                continue
            with self.locks.hold([vm_key(vm.name)]):
                try:
                    fresh = self.store.get(model.Vm, vm.id)
                    if fresh.host_id != host.id or fresh.status == model.VmStatus.DOWN:
                        continue
                    self.m.vms.mark_down(fresh, reason)
                except (Conflict, NotFound) as exc:
                    log.warning("VM %s: Down not recorded: %s", vm.name, exc)
                    continue
            if fresh.spec.highly_available:
                self.enqueue(fresh, reason)

    def describe(self) -> dict[str, object]:
        """Fencing and restart state (``engine status``)."""
        with self._lock:
            return {"fencing": {s.name: {"failed_checks": len(s.failed_checks),
                                         "soft_fenced": s.soft_fenced_at is not None,
                                         "power": s.power.value}
                                for s in self.hosts.values()},
                    "ha_queue": sorted(r.name for r in self.queue.values()),
                    "ha_waiting_for_priority": sorted(
                        r.name for r in self.queue.values() if r.blocked_since is not None)}

