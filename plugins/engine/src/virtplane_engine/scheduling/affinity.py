"""Affinity groups: VM-to-VM and VM-to-host, positive or negative, hard or soft.

An enforcing rule is a filter (here); a non-enforcing one is a weight (one point
per broken rule, so the host that breaks the fewest wins). "Where a VM runs"
includes VMs placed a moment ago and still starting, so two members of a
negative group started back to back do not land together.
"""

from __future__ import annotations

from collections.abc import Sequence

from virtplane_engine.scheduling.facts import AffinityGroup, HostFacts, VmFacts
from virtplane_engine.scheduling.params import NoParams
from virtplane_engine.scheduling.reasons import names
from virtplane_engine.scheduling.units import FilterUnit, UnitContext, WeightUnit


def _groups(ctx: UnitContext, vm: VmFacts, *, host_side: bool,
            enforcing: bool) -> list[AffinityGroup]:
    out = []
    for g in ctx.cluster.affinity_groups:
        rule = g.host_rule if host_side else g.vm_rule
        if rule is not None and rule.enforcing == enforcing and vm.id in g.vm_ids:
            out.append(g)
    return out


def _peer_hosts(ctx: UnitContext, vm: VmFacts, group: AffinityGroup) -> set[str]:
    placements = ctx.placements
    return {placements[m] for m in group.vm_ids if m != vm.id and m in placements}


def _vm_rule_breaks(ctx: UnitContext, vm: VmFacts, group: AffinityGroup,
                    host: HostFacts, peers: set[str]) -> str | None:
    assert group.vm_rule is not None
    if group.vm_rule.positive:
        if peers and host.id not in peers:
            return (f"{'enforcing ' if group.vm_rule.enforcing else ''}positive affinity "
                    f"group {group.name}: its VMs run on {names(peers, ctx.hosts_by_id)}")
        return None
    if host.id in peers:
        here = [v for v in group.vm_ids
                if v != vm.id and ctx.placements.get(v) == host.id]
        return (f"{'enforcing ' if group.vm_rule.enforcing else ''}negative affinity "
                f"group {group.name}: {names(here, ctx.vms_by_id)} runs there")
    return None


def _host_rule_breaks(group: AffinityGroup, host: HostFacts, ctx: UnitContext) -> str | None:
    assert group.host_rule is not None
    inside = host.id in group.host_ids
    if group.host_rule.positive == inside:
        return None
    kind = "enforcing " if group.host_rule.enforcing else ""
    if group.host_rule.positive:
        return (f"{kind}positive host affinity group {group.name}: its hosts are "
                f"{names(group.host_ids, ctx.hosts_by_id)}")
    return f"{kind}negative host affinity group {group.name} keeps its VMs off this host"


class VmAffinityFilter(FilterUnit[NoParams]):
    """Enforcing VM-to-VM affinity: a positive group's VMs run on one host (a group
    already split over several hosts admits none), a negative group's VMs never share
    a host."""

    name = "VmAffinityGroups"

    def filter(self, ctx: UnitContext, params: NoParams, vm: VmFacts,
               hosts: Sequence[HostFacts]) -> dict[str, str]:
        out: dict[str, str] = {}
        for g in _groups(ctx, vm, host_side=False, enforcing=True):
            peers = _peer_hosts(ctx, vm, g)
            assert g.vm_rule is not None
            if g.vm_rule.positive and len(peers) > 1:
                why = (f"enforcing positive affinity group {g.name} is already split over "
                       f"{names(peers, ctx.hosts_by_id)}")
                for h in hosts:
                    out.setdefault(h.id, why)
                continue
            for h in hosts:
                reason = _vm_rule_breaks(ctx, vm, g, h, peers)
                if reason is not None:
                    out.setdefault(h.id, reason)
        return out


class VmToHostsAffinityFilter(FilterUnit[NoParams]):
    """Enforcing VM-to-host affinity: a positive group's VMs run only on its hosts, a
    negative group's VMs never on them."""

    name = "VmToHostsAffinityGroups"

    def filter(self, ctx: UnitContext, params: NoParams, vm: VmFacts,
               hosts: Sequence[HostFacts]) -> dict[str, str]:
        out: dict[str, str] = {}
        for g in _groups(ctx, vm, host_side=True, enforcing=True):
            for h in hosts:
                reason = _host_rule_breaks(g, h, ctx)
                if reason is not None:
                    out.setdefault(h.id, reason)
        return out


class VmAffinityWeight(WeightUnit[NoParams]):
    """Soft VM-to-VM affinity: one point per non-enforcing group the host would break."""

    name = "VmAffinityGroups"

    def score(self, ctx: UnitContext, params: NoParams, vm: VmFacts,
              hosts: Sequence[HostFacts]) -> dict[str, float]:
        groups = _groups(ctx, vm, host_side=False, enforcing=False)
        if not groups:
            return {}
        peers = {g.name: _peer_hosts(ctx, vm, g) for g in groups}
        return {h.id: float(sum(_vm_rule_breaks(ctx, vm, g, h, peers[g.name]) is not None
                                for g in groups)) for h in hosts}


class VmToHostsAffinityWeight(WeightUnit[NoParams]):
    """Soft VM-to-host affinity: one point per non-enforcing group the host would break."""

    name = "VmToHostsAffinityGroups"

    def score(self, ctx: UnitContext, params: NoParams, vm: VmFacts,
              hosts: Sequence[HostFacts]) -> dict[str, float]:
        groups = _groups(ctx, vm, host_side=True, enforcing=False)
        if not groups:
            return {}
        return {h.id: float(sum(_host_rule_breaks(g, h, ctx) is not None for g in groups))
                for h in hosts}
