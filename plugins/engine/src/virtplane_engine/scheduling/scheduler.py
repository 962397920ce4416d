"""One placement: filters, weights, the rank selector, pending resources, a record.

:class:`SchedulingService` is what the engine holds, one per process. Its
:meth:`~SchedulingService.schedule` follows oVirt's ``SchedulingManager``: take
the cluster's lock (one scheduling at a time per cluster, so two starts cannot
both see a host as free), keep Up hosts minus the excluded ones, run the
mandatory and policy filters in order (stopping when none is left), weigh the
survivors, pick the best, and record the VM as pending on that host before the
lock is released.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from virtplane_engine.scheduling.clock import Clock, SystemClock
from virtplane_engine.scheduling.decision import Decision, HostVerdict
from virtplane_engine.scheduling.facts import UP, ClusterFacts, HostFacts, VmFacts
from virtplane_engine.scheduling.pending import PendingEntry, PendingResources, with_pending
from virtplane_engine.scheduling.policies import ClusterPolicy, CompiledPolicy
from virtplane_engine.scheduling.registry import UnitRegistry
from virtplane_engine.scheduling.selector import order, rank
from virtplane_engine.scheduling.units import FilterUnit, HostFilter, Mode, UnitContext
from virtplane_engine.scheduling.weights_load import vm_load

#: a run of filters: per-host filters as (position, name, bound reject, params), or one
#: filter that judges the hosts together as (unit, params)
_Run = list[tuple[int, str, Any, Any]] | tuple[FilterUnit[Any], Any]


def _position(drop: tuple[int, HostVerdict]) -> int:
    return drop[0]


def _filter_runs(compiled: CompiledPolicy) -> list[tuple[int, _Run]]:
    """The policy's filters in order, consecutive :class:`HostFilter` units (whose
    ``filter`` is the inherited per-host loop) grouped into one run; each run with
    the position of its first filter."""
    runs: list[tuple[int, _Run]] = []
    for pos, (unit, params) in enumerate(compiled.filters):
        if isinstance(unit, HostFilter) and type(unit).filter is HostFilter.filter:
            last = runs[-1][1] if runs else None
            if isinstance(last, list):
                last.append((pos, unit.name, unit.reject, params))
            else:
                runs.append((pos, [(pos, unit.name, unit.reject, params)]))
        else:
            runs.append((pos, (unit, params)))
    return runs


class SchedulingService:
    """Places VMs by cluster policy and balances clusters (see :mod:`.balance`).

    ``vcpu_consumption`` is the CPU % per vCPU a new VM is assumed to use when it
    is recorded as pending (oVirt's VcpuConsumptionPercentage).
    """

    def __init__(self, registry: UnitRegistry | None = None, clock: Clock | None = None,
                 pending: PendingResources | None = None, vcpu_consumption: int = 10) -> None:
        self.registry = registry or UnitRegistry()
        self.clock: Clock = clock or SystemClock()
        self.pending = pending or PendingResources()
        self.vcpu_consumption = vcpu_consumption
        self._compiled: dict[int, tuple[ClusterPolicy, CompiledPolicy]] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()
        #: VM id -> when this service last had it moved (the balancing cooldown)
        self.moved_at: dict[str, float] = {}

    # ------------------------------------------------------------ plumbing

    def compile(self, policy: ClusterPolicy) -> CompiledPolicy:
        """The policy compiled once (by identity, then equality) and reused."""
        hit = self._compiled.get(id(policy))
        if hit is not None and hit[0] is policy:
            return hit[1]
        compiled = policy.compile(self.registry)
        with self._guard:
            self._compiled[id(policy)] = (policy, compiled)
        return compiled

    @contextmanager
    def cluster_lock(self, cluster_id: str) -> Iterator[None]:
        """Hold the cluster's scheduling lock (oVirt's per-cluster semaphore); re-entrant,
        so a balancing cycle holds it across the schedulings it runs."""
        with self._guard:
            lock = self._locks.setdefault(cluster_id, threading.RLock())
        with lock:
            yield

    def context(self, cluster: ClusterFacts, mode: Mode = Mode.START,
                source_host_id: str | None = None) -> tuple[UnitContext, list[HostFacts]]:
        """A unit context and the cluster's hosts with pending resources filled in
        (after dropping entries the snapshot already shows running)."""
        now = self.clock.now()
        self.pending.reconcile(cluster.hosts, now)
        totals = self.pending.totals()
        hosts = ([with_pending(h, totals.get(h.id)) for h in cluster.hosts] if totals
                 else list(cluster.hosts))  # nothing pending: no lookup per host
        ctx = UnitContext(cluster, now, mode, source_host_id, self.pending.placements())
        return ctx, hosts

    # ------------------------------------------------------------ placement

    def schedule(self, policy: ClusterPolicy, cluster: ClusterFacts, vm: VmFacts, *,
                 mode: Mode = Mode.START, source_host_id: str | None = None,
                 exclude: Collection[str] = (), exclude_reason: str = "excluded by the caller",
                 only: Collection[str] | None = None, record_pending: bool = True) -> Decision:
        """Choose a host for ``vm`` in ``cluster`` (never raises for "no host": the
        decision says why, host by host).

        ``exclude`` are host ids the caller rules out (a host going to maintenance),
        ``only`` restricts the choice (a balancer's candidates). With
        ``record_pending`` the chosen host holds the VM's resources until monitoring
        shows it there (not when the VM stays where it is).
        """
        compiled = self.compile(policy)
        with self.cluster_lock(cluster.id):
            ctx, hosts = self.context(cluster, mode, source_host_id)
            decision = self._decide(compiled, ctx, hosts, vm, exclude, exclude_reason, only)
            if (record_pending and decision.host_id is not None
                    and decision.host_id != vm.host_id):
                self.pending.add(PendingEntry(
                    vm.id, decision.host_id, 0 if vm.paused else vm.memory_mib, vm.vcpus,
                    vm_load(ctx, vm, self.vcpu_consumption), ctx.now))
            return decision

    def _decide(self, compiled: CompiledPolicy, ctx: UnitContext, hosts: list[HostFacts],
                vm: VmFacts, exclude: Collection[str], exclude_reason: str,
                only: Collection[str] | None) -> Decision:
        #: (the filter's position, -1 before the filters; the verdict): the explanation
        #: lists drops filter by filter, as the filters ran
        drops: list[tuple[int, HostVerdict]] = []
        pending_only: list[bool] = []

        def drop(h: HostFacts, by: str, reason: str, position: int = -1) -> None:
            v = HostVerdict(h.id, h.name, "filtered", by, reason,
                            pending_memory_mib=h.pending_memory_mib,
                            pending_vcpus=h.pending_vcpus, pending_vms=h.pending_vms)
            drops.append((position, v))
            pending_only.append(bool(getattr(reason, "pending_only", False)))

        only_set = None if only is None else set(only)
        alive = []
        for h in hosts:
            if h.status != UP:
                drop(h, "status", f"is {h.status}")
            elif h.id in exclude:
                drop(h, "excluded", exclude_reason)
            elif only_set is not None and h.id not in only_set:
                drop(h, "not a candidate", "not among the hosts this move may go to")
            else:
                alive.append(h)
        for first, group in _filter_runs(compiled):
            if not alive:
                break
            if isinstance(group, list):
                # consecutive per-host filters in one pass over the hosts, each host
                # through all of them while it is in the CPU's cache (the same
                # outcome as one pass per filter: a host stops at the first refusal)
                kept = []
                for h in alive:
                    for pos, name, reject, params in group:
                        why = reject(ctx, params, vm, h)
                        if why is not None:
                            drop(h, name, why, pos)
                            break
                    else:
                        kept.append(h)
                alive = kept
                continue
            unit, params = group
            rejected = unit.filter(ctx, params, vm, alive)
            if rejected:
                kept = []
                for h in alive:
                    why = rejected.get(h.id)
                    if why is None:
                        kept.append(h)
                    else:
                        drop(h, unit.name, why, first)
                alive = kept
        drops.sort(key=_position)  # stable: host order within a filter
        dropped = [v for _pos, v in drops]

        base: dict[str, Any] = dict(vm_id=vm.id, vm_name=vm.name, cluster_id=ctx.cluster.id,
                    cluster_name=ctx.cluster.name, policy=compiled.policy.name,
                    mode=ctx.mode.value, at=ctx.now, source_host_id=ctx.source_host_id)
        if not alive:
            considered = len(hosts)
            counts: dict[str, int] = {}
            for v in dropped:
                counts[v.filtered_by or "?"] = counts.get(v.filtered_by or "?", 0) + 1
            summary = (f"none of the {considered} hosts fits ("
                       + ", ".join(f"{k}: {n}" for k, n in counts.items()) + ")"
                       if considered else "the cluster has no hosts")
            retry = bool(pending_only) and all(pending_only) and any(
                v.filtered_by == "Memory" for v in dropped)
            return Decision(**base, host_id=None, host_name=None, summary=summary,
                            hosts=tuple(dropped), retry_after_pending=retry)

        chosen: list[HostVerdict]
        if len(alive) == 1:
            only_host = alive[0]
            chosen = [HostVerdict(
                only_host.id, only_host.name, "chosen", total=0,
                pending_memory_mib=only_host.pending_memory_mib,
                pending_vcpus=only_host.pending_vcpus, pending_vms=only_host.pending_vms)]
            best, best_name, tied = only_host.id, only_host.name, tuple[str, ...]()
            units: tuple[tuple[str, int], ...] = ()
            summary = f"{only_host.name}, the only host left after the filters"
        else:
            raw: list[tuple[str, int, Any]] = [
                (unit.name, factor, unit.score(ctx, params, vm, alive))
                for unit, factor, params in compiled.weights]
            ranking = rank(raw, [h.id for h in alive])
            positions = order(ranking, [h.name for h in alive])
            totals = ranking.totals
            best, best_name = alive[positions[0]].id, alive[positions[0]].name
            top = totals[positions[0]]
            # best first: the hosts tied with the best are the first positions
            tied = tuple(alive[i].name for i in itertools.takewhile(
                lambda i: totals[i] == top, positions))
            wcol, rcol = ranking.weights, ranking.ranks
            chosen = []
            for i in positions:
                h = alive[i]
                chosen.append(HostVerdict(h.id, h.name, "candidate", None, None, totals[i],
                                          wcol[i], rcol[i], h.pending_memory_mib,
                                          h.pending_vcpus, h.pending_vms))
            chosen[0] = chosen[0]._replace(outcome="chosen")
            summary = f"{best_name}, best score {top} of {len(alive)} hosts left"
            if len(tied) > 1:
                summary += f" (tied with {', '.join(tied[1:])}; first by name)"
            else:
                tied = ()
            units = tuple((u, f) for u, f, _r in raw)
        if best == ctx.source_host_id:
            summary = f"stays on {best_name}: " + summary
        return Decision(**base, host_id=best, host_name=best_name, summary=summary,
                        hosts=(*chosen, *dropped), tied=tied, units=units)
