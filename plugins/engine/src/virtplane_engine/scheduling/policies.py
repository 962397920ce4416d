"""Cluster policies: ordered filters, weights with integer factors, one balancer,
parameters; oVirt's five built-in policies.

:class:`ClusterPolicy`, :data:`MANDATORY_FILTERS`, :class:`BalancingParams` and
:class:`CompiledPolicy` live in :mod:`~.cluster_policy` (a leaf that imports
neither this module nor :mod:`~.registry`, so the registry can check what it
loads against :class:`ClusterPolicy`) and are re-exported here, where they have
always been imported from.

A policy names its units; :meth:`ClusterPolicy.compile` resolves them through a
:class:`~.registry.UnitRegistry` and checks the parameters once (every key must
be read by some unit of the policy, every value must fit), so a typo such as
``HighUtilisation`` is an error when the policy is set, not a silently ignored
setting.

The mandatory filters (:data:`MANDATORY_FILTERS`) run first in every policy,
whatever it lists: a policy can add constraints, never remove the ones that
keep a VM from landing where it cannot run.
"""

from __future__ import annotations

from virtplane_engine.scheduling.cluster_policy import (
    MANDATORY_FILTERS,
    BalancingParams,
    ClusterPolicy,
    CompiledPolicy,
    UnitSource,
)
from virtplane_engine.scheduling.params import ParamValue

__all__ = ["BUILTIN_POLICIES", "CLUSTER_MAINTENANCE", "EVENLY_DISTRIBUTED", "MANDATORY_FILTERS",
           "NONE", "POWER_SAVING", "VM_EVENLY_DISTRIBUTED", "BalancingParams", "ClusterPolicy",
           "CompiledPolicy", "UnitSource"]

_FILTERS = ("CPUOverloaded", "Migration", "Network")
_PLACEMENT_WEIGHTS = (("PreferredHosts", 99), ("OptimalForHaReservation", 1),
                      ("VmAffinityGroups", 1), ("VmToHostsAffinityGroups", 20))
_EVEN_WEIGHTS = (("OptimalForCpuEvenDistribution", 2), ("OptimalForMemoryEvenDistribution", 1),
                 *_PLACEMENT_WEIGHTS)
_BASE_PARAMS: dict[str, ParamValue] = {"CpuOverCommitDurationMinutes": 2,
                                       "HighUtilization": 80}

NONE = ClusterPolicy(
    "none", "Places VMs on the least loaded host at start; never migrates (oVirt's default).",
    _FILTERS, _EVEN_WEIGHTS, "None", _BASE_PARAMS)
CLUSTER_MAINTENANCE = ClusterPolicy(
    "cluster_maintenance", "While the cluster is serviced: only highly available VMs start, "
    "nothing is balanced.", ("ClusterInMaintenance", *_FILTERS), _EVEN_WEIGHTS, "None",
    _BASE_PARAMS)
EVENLY_DISTRIBUTED = ClusterPolicy(
    "evenly_distributed", "Spreads CPU (and, when limits are set, memory) load evenly; moves "
    "VMs off hosts over HighUtilization for CpuOverCommitDurationMinutes.", _FILTERS,
    _EVEN_WEIGHTS, "OptimalForEvenDistribution",
    {**_BASE_PARAMS, "VCpuToPhysicalCpuRatio": 0})
POWER_SAVING = ClusterPolicy(
    "power_saving", "Packs VMs onto as few hosts as stay under HighUtilization; empties "
    "hosts under LowUtilization and (when allowed) powers empty hosts off beyond "
    "HostsInReserve.", _FILTERS,
    (("OptimalForCpuPowerSaving", 2), ("OptimalForMemoryPowerSaving", 1), *_PLACEMENT_WEIGHTS),
    "OptimalForPowerSaving", {**_BASE_PARAMS, "LowUtilization": 20})
VM_EVENLY_DISTRIBUTED = ClusterPolicy(
    "vm_evenly_distributed", "Spreads the number of VMs evenly; moves VMs off a host with "
    "HighVmCount or more when another runs MigrationThreshold fewer.", _FILTERS,
    (("OptimalForEvenGuestDistribution", 2), *_PLACEMENT_WEIGHTS),
    "OptimalForEvenGuestDistribution",
    {**_BASE_PARAMS, "HighVmCount": 10, "MigrationThreshold": 5, "SpmVmGrace": 5})

#: oVirt's built-in policies by name
BUILTIN_POLICIES: dict[str, ClusterPolicy] = {p.name: p for p in (
    NONE, EVENLY_DISTRIBUTED, POWER_SAVING, VM_EVENLY_DISTRIBUTED, CLUSTER_MAINTENANCE)}
