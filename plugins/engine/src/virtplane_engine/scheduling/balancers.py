"""oVirt's four balancers: none, even CPU/memory load, power saving, even VM count.

Each returns candidates, best first; the balancing cycle (:mod:`.balance`) tries
them through the full scheduler and performs at most one. Each also says how
unbalanced a cluster is on the figure it improves (:meth:`cost`), which the
cycle uses to require a real improvement before it moves anything.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from virtplane_engine.scheduling import balancing
from virtplane_engine.scheduling.balancing import LoadParams
from virtplane_engine.scheduling.facts import HostFacts, spread
from virtplane_engine.scheduling.filters_resources import OVERCOMMIT_DOC
from virtplane_engine.scheduling.params import NoParams, bool_param, int_param
from virtplane_engine.scheduling.units import (
    BalanceCandidate,
    BalancerUnit,
    PowerAction,
    UnitContext,
)
from virtplane_engine.scheduling.weights_guests import slots


class NoBalancer(BalancerUnit[NoParams]):
    """Never migrates anything: placement at start only (policies ``none`` and
    ``cluster_maintenance``)."""

    name = "None"

    def balance(self, ctx: UnitContext, params: NoParams,
                hosts: Sequence[HostFacts]) -> list[BalanceCandidate]:
        return []


class EvenDistributionBalancer(BalancerUnit[LoadParams]):
    """Moves VMs off hosts whose CPU stayed at or over HighUtilization for
    CpuOverCommitDurationMinutes, onto hosts under the lowered threshold
    min(UtilizationThresholdInPercent x High, High - VcpuConsumptionPercentage); then
    the same for memory when MaxFreeMemoryForOverUtilized and
    MinFreeMemoryForUnderUtilized are set."""

    name = "OptimalForEvenDistribution"
    params_type = LoadParams

    def balance(self, ctx: UnitContext, params: LoadParams,
                hosts: Sequence[HostFacts]) -> list[BalanceCandidate]:
        if len(hosts) < 2:
            return []
        high = params.high_utilization
        sources = balancing.cpu_over_utilized(ctx, hosts, high, params)
        dests = balancing.cpu_under_utilized(ctx, hosts, params.lowered_high, params, 0)
        out = balancing.vms_and_destinations(
            ctx, sources, dests, params, "cpu",
            f"CPU at or over HighUtilization {high}% for "
            f"{params.duration_minutes}+ min")
        mem_sources = balancing.memory_over_utilized(hosts, params)
        mem_dests = balancing.memory_under_utilized(hosts, params, 0)
        out += balancing.vms_and_destinations(
            ctx, mem_sources, mem_dests, params, "memory",
            f"has less than MaxFreeMemoryForOverUtilized {params.max_free_for_over} MiB "
            "left")
        return out


@attrs.frozen
class PowerParams(LoadParams):
    """Power saving's parameters: the load ones plus the host power rules."""

    low_utilization: int = int_param(
        "LowUtilization", 20, "CPU load (%) under which a host is emptied", 0, 49)
    hosts_in_reserve: int = int_param(
        "HostsInReserve", 0, "empty hosts to keep Up for sudden load", 0)
    automatic_power: bool = bool_param(
        "EnableAutomaticHostPowerManagement", False,
        "let power saving put empty hosts into maintenance and power them off and on")


