"""Every filter: who survives, and the reason given for each host dropped."""

from __future__ import annotations

import pytest

from virtplane_engine.scheduling.facts import ClusterFacts
from virtplane_engine.scheduling.filters_compat import ArchitectureFilter, CpuLevelFilter
from virtplane_engine.scheduling.filters_placement import (
    ClusterInMaintenanceFilter,
    MigrationFilter,
    NetworkFilter,
    PinToHostFilter,
)
from virtplane_engine.scheduling.filters_resources import (
    CpuFilter,
    CpuOverloadedFilter,
    CpuOverloadParams,
    MemoryFilter,
    MemoryParams,
)
from virtplane_engine.scheduling.params import NoParams
from virtplane_engine.scheduling.units import Mode, UnitContext

from .conftest import NOW, cluster, host, vm


def ctx(c: ClusterFacts | None = None, mode: Mode = Mode.START, source: str | None = None,
        now: float = NOW) -> UnitContext:
    return UnitContext(c or cluster([]), now, mode, source)


def test_architecture_keeps_matching_hosts_and_says_what_the_others_run():
    hosts = [host("x"), host("p", arch="ppc64le", guest_arches=["ppc64le"]),
             host("any", arch="x86_64", guest_arches=[], any_guest_arch=True),
             host("unknown", arch="", guest_arches=[])]
    out = ArchitectureFilter().filter(ctx(), NoParams(), vm("v"), hosts)
    assert out == {"p": "runs ppc64le guests; the VM is x86_64"}
    ppc = vm("v", arch="ppc64le")
    out = ArchitectureFilter().filter(ctx(), NoParams(), ppc, hosts)
    assert set(out) == {"x"}


def test_cpu_level_uses_the_vm_model_then_the_clusters():
    hosts = [host("old", usable_cpu_models=["Westmere"]),
             host("new", usable_cpu_models=["Westmere", "Skylake-Client"]),
             host("silent")]
    out = CpuLevelFilter().filter(ctx(), NoParams(), vm("v", cpu_model="Skylake-Client"), hosts)
    assert list(out) == ["old"] and "Skylake-Client" in out["old"] and "Westmere" in out["old"]
    c = cluster(hosts, cpu_model="Skylake-Client")
    assert list(CpuLevelFilter().filter(ctx(c), NoParams(), vm("v"), hosts)) == ["old"]
    assert CpuLevelFilter().filter(ctx(), NoParams(), vm("v"), hosts) == {}


@pytest.mark.parametrize(("h", "needs", "dropped", "words"), [
    (host("h", free_memory_mib=4000), 2048, False, None),
    (host("h", free_memory_mib=1000), 2048, True, "needs 2048 MiB free, host has 1000 MiB"),
    # 16 GiB x 150% = 24576; 23000 promised already -> 1576 left
    (host("h", committed_memory_mib=23000), 2048, True, "only 1576 MiB left to promise"),
    (host("h", committed_memory_mib=22000), 2048, False, None),
    (host("h", memory_mib=0, free_memory_mib=None), 999999, False, None),
])
def test_memory_physical_and_overcommit(h, needs, dropped, words):
    out = MemoryFilter().filter(ctx(), MemoryParams(), vm("v", memory_mib=needs), [h])
    assert bool(out) is dropped
    if words:
        assert words in out["h"]


def test_memory_overcommit_limit_is_a_parameter():
    h = host("h", committed_memory_mib=16000)
    assert MemoryFilter().filter(ctx(), MemoryParams(), vm("v", memory_mib=2048), [h]) == {}
    out = MemoryFilter().filter(ctx(), MemoryParams(max_overcommit=100),
                                vm("v", memory_mib=2048), [h])
    assert "100% of 16384 MiB" in out["h"]


def test_memory_skips_paused_vms_and_the_vms_own_host():
    h = host("h", free_memory_mib=100)
    assert MemoryFilter().filter(ctx(), MemoryParams(), vm("v", "h", memory_mib=4096), [h]) == {}
    paused = vm("v", memory_mib=4096, status="Paused")
    assert MemoryFilter().filter(ctx(), MemoryParams(), paused, [h]) == {}


