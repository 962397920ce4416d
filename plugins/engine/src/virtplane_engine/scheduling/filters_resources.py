"""Resource filters: memory (with overcommit), CPU count and CPU overload."""

from __future__ import annotations

import attrs

from virtplane_engine.scheduling.facts import HostFacts, VmFacts
from virtplane_engine.scheduling.params import NoParams, int_param
from virtplane_engine.scheduling.reasons import Reason
from virtplane_engine.scheduling.units import HostFilter, UnitContext

OVERCOMMIT_DOC = ("memory promised to guests may reach this percentage of the host's "
                  "physical memory (oVirt's MaxVdsMemOverCommit; 100 = no overcommit)")


@attrs.frozen
class MemoryParams:
    max_overcommit: int = int_param("MaxVdsMemOverCommit", 150, OVERCOMMIT_DOC, 100, 1000)


class MemoryFilter(HostFilter[MemoryParams]):
    """Keeps hosts with enough memory for the VM, physically free now and within the
    overcommit limit once every running and pending VM has what it was promised.

    A paused VM or a VM that already runs on the host needs nothing new there. When a
    host lacks memory only because of VMs still starting on it, the reason says so and
    the decision suggests a retry (oVirt's delayed run).
    """

    name = "Memory"
    params_type = MemoryParams

    def reject(self, ctx: UnitContext, params: MemoryParams, vm: VmFacts,
               host: HostFacts) -> str | None:
        if vm.paused or vm.host_id == host.id:
            return None
        need = vm.memory_mib
        pending = host.pending_memory_mib
        free = host.physical_free_mib
        if free is not None and free < need:
            return Reason(f"needs {need} MiB free, host has {free} MiB"
                          + (f" after {pending} MiB pending for VMs starting there"
                             if pending else ""),
                          pending_only=bool(pending) and free + pending >= need)
        if host.memory_mib <= 0:
            return None  # the driver cannot tell: no admission check, as in the core
        room = host.scheduling_memory_mib(params.max_overcommit)
        if room < need:
            return Reason(f"needs {need} MiB, only {max(room, 0)} MiB left to promise "
                          f"({params.max_overcommit}% of {host.memory_mib} MiB minus "
                          f"{host.committed_memory_mib} MiB running"
                          + (f", {pending} MiB pending" if pending else "")
                          + (f", {host.reserved_memory_mib} MiB reserved"
                             if host.reserved_memory_mib else "") + ")",
                          pending_only=bool(pending) and room + pending >= need)
        return None


class CpuFilter(HostFilter[NoParams]):
    """Keeps hosts with at least as many CPUs as the VM has vCPUs; a host without a
    reported CPU topology is dropped (nothing to place against)."""

    name = "CPU"

    def reject(self, ctx: UnitContext, params: NoParams, vm: VmFacts,
               host: HostFacts) -> str | None:
        if host.cpus <= 0:
            return "reports no CPU topology"
        if host.cpus < vm.vcpus:
            return f"has {host.cpus} CPUs; the VM has {vm.vcpus} vCPUs"
        return None


@attrs.frozen
class CpuOverloadParams:
    high_utilization: int = int_param(
        "HighUtilization", 90, "CPU load (%) over which a host counts as over-utilized",
        50, 99)
    duration_minutes: int = int_param(
        "CpuOverCommitDurationMinutes", 2,
        "how long a host must stay over HighUtilization before it counts", 1)


class CpuOverloadedFilter(HostFilter[CpuOverloadParams]):
    """Drops hosts whose shared CPU load (pending VMs included) is over HighUtilization
    and has been for CpuOverCommitDurationMinutes; hosts without CPU statistics yet are
    dropped too (their load is unknown)."""

    name = "CPUOverloaded"
    params_type = CpuOverloadParams

    def reject(self, ctx: UnitContext, params: CpuOverloadParams, vm: VmFacts,
               host: HostFacts) -> str | None:
        if host.cpu_usage_percent is None:
            return "has no CPU statistics yet"
        load = host.effective_cpu_percent
        since = host.cpu_over_commit_since
        if (load > params.high_utilization and since is not None
                and ctx.now - since >= params.duration_minutes * 60):
            return (f"CPU at {load:.0f}% > HighUtilization {params.high_utilization}% for "
                    f"{(ctx.now - since) / 60:.0f} min (CpuOverCommitDurationMinutes "
                    f"{params.duration_minutes})")
        return None