class PowerSavingBalancer(BalancerUnit[PowerParams]):
    """Empties under-utilized hosts (CPU under LowUtilization, settled) onto hosts that are
    not over-utilized, and relieves hosts over the lowered HighUtilization; the power
    saving weights then pack VMs onto the busiest host that stays under it. With
    EnableAutomaticHostPowerManagement, keeps HostsInReserve empty hosts Up and moves the
    rest to maintenance and off, one step per cycle."""

    name = "OptimalForPowerSaving"
    params_type = PowerParams

    def balance(self, ctx: UnitContext, params: PowerParams,
                hosts: Sequence[HostFacts]) -> list[BalanceCandidate]:
        if len(hosts) < 2:
            return []
        over = balancing.cpu_over_utilized(ctx, hosts, params.lowered_high, params)
        under = [h for h in balancing.cpu_under_utilized(
            ctx, hosts, params.low_utilization, params, 1) if h not in over]
        busy = {h.id for h in balancing.cpu_over_utilized(
            ctx, hosts, params.high_utilization, params)}
        dests = [h for h in hosts if h.id not in busy]
        out = balancing.vms_and_destinations(
            ctx, over, dests, params, "cpu",
            f"CPU at or over {params.lowered_high}% (lowered HighUtilization)")
        out += balancing.vms_and_destinations(
            ctx, under, dests, params, "consolidation",
            f"CPU under LowUtilization {params.low_utilization}%: emptying it")
        mem_over = balancing.memory_over_utilized(hosts, params)
        mem_under = [h for h in balancing.memory_under_utilized(hosts, params, 1)
                     if h not in mem_over]
        mem_dests = [h for h in hosts
                     if h.scheduling_memory_mib(params.max_overcommit)
                     > params.max_free_for_over]
        out += balancing.vms_and_destinations(
            ctx, mem_over, mem_dests, params, "memory",
            f"has less than MaxFreeMemoryForOverUtilized {params.max_free_for_over} MiB left")
        out += balancing.vms_and_destinations(
            ctx, mem_under, mem_dests, params, "memory_consolidation",
            f"has more than MinFreeMemoryForUnderUtilized {params.min_free_for_under} MiB "
            "left: emptying it")
        return out

    def cost(self, ctx: UnitContext, params: PowerParams, hosts: Sequence[HostFacts],
             metric: str) -> float:
        """Moves that empty a host are judged by the VMs still running on hosts power
        saving wants empty (CPU under LowUtilization; memory left over
        MinFreeMemoryForUnderUtilized) plus the number of such hosts that still run
        any: moving a VM from one idle host to another that stays busy with VMs
        improves nothing and is refused by the margin, but the move that empties one
        of two idle hosts counts (every host idle must still consolidate). Moves off an
        overloaded host are judged by the spread of load, like the even distribution."""
        if metric == "consolidation":
            idle = [h for h in hosts if h.cpu_usage_percent is not None
                    and h.effective_cpu_percent < params.low_utilization]
        elif metric == "memory_consolidation":
            idle = [h for h in hosts if params.min_free_for_under > 0 and
                    h.scheduling_memory_mib(params.max_overcommit) > params.min_free_for_under]
        else:
            return spread(hosts, metric)
        return float(sum(h.vm_count for h in idle) + sum(h.vm_count > 0 for h in idle))

    def host_power(self, ctx: UnitContext, params: PowerParams,
                   hosts: Sequence[HostFacts]) -> PowerAction:
        """oVirt's host power rules, as a plan (the engine performs it).

        R = HostsInReserve, E = empty Up hosts (no VM, nothing migrating or pending).
        In order: R > E with no host in maintenance or down: nothing; R < E with 2+
        power-managed hosts in maintenance: power one off; R < E: one empty
        power-managed, non-SPM host to maintenance; R = E with one in maintenance:
        power it off; R > E: activate a maintenance host, else power on a down one.
        """
        if not params.automatic_power:
            return PowerAction(None, None, None,
                               "EnableAutomaticHostPowerManagement is off")
        def by_name(hs: list[HostFacts]) -> list[HostFacts]:
            return sorted(hs, key=lambda h: (h.name, h.id))

        empty = by_name([h for h in hosts if h.status == "Up" and h.vm_count == 0
                         and h.migrating_vms == 0 and h.pending_vms == 0])
        maint = by_name([h for h in hosts if h.status == "Maintenance" and h.power_management
                         and h.external_status_ok and not h.is_spm])
        down = by_name([h for h in hosts if h.status == "Down" and h.power_management
                        and h.external_status_ok])
        r, e = params.hosts_in_reserve, len(empty)
        state = f"{e} empty host{'s' if e != 1 else ''} Up, HostsInReserve {r}"
        if r > e and not maint and not down:
            return PowerAction(None, None, None,
                               f"{state}: no host in maintenance or down to bring back")
        if r < e and len(maint) >= 2:
            h = maint[0]
            return PowerAction("power_off", h.id, h.name,
                               f"{state}, {len(maint)} hosts in maintenance: power one off")
        if r < e:
            movable = [h for h in empty if h.power_management and not h.is_spm
                       and h.external_status_ok]
            if not movable:
                return PowerAction(None, None, None,
                                   f"{state}: no empty host is power-managed, non-SPM and OK")
            h = movable[-1]
            return PowerAction("maintenance", h.id, h.name,
                               f"{state}: more empty hosts than the reserve")
        if r == e and maint:
            h = maint[0]
            return PowerAction("power_off", h.id, h.name,
                               f"{state}: reserve met, {h.name} idles in maintenance")
        if r > e and maint:
            h = maint[0]
            return PowerAction("activate", h.id, h.name, f"{state}: reserve short")
        if r > e and down:
            h = down[0]
            return PowerAction("power_on", h.id, h.name, f"{state}: reserve short")
        return PowerAction(None, None, None, f"{state}: nothing to do")


