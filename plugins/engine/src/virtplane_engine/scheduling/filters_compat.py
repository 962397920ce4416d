"""Mandatory filters: can this host run this VM's architecture and CPU model at all."""

from __future__ import annotations

from virtplane_engine.scheduling.facts import HostFacts, VmFacts
from virtplane_engine.scheduling.params import NoParams
from virtplane_engine.scheduling.units import HostFilter, UnitContext


class ArchitectureFilter(HostFilter[NoParams]):
    """Keeps hosts that run guests of the VM's architecture (the cluster's when the VM
    names none).

    A host that reports no architecture at all is kept (nothing to judge it by); a
    host that accepts any guest architecture (libvirt's test driver) is kept.
    """

    name = "Architecture"

    def reject(self, ctx: UnitContext, params: NoParams, vm: VmFacts,
               host: HostFacts) -> str | None:
        arch = vm.arch or ctx.cluster.arch
        if host.any_guest_arch or not arch or arch in host.guest_arches or arch == host.arch:
            return None  # (no set built for the hosts that pass)
        offered = set(host.guest_arches) | ({host.arch} if host.arch else set())
        if not offered or arch in offered:
            return None
        return f"runs {', '.join(sorted(offered))} guests; the VM is {arch}"


class CpuLevelFilter(HostFilter[NoParams]):
    """Keeps hosts that can give the guest the VM's CPU model (the cluster's when the VM
    names none), as the host's usable CPU models report it.

    A host that reports no usable models is kept: without the list there is nothing
    to compare, and refusing it would make hosts of drivers without the list useless.
    """

    name = "CPU-Level"

    def reject(self, ctx: UnitContext, params: NoParams, vm: VmFacts,
               host: HostFacts) -> str | None:
        wanted = vm.cpu_model or ctx.cluster.cpu_model
        if not wanted or not host.usable_cpu_models or wanted in host.usable_cpu_models:
            return None
        offered = sorted(host.usable_cpu_models)
        more = f" and {len(offered) - 8} more" if len(offered) > 8 else ""
        return (f"cannot give guests the CPU model {wanted} (it offers "
                f"{', '.join(offered[:8])}{more})")
