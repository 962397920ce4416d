"""What the balancers share: who is over- or under-utilized, which VM to move where,
how unbalanced a cluster is, and the over-commit timestamps monitoring keeps.

The rules are oVirt's (``CpuAndMemoryBalancingPolicyUnit``,
``FindVmAndDestinations``): a host counts as CPU over-utilized only after its load
stayed at or over the threshold for CpuOverCommitDurationMinutes, the cheapest VM
(least CPU used) of the worst host is tried first, and a destination must stay
under HighUtilization with the VM on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from virtplane_engine.scheduling.facts import HostFacts, VmFacts
from virtplane_engine.scheduling.filters_resources import OVERCOMMIT_DOC
from virtplane_engine.scheduling.params import float_param, int_param
from virtplane_engine.scheduling.units import BalanceCandidate, UnitContext


@attrs.frozen
class LoadParams:
    """The parameters of the CPU and memory balancers (oVirt's names and defaults)."""

    high_utilization: int = int_param(
        "HighUtilization", 75, "CPU load (%) at or over which a host is over-utilized",
        50, 99)
    low_utilization: int = int_param(
        "LowUtilization", 0, "CPU load (%) under which a host is under-utilized", 0, 49)
    duration_minutes: int = int_param(
        "CpuOverCommitDurationMinutes", 2,
        "how long a host must stay outside the band before the balancer acts", 1)
    vcpu_ratio: float = float_param(
        "VCpuToPhysicalCpuRatio", 0.0, "vCPU per physical CPU over which a host is "
        "over-utilized; 0 turns the check off", 0.0)
    max_free_for_over: int = int_param(
        "MaxFreeMemoryForOverUtilized", 0, "a host with less memory left (MiB) is "
        "over-utilized; 0 turns memory balancing off", 0)
    min_free_for_under: int = int_param(
        "MinFreeMemoryForUnderUtilized", 0, "a host with more memory left (MiB) is "
        "under-utilized; 0 turns memory balancing off", 0)
    utilization_threshold: int = int_param(
        "UtilizationThresholdInPercent", 80, "percentage of HighUtilization a destination "
        "must stay under", 1, 100)
    vcpu_consumption: int = int_param(
        "VcpuConsumptionPercentage", 10, "CPU % a vCPU of a VM without history is assumed "
        "to use", 1, 100)
    max_overcommit: int = int_param("MaxVdsMemOverCommit", 150, OVERCOMMIT_DOC, 100, 1000)

    @property
    def lowered_high(self) -> int:
        """min(UtilizationThresholdInPercent x High / 100, High - VcpuConsumptionPercentage):
        64 with the defaults of evenly_distributed (80)."""
        return min(self.utilization_threshold * self.high_utilization // 100,
                   self.high_utilization - self.vcpu_consumption)


def _stayed(host: HostFacts, now: float, minutes: int) -> bool:
    since = host.cpu_over_commit_since
    return since is not None and now - since >= minutes * 60


def cpu_over_utilized(ctx: UnitContext, hosts: Iterable[HostFacts], threshold: float,
                      p: LoadParams) -> list[HostFacts]:
    """Hosts at or over ``threshold`` for the duration with VMs to move, or over the
    vCPU ratio; busiest first."""
    out = []
    for h in hosts:
        load = h.effective_cpu_percent
        over = (load >= threshold and _stayed(h, ctx.now, p.duration_minutes)
                and h.vm_count > 0)
        ratio = (p.vcpu_ratio > 0 and h.cpus > 0
                 and h.vcpus_committed / h.cpus >= p.vcpu_ratio)
        if over or ratio:
            out.append(h)
    return sorted(out, key=lambda h: (-h.effective_cpu_percent, h.name, h.id))


def cpu_under_utilized(ctx: UnitContext, hosts: Iterable[HostFacts], threshold: float,
                       p: LoadParams, min_vms: int) -> list[HostFacts]:
    """Hosts under ``threshold`` (and settled there) with at least ``min_vms`` VMs;
    idlest first."""
    out = [h for h in hosts
           if h.cpu_usage_percent is not None and h.effective_cpu_percent < threshold
           and (h.cpu_over_commit_since is None or _stayed(h, ctx.now, p.duration_minutes))
           and h.vm_count >= min_vms]
    return sorted(out, key=lambda h: (h.effective_cpu_percent, h.name, h.id))


def memory_over_utilized(hosts: Iterable[HostFacts], p: LoadParams) -> list[HostFacts]:
    """Hosts with less memory left than MaxFreeMemoryForOverUtilized and 2+ VMs."""
    if p.max_free_for_over <= 0:
        return []
    out = [h for h in hosts if h.scheduling_memory_mib(p.max_overcommit) < p.max_free_for_over
           and h.vm_count > 1]
    return sorted(out, key=lambda h: (h.scheduling_memory_mib(p.max_overcommit), h.name))


def memory_under_utilized(hosts: Iterable[HostFacts], p: LoadParams,
                          min_vms: int) -> list[HostFacts]:
    """Hosts with more memory left than MinFreeMemoryForUnderUtilized."""
    if p.min_free_for_under <= 0:
        return []
    out = [h for h in hosts if h.scheduling_memory_mib(p.max_overcommit) > p.min_free_for_under
           and h.vm_count >= min_vms]
    return sorted(out, key=lambda h: (-h.scheduling_memory_mib(p.max_overcommit), h.name))


def fits(host: HostFacts, vm: VmFacts, p: LoadParams) -> bool:
    """oVirt's destination check: CPU stays under HighUtilization and memory above
    MaxFreeMemoryForOverUtilized with the VM on the host."""
    cpu = (host.load + vm.cpu_load) / host.cpus if host.cpus > 0 else float("inf")
    mem = host.scheduling_memory_mib(p.max_overcommit) - vm.memory_mib
    return cpu <= p.high_utilization and mem > p.max_free_for_over


def vms_and_destinations(ctx: UnitContext, sources: Sequence[HostFacts],
                         destinations: Sequence[HostFacts], p: LoadParams, metric: str,
                         why: str) -> list[BalanceCandidate]:
    """For each source (in order), its migratable running VMs cheapest first, each with
    the destinations it fits on plus its own host."""
    out = []
    for src in sources:
        vms = sorted((v for v in ctx.vms_on(src.id) if v.migratable and v.status == "Up"),
                     key=lambda v: (v.cpu_load, v.name, v.id))
        for vm in vms:
            dests = [d.id for d in destinations if d.id != src.id and fits(d, vm, p)]
            if dests:
                out.append(BalanceCandidate(vm.id, src.id, (*dests, src.id), metric,
                                            f"{src.name} {why}"))
    return out


# ----------------------------------------------------------------- cluster figures

def apply_move(hosts: Sequence[HostFacts], vm: VmFacts, source_id: str,
               dest_id: str) -> list[HostFacts]:
    """The hosts as they would be with ``vm`` moved (its CPU use, memory and count)."""
    out = []
    for h in hosts:
        if h.id not in (source_id, dest_id) or source_id == dest_id:
            out.append(h)
            continue
        sign = -1 if h.id == source_id else 1
        load = max(h.load - h.pending_cpu + sign * vm.cpu_load, 0.0)
        free = h.free_memory_mib
        out.append(attrs.evolve(
            h,
            cpu_usage_percent=(load / h.cpus if h.cpus > 0 else h.cpu_usage_percent),
            committed_memory_mib=h.committed_memory_mib + sign * vm.memory_mib,
            free_memory_mib=None if free is None else free - sign * vm.memory_mib,
            vcpus_committed=h.vcpus_committed + sign * vm.vcpus,
            vm_ids=(h.vm_ids - {vm.id}) if sign < 0 else (h.vm_ids | {vm.id})))
    return out


class OverCommitTracker:
    """oVirt's over-commit timestamps: when each host left the [Low, High] CPU band.

    Monitoring calls :meth:`update` after each host poll; the timestamp is set when
    the load reaches HighUtilization or falls to LowUtilization and kept while it
    stays there, cleared as soon as the load is back inside. The balancers then
    act only on hosts outside the band for CpuOverCommitDurationMinutes, so one
    busy minute does not move anything.
    """

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def update(self, host_id: str, load_percent: float, now: float, high: float,
               low: float) -> float | None:
        """Record a sample; returns the host's timestamp (None when inside the band)."""
        if load_percent >= high or load_percent <= low:
            return self._since.setdefault(host_id, now)
        self._since.pop(host_id, None)
        return None

    def since(self, host_id: str) -> float | None:
        return self._since.get(host_id)

    def apply(self, host: HostFacts) -> HostFacts:
        """The host with its recorded timestamp."""
        return attrs.evolve(host, cpu_over_commit_since=self._since.get(host.id))
