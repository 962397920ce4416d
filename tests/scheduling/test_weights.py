"""Weights (lower is better) and oVirt's rank selector with deterministic ties."""

from __future__ import annotations

from virtplane_engine.scheduling.facts import HostFacts
from virtplane_engine.scheduling.selector import order, rank
from virtplane_engine.scheduling.units import Mode, UnitContext
from virtplane_engine.scheduling.weights_guests import (
    PREFERRED_PENALTY,
    EvenGuestDistributionWeight,
    GuestParams,
    HaReservationParams,
    HaReservationWeight,
    PreferredHostsWeight,
)
from virtplane_engine.scheduling.weights_load import (
    MAX_WEIGHT,
    RATIO_PENALTY,
    CpuEvenDistributionWeight,
    CpuEvenParams,
    CpuPowerParams,
    CpuPowerSavingWeight,
    MemoryEvenDistributionWeight,
    MemoryPowerParams,
    MemoryPowerSavingWeight,
    MemoryWeightParams,
)

from .conftest import NOW, cluster, host, vm


def ctx(hosts: list[HostFacts], vms=(), mode=Mode.START, **kw) -> UnitContext:
    return UnitContext(cluster(hosts, list(vms), **kw), NOW, mode)


def test_rank_selector_ovirt_fixture():
    """oVirt's RankSelectorPolicyUnitTest: {h1:200, h2:300, h3:200} at factor 1, and a
    factor-100 unit that scored only h3 (=1, so h1 and h2 count as 0 and beat it): h1
    gets 1 + 100, h2 0 + 100, h3 1 + 0; h1 wins."""
    ranked = rank([("light", 1, {"h1": 200, "h2": 300, "h3": 200}),
                   ("heavy", 100, {"h3": 1})], ["h1", "h2", "h3"])
    assert ranked.totals == [101, 100, 1]
    assert order(ranked, {})[0] == 0
    assert (ranked.weights[2], ranked.ranks[2]) == ((200, 1), (1, 0))
    # unscored counts as 0, the best: h1 and h2 each beat h3 on the heavy unit
    assert (ranked.weights[0], ranked.ranks[0]) == ((200, None), (1, 1))


def test_equal_weights_share_a_rank_and_ties_go_by_name_every_time():
    hosts = ["zeta", "alpha", "mid"]
    ranked = rank([("w", 1, {"zeta": 5, "alpha": 5, "mid": 5})], hosts)
    assert ranked.totals == [0, 0, 0]
    names = {h: h for h in hosts}
    assert [hosts[order(ranked, names)[0]] for _ in range(20)] == ["alpha"] * 20


def test_factor_counts_ranks_not_raw_magnitudes():
    ranked = rank([("huge", 1, {"a": 1e9, "b": 0}), ("small", 2, {"a": 0.1, "b": 0.2})],
                  ["a", "b"])
    assert ranked.totals == [2, 1]


def test_cpu_even_prefers_the_idlest_and_adds_the_vms_assumed_load():
    hosts = [host("busy", 60.0), host("idle", 10.0), host("blind", None)]
    s = CpuEvenDistributionWeight().score(ctx(hosts), CpuEvenParams(), vm("v", vcpus=2), hosts)
    # 10% x 4 CPUs + 10% x 2 vCPUs over 4 CPUs = 15%
    assert s == {"busy": 65.0, "idle": 15.0, "blind": MAX_WEIGHT}


def test_cpu_even_ratio_penalty():
    hosts = [host("packed", 5.0, vcpus_committed=7), host("roomy", 50.0)]
    s = CpuEvenDistributionWeight().score(ctx(hosts), CpuEvenParams(vcpu_ratio=2.0),
                                          vm("v", vcpus=2), hosts)
    assert s["packed"] > RATIO_PENALTY > s["roomy"]


def test_running_vm_adds_its_measured_load_and_nothing_where_it_runs():
    hosts = [host("src", 50.0), host("dst", 10.0)]
    moving = vm("v", "src", vcpus=2, cpu_usage_percent=40.0)
    s = CpuEvenDistributionWeight().score(ctx(hosts, [moving], Mode.BALANCE), CpuEvenParams(),
                                          moving, hosts)
    assert s == {"src": 50.0, "dst": 30.0}


def test_memory_even_prefers_most_left_power_saving_least_left():
    hosts = [host("full", committed_memory_mib=20000), host("empty")]
    even = MemoryEvenDistributionWeight().score(ctx(hosts), MemoryWeightParams(), vm("v"),
                                                hosts)
    assert even["empty"] < even["full"]
    pack = MemoryPowerSavingWeight().score(ctx(hosts), MemoryPowerParams(), vm("v"), hosts)
    assert pack["full"] < pack["empty"]


def test_memory_power_saving_wraps_hosts_below_the_limit_behind_empty_ones():
    hosts = [host("nearly", committed_memory_mib=23000), host("empty")]
    p = MemoryPowerParams(max_free_for_over=1024)
    s = MemoryPowerSavingWeight().score(ctx(hosts), p, vm("v"), hosts)
    assert s["nearly"] > s["empty"]


def test_cpu_power_saving_prefers_the_busiest_under_high_utilization():
    hosts = [host("busy", 70.0), host("mid", 40.0), host("over", 79.0), host("blind", None)]
    s = CpuPowerSavingWeight().score(ctx(hosts), CpuPowerParams(high_utilization=75),
                                     vm("v", vcpus=2), hosts)
    assert s["busy"] < s["mid"] < 0
    assert s["over"] == MAX_WEIGHT and s["blind"] == MAX_WEIGHT


def test_even_guest_counts_pending_and_spm_grace():
    hosts = [host("spm", vm_ids=["1"], is_spm=True), host("a", vm_ids=["2", "3"]),
             host("b", pending_vms=1)]
    s = EvenGuestDistributionWeight().score(ctx(hosts), GuestParams(), vm("v"), hosts)
    assert s == {"spm": 6.0, "a": 2.0, "b": 1.0}


def test_preferred_hosts_only_at_start():
    hosts = [host("a"), host("b")]
    v = vm("v", preferred_hosts=["b"])
    assert PreferredHostsWeight().score(ctx(hosts), None, v, hosts) == {
        "a": PREFERRED_PENALTY, "b": 0.0}
    assert PreferredHostsWeight().score(ctx(hosts, mode=Mode.MIGRATE), None, v, hosts) == {}


def test_ha_reservation_spreads_ha_vms_only_when_the_cluster_reserves():
    hosts = [host("a"), host("b"), host("c")]
    vms = [vm("h1", "a", highly_available=True), vm("h2", "a", highly_available=True),
           vm("h3", "b", highly_available=True), vm("plain", "c")]
    new = vm("new", highly_available=True)
    w = HaReservationWeight()
    s = w.score(ctx(hosts, vms, ha_reservation=True), HaReservationParams(scale_down=2), new,
                hosts)
    assert s == {"a": 50.0, "b": 25.0, "c": 0.0}
    assert w.score(ctx(hosts, vms), HaReservationParams(), new, hosts) == {}
    assert w.score(ctx(hosts, vms, ha_reservation=True), HaReservationParams(), vm("n"),
                   hosts) == {}
