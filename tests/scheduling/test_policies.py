"""Cluster policies: oVirt's five, their parameters and defaults, and checking."""

from __future__ import annotations

import pytest

from virtplane_engine.scheduling.balancing import LoadParams
from virtplane_engine.scheduling.params import PolicyError, build
from virtplane_engine.scheduling.policies import (
    BUILTIN_POLICIES,
    MANDATORY_FILTERS,
    ClusterPolicy,
)

OVIRT_PARAMS = {
    "none": {"CpuOverCommitDurationMinutes": 2, "HighUtilization": 80},
    "cluster_maintenance": {"CpuOverCommitDurationMinutes": 2, "HighUtilization": 80},
    "evenly_distributed": {"CpuOverCommitDurationMinutes": 2, "HighUtilization": 80,
                           "VCpuToPhysicalCpuRatio": 0},
    "power_saving": {"CpuOverCommitDurationMinutes": 2, "HighUtilization": 80,
                     "LowUtilization": 20},
    "vm_evenly_distributed": {"CpuOverCommitDurationMinutes": 2, "HighUtilization": 80,
                              "HighVmCount": 10, "MigrationThreshold": 5, "SpmVmGrace": 5},
}
BALANCERS = {"none": "None", "cluster_maintenance": "None",
             "evenly_distributed": "OptimalForEvenDistribution",
             "power_saving": "OptimalForPowerSaving",
             "vm_evenly_distributed": "OptimalForEvenGuestDistribution"}


@pytest.mark.parametrize("name", sorted(OVIRT_PARAMS))
def test_builtin_policies_have_ovirts_parameters_and_balancer(name, registry):
    policy = BUILTIN_POLICIES[name]
    assert policy.parameters == OVIRT_PARAMS[name]
    assert policy.balancer == BALANCERS[name]
    compiled = policy.compile(registry)
    names = [u.name for u, _ in compiled.filters]
    assert names[:len(MANDATORY_FILTERS)] == list(MANDATORY_FILTERS)
    assert registry.policy(name) is policy


def test_weights_and_factors_are_ovirts():
    even = dict(BUILTIN_POLICIES["none"].weights)
    assert even["OptimalForCpuEvenDistribution"] == 2
    assert even["OptimalForMemoryEvenDistribution"] == 1
    assert even["PreferredHosts"] == 99
    assert even["VmToHostsAffinityGroups"] == 20
    power = dict(BUILTIN_POLICIES["power_saving"].weights)
    assert power["OptimalForCpuPowerSaving"] == 2 and power["OptimalForMemoryPowerSaving"] == 1
    assert "OptimalForCpuEvenDistribution" not in power
    guests = dict(BUILTIN_POLICIES["vm_evenly_distributed"].weights)
    assert guests["OptimalForEvenGuestDistribution"] == 2
    assert "OptimalForCpuEvenDistribution" not in guests
    assert BUILTIN_POLICIES["cluster_maintenance"].filters[0] == "ClusterInMaintenance"


def test_mandatory_filters_run_even_when_a_policy_lists_none(registry):
    bare = ClusterPolicy("bare")
    assert [u.name for u, _ in bare.compile(registry).filters] == list(MANDATORY_FILTERS)


def test_a_misspelt_parameter_is_refused_with_what_is_read(registry):
    bad = BUILTIN_POLICIES["evenly_distributed"].with_parameters(HighUtilisation=70)
    with pytest.raises(PolicyError, match="HighUtilisation.*HighUtilization"):
        bad.compile(registry)


@pytest.mark.parametrize(("key", "value", "words"), [
    ("HighUtilization", 120, "between 50 and 99"),
    ("HighUtilization", "lots", "must be an integer"),
    ("LowUtilization", 60, "between 0 and 49"),
    ("CpuOverCommitDurationMinutes", 0, "at least 1"),
    ("MigrationThreshold", 1, "at least 2"),
])
def test_out_of_range_values_name_the_unit_and_the_rule(registry, key, value, words):
    policy = BUILTIN_POLICIES["vm_evenly_distributed"]
    if key == "LowUtilization":
        policy = BUILTIN_POLICIES["power_saving"]
    with pytest.raises(PolicyError, match=words) as err:
        policy.with_parameters(**{key: value}).compile(registry)
    assert key in str(err.value) and "policy" in str(err.value)


def test_string_values_from_an_exported_policy_are_converted(registry):
    policy = BUILTIN_POLICIES["power_saving"].with_parameters(
        HighUtilization="70", EnableAutomaticHostPowerManagement="true", HostsInReserve="1")
    _unit, params = policy.compile(registry).balancer
    assert params.high_utilization == 70 and params.automatic_power is True
    assert params.hosts_in_reserve == 1 and params.low_utilization == 20


def test_unknown_units_and_bad_factors(registry):
    with pytest.raises(PolicyError, match="no virtplane.policy_units.weights entry point "
                                          "named 'Nope'.*OptimalForCpuEvenDistribution"):
        ClusterPolicy("p", weights=[("Nope", 1)]).compile(registry)
    with pytest.raises(PolicyError, match="whole factor"):
        ClusterPolicy("p", weights=[("PreferredHosts", 1.5)]).compile(registry)
    with pytest.raises(PolicyError, match="listed twice"):
        ClusterPolicy("p", weights=[("PreferredHosts", 1), ("PreferredHosts", 2)]).compile(
            registry)


def test_evenly_distributed_destination_threshold_is_64_with_defaults():
    assert build(LoadParams, {"HighUtilization": 80}, "t").lowered_high == 64
