"""Placement filters: pinning, migration sources, networks, clusters in maintenance."""

from __future__ import annotations

from virtplane_engine.scheduling.facts import HostFacts, VmFacts
from virtplane_engine.scheduling.params import NoParams
from virtplane_engine.scheduling.reasons import names
from virtplane_engine.scheduling.units import HostFilter, Mode, UnitContext


class PinToHostFilter(HostFilter[NoParams]):
    """Keeps only the hosts a VM is pinned to (all hosts when it is pinned nowhere)."""

    name = "PinToHost"

    def reject(self, ctx: UnitContext, params: NoParams, vm: VmFacts,
               host: HostFacts) -> str | None:
        if not vm.pinned_hosts or host.id in vm.pinned_hosts:
            return None
        return f"the VM is pinned to {names(vm.pinned_hosts, ctx.hosts_by_id)}"


class MigrationFilter(HostFilter[NoParams]):
    """When a VM moves: keeps its current host (so the scheduler may conclude it should
    stay), drops hosts that are the source under another name (same address), and
    drops every other host for a VM that cannot migrate."""

    name = "Migration"

    def reject(self, ctx: UnitContext, params: NoParams, vm: VmFacts,
               host: HostFacts) -> str | None:
        source = ctx.source_host_id
        if ctx.mode is Mode.START or source is None or host.id == source:
            return None
        if not vm.migratable:
            return "the VM cannot be migrated"
        src = ctx.hosts_by_id.get(source)
        if src is not None and src.address and src.address == host.address:
            return f"same address ({host.address}) as the source host {src.name}"
        return None


class NetworkFilter(HostFilter[NoParams]):
    """Keeps hosts that carry every network the VM's NICs use; a host that reports no
    network list is kept."""

    name = "Network"

    def reject(self, ctx: UnitContext, params: NoParams, vm: VmFacts,
               host: HostFacts) -> str | None:
        if host.networks is None or vm.networks <= host.networks:
            return None  # (a subset test: no set built for the hosts that pass)
        missing = vm.networks - host.networks
        if missing:
            return f"lacks network{'s' if len(missing) > 1 else ''} {', '.join(sorted(missing))}"
        return None


class ClusterInMaintenanceFilter(HostFilter[NoParams]):
    """While the cluster is in maintenance only highly available VMs may start; running
    VMs may still migrate."""

    name = "ClusterInMaintenance"

    def reject(self, ctx: UnitContext, params: NoParams, vm: VmFacts,
               host: HostFacts) -> str | None:
        if ctx.mode is Mode.START and not vm.highly_available:
            return "the cluster is in maintenance: only highly available VMs start"
        return None
