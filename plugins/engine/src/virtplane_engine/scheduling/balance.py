"""One balancing cycle of one cluster: at most one move, and never a pointless one.

oVirt's cycle (``SchedulingManager.performLoadBalancing``): every interval, ask the
policy's balancer for candidate VMs over the Up hosts that have nothing migrating
or pending, try them in order through the full scheduler restricted to the
candidate hosts, skip a VM whose best host is its own, and stop at the first
real move. virtplane adds what users of oVirt-like balancers ask for (VMs moving
back and forth, far too many moves on a noisy metric):

* **cooldown**: a VM moved less than MigrationCooldownMinutes ago is not a
  candidate (the engine reports moves through ``VmFacts.last_migrated_at``; moves
  this service made are remembered too);
* **margin**: the move must lower the cluster's imbalance, as the balancer
  measures it, by ImprovementMarginPercent, predicted on the snapshot;
* **dry run**: the same cycle, nothing recorded; the report says what would move
  and why every other candidate would not.
"""

from __future__ import annotations

from typing import Any

import attrs

from virtplane_engine.scheduling import balancing
from virtplane_engine.scheduling.decision import Decision
from virtplane_engine.scheduling.facts import UP, ClusterFacts
from virtplane_engine.scheduling.pending import PendingEntry
from virtplane_engine.scheduling.policies import ClusterPolicy
from virtplane_engine.scheduling.scheduler import SchedulingService
from virtplane_engine.scheduling.units import Mode, PowerAction


@attrs.frozen
class Move:
    """The migration a cycle decided on (the engine performs it)."""

    vm_id: str
    vm_name: str
    source_host_id: str
    source_host_name: str
    dest_host_id: str
    dest_host_name: str
    metric: str
    reason: str
    cost_before: float
    cost_after: float
    decision: Decision

    @property
    def improvement_percent(self) -> float:
        if self.cost_before <= 0:
            return 0.0
        return 100.0 * (self.cost_before - self.cost_after) / self.cost_before


@attrs.frozen
class Skip:
    """A candidate the cycle did not move, and why."""

    vm_id: str
    vm_name: str
    reason: str


@attrs.frozen
class BalanceReport:
    """What one cycle did (or, in a dry run, would do), and why."""

    cluster_id: str
    cluster_name: str
    policy: str
    balancer: str
    at: float
    dry_run: bool
    move: Move | None
    skipped: tuple[Skip, ...] = ()
    note: str = ""
    power: PowerAction | None = None


def run_cycle(service: SchedulingService, policy: ClusterPolicy, cluster: ClusterFacts, *,
              dry_run: bool = False) -> BalanceReport:
    """Balance ``cluster`` once under ``policy``: at most one :class:`Move` (the
    cluster's scheduling lock is held throughout, so no start interleaves)."""
    with service.cluster_lock(cluster.id):
        return _cycle(service, policy, cluster, dry_run)


def _cycle(service: SchedulingService, policy: ClusterPolicy, cluster: ClusterFacts,
           dry_run: bool) -> BalanceReport:
    compiled = service.compile(policy)
    unit, params = compiled.balancer
    cooldown = compiled.balancing.cooldown_minutes * 60
    margin = compiled.balancing.margin_percent
    ctx, all_hosts = service.context(cluster, Mode.BALANCE)
    base: dict[str, Any] = dict(cluster_id=cluster.id, cluster_name=cluster.name, policy=policy.name,
                balancer=unit.name, at=ctx.now, dry_run=dry_run)
    power = unit.host_power(ctx, params, all_hosts)
    hosts = [h for h in all_hosts if h.status == UP and h.migrating_vms == 0
             and h.pending_vms == 0 and h.pending_vcpus == 0]
    if len(hosts) < 2:
        return BalanceReport(**base, move=None, power=power,
                             note=f"{len(hosts)} host(s) Up with nothing migrating or "
                                  "pending; balancing needs 2")
    candidates = unit.balance(ctx, params, hosts)
    if not candidates:
        return BalanceReport(**base, move=None, power=power,
                             note="the balancer proposes no move")
    skipped: list[Skip] = []
    for cand in candidates:
        vm = ctx.vms_by_id.get(cand.vm_id)
        if vm is None:
            skipped.append(Skip(cand.vm_id, cand.vm_id, "not in the cluster snapshot"))
            continue
        last = max(filter(None, (vm.last_migrated_at, service.moved_at.get(vm.id))),
                   default=None)
        if last is not None and ctx.now - last < cooldown:
            skipped.append(Skip(vm.id, vm.name,
                                f"moved {(ctx.now - last) / 60:.0f} min ago (cooldown "
                                f"{compiled.balancing.cooldown_minutes} min)"))
            continue
        decision = service.schedule(policy, cluster, vm, mode=Mode.BALANCE,
                                    source_host_id=cand.source_host_id,
                                    only=cand.candidate_host_ids, record_pending=False)
        if decision.host_id is None:
            skipped.append(Skip(vm.id, vm.name, f"no candidate host fits: {decision.summary}"))
            continue
        if decision.host_id == cand.source_host_id:
            skipped.append(Skip(vm.id, vm.name, f"best where it is ({decision.summary})"))
            continue
        before = unit.cost(ctx, params, hosts, cand.metric)
        after = unit.cost(ctx, params, balancing.apply_move(
            hosts, vm, cand.source_host_id, decision.host_id), cand.metric)
        gain = 100.0 * (before - after) / before if before > 0 else 0.0
        if gain < margin:
            skipped.append(Skip(vm.id, vm.name,
                                f"moving it to {decision.host_name} improves {cand.metric} "
                                f"balance by {gain:.1f}% < ImprovementMarginPercent {margin}"))
            continue
        src = ctx.hosts_by_id[cand.source_host_id]
        move = Move(vm.id, vm.name, src.id, src.name, decision.host_id,
                    decision.host_name or decision.host_id, cand.metric, cand.reason,
                    before, after, decision)
        if not dry_run:
            service.moved_at[vm.id] = ctx.now
            service.pending.add(PendingEntry(vm.id, decision.host_id, vm.memory_mib,
                                             vm.vcpus, vm.cpu_load, ctx.now))
        return BalanceReport(**base, move=move, skipped=tuple(skipped), power=power)
    return BalanceReport(**base, move=None, skipped=tuple(skipped), power=power,
                         note="no candidate may move")


def format_report(r: BalanceReport) -> str:
    """The cycle as ``virtplane scheduling balance [--dry-run]`` prints it."""
    head = (f"{'[dry run] ' if r.dry_run else ''}cluster {r.cluster_name or r.cluster_id!r}, "
            f"policy {r.policy!r} (balancer {r.balancer})")
    lines = [head]
    if r.move is not None:
        m = r.move
        lines.append(f"{'would move' if r.dry_run else 'move'} {m.vm_name}: {m.source_host_name}"
                     f" -> {m.dest_host_name} ({m.reason}; {m.metric} imbalance "
                     f"{m.cost_before:.3g} -> {m.cost_after:.3g}, "
                     f"-{m.improvement_percent:.0f}%)")
    else:
        lines.append("no move" + (f": {r.note}" if r.note else ""))
    for s in r.skipped:
        lines.append(f"  not {s.vm_name}: {s.reason}")
    if r.power is not None:
        if r.power.action:
            lines.append(f"host power: {r.power.action} {r.power.host_name} ({r.power.reason})")
        else:
            lines.append(f"host power: nothing ({r.power.reason})")
    return "\n".join(lines)