@attrs.frozen
class GuestBalanceParams:
    high_vm_count: int = int_param(
        "HighVmCount", 10, "no VM-count balancing unless some host runs at least this many "
        "VMs", 0)
    migration_threshold: int = int_param(
        "MigrationThreshold", 5, "VM-count difference required between the busiest host "
        "and a destination", 2)
    spm_vm_grace: int = int_param(
        "SpmVmGrace", 5, "VMs the SPM host counts as running on top of its own", 0)
    high_utilization: int = int_param(
        "HighUtilization", 75, "CPU load (%) a destination must stay under with the VM",
        50, 99)
    max_free_for_over: int = int_param(
        "MaxFreeMemoryForOverUtilized", 0, "memory (MiB) a destination must keep left", 0)
    max_overcommit: int = int_param(
        "MaxVdsMemOverCommit", 150, OVERCOMMIT_DOC, 100, 1000)


class EvenGuestDistributionBalancer(BalancerUnit[GuestBalanceParams]):
    """Evens out VM counts: when the busiest host has HighVmCount or more VM slots
    (running VMs, + SpmVmGrace on the SPM), moves its VMs to hosts with at least
    MigrationThreshold fewer."""

    name = "OptimalForEvenGuestDistribution"
    params_type = GuestBalanceParams

    def balance(self, ctx: UnitContext, params: GuestBalanceParams,
                hosts: Sequence[HostFacts]) -> list[BalanceCandidate]:
        if len(hosts) < 2:
            return []
        count = {h.id: slots(h, params.spm_vm_grace) for h in hosts}
        worst = max(count.values())
        if worst < params.high_vm_count:
            return []
        sources = sorted((h for h in hosts if count[h.id] >= worst), key=lambda h: h.name)
        dests = [h for h in hosts if worst - count[h.id] >= params.migration_threshold]
        load = LoadParams(high_utilization=params.high_utilization,
                          max_free_for_over=params.max_free_for_over,
                          max_overcommit=params.max_overcommit)
        return balancing.vms_and_destinations(
            ctx, sources, dests, load, "vm_count",
            f"runs {worst} VM slots (HighVmCount {params.high_vm_count})")

    def cost(self, ctx: UnitContext, params: GuestBalanceParams,
             hosts: Sequence[HostFacts], metric: str) -> float:
        import statistics

        if len(hosts) < 2:
            return 0.0
        return statistics.pstdev([float(slots(h, params.spm_vm_grace)) for h in hosts])
