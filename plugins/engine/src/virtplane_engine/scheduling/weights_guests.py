"""Weights about VMs rather than load: VM counts, preferred hosts, HA reservation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import attrs

from virtplane_engine.scheduling.facts import HostFacts, VmFacts
from virtplane_engine.scheduling.params import NoParams, int_param
from virtplane_engine.scheduling.units import Mode, UnitContext, WeightUnit

#: oVirt's penalty for a host outside a VM's preferred list
PREFERRED_PENALTY = 10_000.0


@attrs.frozen
class GuestParams:
    spm_vm_grace: int = int_param(
        "SpmVmGrace", 5, "VMs the SPM host counts as running on top of its own (it does "
        "storage work for the data center)", 0)


def slots(host: HostFacts, grace: int) -> int:
    """oVirt's VM slots of a host: running + pending VMs, + SpmVmGrace on the SPM."""
    return host.vm_count + host.pending_vms + (grace if host.is_spm else 0)


class EvenGuestDistributionWeight(WeightUnit[GuestParams]):
    """Prefers the host running the fewest VMs (pending ones and the SPM's grace
    counted)."""

    name = "OptimalForEvenGuestDistribution"
    params_type = GuestParams

    def score(self, ctx: UnitContext, params: GuestParams, vm: VmFacts,
              hosts: Sequence[HostFacts]) -> dict[str, float]:
        return {h.id: float(slots(h, params.spm_vm_grace)) for h in hosts}


class PreferredHostsWeight(WeightUnit[NoParams]):
    """At a start, puts hosts outside the VM's preferred list far behind those in it
    (they stay possible when no preferred host fits)."""

    name = "PreferredHosts"

    def score(self, ctx: UnitContext, params: NoParams, vm: VmFacts,
              hosts: Sequence[HostFacts]) -> dict[str, float]:
        if ctx.mode is not Mode.START or not vm.preferred_hosts:
            return {}
        return {h.id: (0.0 if h.id in vm.preferred_hosts else PREFERRED_PENALTY)
                for h in hosts}


@attrs.frozen
class HaReservationParams:
    scale_down: int = int_param(
        "ScaleDown", 1, "divides the HA-reservation weight (less influence against the "
        "other weights)", 1, 100)


class HaReservationWeight(WeightUnit[HaReservationParams]):
    """In clusters with HA reservation, spreads highly available VMs: a host's weight is
    its share of HA VMs (0-100, the busiest host 100) divided by ScaleDown."""

    name = "OptimalForHaReservation"
    params_type = HaReservationParams

    def score(self, ctx: UnitContext, params: HaReservationParams, vm: VmFacts,
              hosts: Sequence[HostFacts]) -> dict[str, float]:
        if not ctx.cluster.ha_reservation or not vm.highly_available:
            return {}
        counts = Counter(v.host_id for v in ctx.cluster.vms
                         if v.highly_available and v.host_id is not None and v.id != vm.id)
        top = max((counts[h.id] for h in hosts), default=0)
        if top == 0:
            return {}
        return {h.id: counts[h.id] * 100 / top / params.scale_down for h in hosts}