def test_memory_says_when_only_pending_vms_are_in_the_way():
    h = host("h", free_memory_mib=3000, pending_memory_mib=2000)
    out = MemoryFilter().filter(ctx(), MemoryParams(), vm("v", memory_mib=2048), [h])
    assert "after 2000 MiB pending" in out["h"] and out["h"].pending_only  # type: ignore[attr-defined]
    h = host("h", free_memory_mib=1000, pending_memory_mib=500)
    out = MemoryFilter().filter(ctx(), MemoryParams(), vm("v", memory_mib=2048), [h])
    assert not out["h"].pending_only  # type: ignore[attr-defined]


def test_cpu_count_and_missing_topology():
    hosts = [host("big", cpus=8), host("small", cpus=2), host("none", cpus=0)]
    out = CpuFilter().filter(ctx(), NoParams(), vm("v", vcpus=4), hosts)
    assert out == {"small": "has 2 CPUs; the VM has 4 vCPUs", "none": "reports no CPU topology"}


def test_cpu_overloaded_needs_the_duration_and_drops_hosts_without_stats():
    p = CpuOverloadParams(high_utilization=80, duration_minutes=2)
    hosts = [host("hot", 95.0, cpu_over_commit_since=NOW - 60),
             host("hot_long", 95.0, cpu_over_commit_since=NOW - 121),
             host("cool", 50.0), host("blind", None)]
    out = CpuOverloadedFilter().filter(ctx(), p, vm("v"), hosts)
    assert set(out) == {"hot_long", "blind"}
    assert "95% > HighUtilization 80%" in out["hot_long"]
    assert out["blind"] == "has no CPU statistics yet"
    # a minute later, "hot" has been over for two minutes too
    assert "hot" in CpuOverloadedFilter().filter(ctx(now=NOW + 60), p, vm("v"), hosts)


def test_cpu_overloaded_counts_pending_load():
    p = CpuOverloadParams(high_utilization=80)
    h = host("h", 70.0, cpu_over_commit_since=NOW - 600, pending_cpu=80.0)  # +20% on 4 CPUs
    assert "90%" in CpuOverloadedFilter().filter(ctx(), p, vm("v"), [h])["h"]


def test_pin_to_host_names_the_pinned_hosts():
    hosts = [host("a"), host("b"), host("c")]
    c = cluster(hosts)
    out = PinToHostFilter().filter(ctx(c), NoParams(), vm("v", pinned_hosts=["a", "c"]), hosts)
    assert out == {"b": "the VM is pinned to a, c"}
    assert PinToHostFilter().filter(ctx(c), NoParams(), vm("v"), hosts) == {}


def test_migration_keeps_the_source_and_drops_its_aliases():
    hosts = [host("src", address="10.0.0.1"), host("alias", address="10.0.0.1"),
             host("other", address="10.0.0.2")]
    c = cluster(hosts)
    out = MigrationFilter().filter(ctx(c, Mode.MIGRATE, "src"), NoParams(), vm("v", "src"),
                                   hosts)
    assert out == {"alias": "same address (10.0.0.1) as the source host src"}
    stuck = vm("v", "src", migratable=False)
    out = MigrationFilter().filter(ctx(c, Mode.BALANCE, "src"), NoParams(), stuck, hosts)
    assert set(out) == {"alias", "other"} and "cannot be migrated" in out["other"]
    assert MigrationFilter().filter(ctx(c), NoParams(), vm("v"), hosts) == {}


def test_network_lists_what_is_missing():
    hosts = [host("a", networks=["mgmt", "data"]), host("b", networks=["mgmt"]),
             host("c", networks=None)]
    out = NetworkFilter().filter(ctx(), NoParams(), vm("v", networks=["data", "san"]), hosts)
    assert out == {"a": "lacks network san", "b": "lacks networks data, san"}


def test_cluster_in_maintenance_starts_only_ha_vms_and_lets_vms_migrate():
    hosts = [host("a")]
    f = ClusterInMaintenanceFilter()
    assert "only highly available" in f.filter(ctx(), NoParams(), vm("v"), hosts)["a"]
    assert f.filter(ctx(), NoParams(), vm("v", highly_available=True), hosts) == {}
    assert f.filter(ctx(mode=Mode.MIGRATE, source="a"), NoParams(), vm("v", "a"), hosts) == {}
