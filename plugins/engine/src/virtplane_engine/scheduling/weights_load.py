"""CPU and memory weights: spread load evenly, or pack it for power saving.

Weights are raw numbers, lower is better; the rank selector (:mod:`.selector`)
only compares them within one unit, so their scale does not matter. "Predicted"
figures are the host's after the VM lands there: a VM that already runs on the
host (a migration asking whether to stay) adds nothing, a new VM adds
VcpuConsumptionPercentage per vCPU (oVirt's assumption for a VM with no history),
a running VM adds what it uses now.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from virtplane_engine.scheduling.facts import HostFacts, VmFacts
from virtplane_engine.scheduling.filters_resources import OVERCOMMIT_DOC
from virtplane_engine.scheduling.params import float_param, int_param
from virtplane_engine.scheduling.units import UnitContext, WeightUnit

#: the weight of a host the unit cannot judge or must not pick unless nothing else fits
MAX_WEIGHT = 1_000_000.0
#: added for a host that would exceed VCpuToPhysicalCpuRatio: behind every host within it
RATIO_PENALTY = 100_000.0


def vm_load(ctx: UnitContext, vm: VmFacts, consumption_percent: int) -> float:
    """The VM's CPU load in percent-cores, measured when it runs, assumed when it is new."""
    if vm.host_id is not None and vm.cpu_usage_percent > 0:
        return vm.cpu_load
    return float(consumption_percent * vm.vcpus)


def predicted_cpu(host: HostFacts, vm: VmFacts, added: float) -> float:
    """Host CPU % once the VM runs there (nothing added where it already runs)."""
    load = host.load + (0.0 if vm.host_id == host.id else added)
    return load / host.cpus if host.cpus > 0 else load


def memory_after(host: HostFacts, vm: VmFacts, overcommit: int) -> int:
    """Scheduling memory left once the VM runs there."""
    room = host.scheduling_memory_mib(overcommit)
    return room if vm.host_id == host.id else room - vm.memory_mib


@attrs.frozen
class CpuEvenParams:
    vcpu_consumption: int = int_param(
        "VcpuConsumptionPercentage", 10, "CPU % a vCPU of a VM without history is assumed "
        "to use", 1, 100)
    vcpu_ratio: float = float_param(
        "VCpuToPhysicalCpuRatio", 0.0, "vCPU per physical CPU over which a host is "
        "over-utilized; 0 turns the check off", 0.0)


class CpuEvenDistributionWeight(WeightUnit[CpuEvenParams]):
    """Prefers the host whose CPU load would be lowest with the VM on it; a host that
    would exceed VCpuToPhysicalCpuRatio comes after all others, a host without CPU
    statistics last."""

    name = "OptimalForCpuEvenDistribution"
    params_type = CpuEvenParams

    def score(self, ctx: UnitContext, params: CpuEvenParams, vm: VmFacts,
              hosts: Sequence[HostFacts]) -> dict[str, float]:
        added = vm_load(ctx, vm, params.vcpu_consumption)
        out = {}
        for h in hosts:
            if h.cpu_usage_percent is None:
                out[h.id] = MAX_WEIGHT
                continue
            weight = predicted_cpu(h, vm, added)
            if params.vcpu_ratio > 0 and h.cpus > 0:
                vcpus = h.vcpus_committed + h.pending_vcpus + (
                    0 if vm.host_id == h.id else vm.vcpus)
                if vcpus / h.cpus > params.vcpu_ratio:
                    weight += RATIO_PENALTY
            out[h.id] = weight
        return out


@attrs.frozen
class MemoryWeightParams:
    max_overcommit: int = int_param("MaxVdsMemOverCommit", 150, OVERCOMMIT_DOC, 100, 1000)


class MemoryEvenDistributionWeight(WeightUnit[MemoryWeightParams]):
    """Prefers the host with the most memory left to promise once the VM runs there."""

    name = "OptimalForMemoryEvenDistribution"
    params_type = MemoryWeightParams

    def score(self, ctx: UnitContext, params: MemoryWeightParams, vm: VmFacts,
              hosts: Sequence[HostFacts]) -> dict[str, float]:
        return {h.id: float(-memory_after(h, vm, params.max_overcommit)) for h in hosts}


@attrs.frozen
class CpuPowerParams:
    high_utilization: int = int_param(
        "HighUtilization", 75, "CPU load (%) a host must stay under to be packed further",
        50, 99)
    vcpu_consumption: int = int_param(
        "VcpuConsumptionPercentage", 10, "CPU % a vCPU of a VM without history is assumed "
        "to use", 1, 100)


class CpuPowerSavingWeight(WeightUnit[CpuPowerParams]):
    """Prefers the busiest host that stays under HighUtilization with the VM on it (so
    idle hosts empty out); a host that would go over it, or has no statistics, comes
    last."""

    name = "OptimalForCpuPowerSaving"
    params_type = CpuPowerParams

    def score(self, ctx: UnitContext, params: CpuPowerParams, vm: VmFacts,
              hosts: Sequence[HostFacts]) -> dict[str, float]:
        added = vm_load(ctx, vm, params.vcpu_consumption)
        out = {}
        for h in hosts:
            load = predicted_cpu(h, vm, added)
            out[h.id] = (MAX_WEIGHT if h.cpu_usage_percent is None
                         or load > params.high_utilization else -load)
        return out


@attrs.frozen
class MemoryPowerParams:
    max_overcommit: int = int_param("MaxVdsMemOverCommit", 150, OVERCOMMIT_DOC, 100, 1000)
    max_free_for_over: int = int_param(
        "MaxFreeMemoryForOverUtilized", 0, "a host with less memory left (MiB) than this "
        "is over-utilized; 0 turns memory balancing off", 0)


class MemoryPowerSavingWeight(WeightUnit[MemoryPowerParams]):
    """Prefers the host with the least memory left once the VM runs there; a host that
    would drop under MaxFreeMemoryForOverUtilized looks worse than an empty one."""

    name = "OptimalForMemoryPowerSaving"
    params_type = MemoryPowerParams

    def score(self, ctx: UnitContext, params: MemoryPowerParams, vm: VmFacts,
              hosts: Sequence[HostFacts]) -> dict[str, float]:
        ceiling = max((h.memory_mib * params.max_overcommit // 100 for h in hosts), default=0)
        out = {}
        for h in hosts:
            left = memory_after(h, vm, params.max_overcommit)
            if params.max_free_for_over and left < params.max_free_for_over:
                out[h.id] = float(ceiling + params.max_free_for_over - left)
            else:
                out[h.id] = float(left)
        return out
