"""Scheduling for the engine: cluster policies, policy units, balancing, fencing rules.

Pure functions of snapshots (no host is ever contacted here), so every decision
can be replayed, explained and tested on a virtual clock. Modules:

=====================  ============================================================
``facts``              frozen snapshots of hosts, VMs, affinity groups, clusters
``params``             typed unit parameters under oVirt's names, checked once
``units``              the unit kinds (filter, weight, balancer) and their context
``registry``           units and policies by name (entry points, stevedore)
``filters_compat``     Architecture, CPU-Level
``filters_resources``  Memory, CPU, CPUOverloaded
``filters_placement``  PinToHost, Migration, Network, ClusterInMaintenance
``affinity``           VM-to-VM and VM-to-host affinity (filters and weights)
``weights_load``       CPU/memory even distribution and power saving weights
``weights_guests``     VM count, preferred hosts, HA reservation weights
``balancing``          over/under-utilization, VM and destination choice, figures
``balancers``          None, OptimalForEvenDistribution, OptimalForPowerSaving,
                       OptimalForEvenGuestDistribution (+ host power plan)
``cluster_policy``     ClusterPolicy, mandatory filters, compiling a policy (a leaf)
``policies``           oVirt's five policies (and ClusterPolicy, re-exported)
``selector``           the rank selector, deterministic ties
``pending``            resources held for VMs placed but not yet seen running
``decision``           decision records and ``--explain`` formatting
``scheduler``          SchedulingService: one placement, per-cluster lock
``balance``            one balancing cycle: one move at most, cooldown, margin
``adapter``            PolicyScheduler (the core's Scheduler protocol), ManagerFacts
``fencing``            fence agents (protocol, registry, the ``test`` agent)
``fencing_rules``      when to fence: oVirt's rules as a pure function
``clock``              system and virtual clocks
``testing``            the kit: contracts for third-party units and fence agents
=====================  ============================================================

See docs/scheduling.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from virtplane_engine.scheduling.adapter import ManagerFacts, NoHostFits, PolicyScheduler
    from virtplane_engine.scheduling.balance import BalanceReport, format_report, run_cycle
    from virtplane_engine.scheduling.clock import SystemClock, VirtualClock
    from virtplane_engine.scheduling.decision import Decision, format_decision
    from virtplane_engine.scheduling.facts import (
        AffinityGroup,
        AffinityRule,
        ClusterFacts,
        HostFacts,
        VmFacts,
    )
    from virtplane_engine.scheduling.policies import BUILTIN_POLICIES, ClusterPolicy
    from virtplane_engine.scheduling.registry import UnitRegistry
    from virtplane_engine.scheduling.scheduler import SchedulingService

_LAZY = {
    "ManagerFacts": "adapter", "NoHostFits": "adapter", "PolicyScheduler": "adapter",
    "BalanceReport": "balance", "format_report": "balance", "run_cycle": "balance",
    "SystemClock": "clock", "VirtualClock": "clock", "Decision": "decision",
    "format_decision": "decision", "AffinityGroup": "facts", "AffinityRule": "facts",
    "ClusterFacts": "facts", "HostFacts": "facts", "VmFacts": "facts",
    "BUILTIN_POLICIES": "policies", "ClusterPolicy": "policies", "UnitRegistry": "registry",
    "SchedulingService": "scheduler",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'virtplane_engine.scheduling' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"virtplane_engine.scheduling.{module}"), name)


__all__ = ["AffinityGroup", "AffinityRule", "BUILTIN_POLICIES", "BalanceReport",
    "ClusterFacts", "ClusterPolicy", "Decision", "HostFacts", "ManagerFacts", "NoHostFits",
    "PolicyScheduler", "SchedulingService", "SystemClock", "UnitRegistry", "VirtualClock",
    "VmFacts", "format_decision", "format_report", "run_cycle"]
