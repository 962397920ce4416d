"""Balancers and the balancing cycle: oVirt's fixtures, one move per cycle, no oscillation."""

from __future__ import annotations

import attrs
import pytest

from virtplane_engine.scheduling.balance import format_report, run_cycle
from virtplane_engine.scheduling.balancers import (
    EvenDistributionBalancer,
    EvenGuestDistributionBalancer,
)
from virtplane_engine.scheduling.balancing import LoadParams, OverCommitTracker, apply_move
from virtplane_engine.scheduling.facts import AffinityGroup, AffinityRule, ClusterFacts
from virtplane_engine.scheduling.params import build
from virtplane_engine.scheduling.policies import (
    EVENLY_DISTRIBUTED,
    NONE,
    POWER_SAVING,
    VM_EVENLY_DISTRIBUTED,
)
from virtplane_engine.scheduling.units import Mode, UnitContext

from .conftest import NOW, cluster, host, vm

SINCE_2015 = 1_420_070_400.0
FIXTURE_PARAMS = {"MinFreeMemoryForUnderUtilized": 900, "MaxFreeMemoryForOverUtilized": 512}


def ovirt_fixture(a_cpu: float = 90.0, b_cpu: float = 25.0,
                  b_since: float | None = None, a_since: float | None = SINCE_2015,
                  b_cpus: int = 1):
    """EvenDistributionBalancePolicyUnitTest.testBalanceCpuLoad: host A 1 core at 90%,
    over-committed since 2015, running VM1A/VM1B (1 vCPU, 20%); host B 1 core at 25%,
    running VM2A/VM2B (2 vCPUs, 40%)."""
    vms = [vm("VM1A", "A", cpu_usage_percent=20.0), vm("VM1B", "A", cpu_usage_percent=20.0),
           vm("VM2A", "B", vcpus=2, cpu_usage_percent=40.0),
           vm("VM2B", "B", vcpus=2, cpu_usage_percent=40.0)]
    return cluster([host("A", a_cpu, cpus=1, cpu_over_commit_since=a_since),
                    host("B", b_cpu, cpus=b_cpus, cpu_over_commit_since=b_since)], vms)


def balance(unit, c: ClusterFacts, params: dict, now: float = NOW):
    p = build(unit.params_type, {**EVENLY_DISTRIBUTED.parameters, **params}, "test")
    return unit.balance(UnitContext(c, now, Mode.BALANCE), p, list(c.hosts))


def test_ovirt_fixture_vms_of_the_overloaded_host_get_candidates_among_a_and_b():
    out = balance(EvenDistributionBalancer(), ovirt_fixture(), FIXTURE_PARAMS)
    assert [c.vm_id for c in out] == ["VM1A", "VM1B"]
    assert all(set(c.candidate_host_ids) == {"A", "B"} for c in out)
    assert all(c.source_host_id == "A" and c.metric == "cpu" for c in out)


def test_ovirt_fixture_both_hosts_overloaded_no_result():
    c = ovirt_fixture(b_cpu=90.0, b_since=SINCE_2015)
    assert balance(EvenDistributionBalancer(), c, FIXTURE_PARAMS) == []


def test_nothing_before_cpu_over_commit_duration():
    c = ovirt_fixture(a_since=NOW - 60)
    assert balance(EvenDistributionBalancer(), c, FIXTURE_PARAMS) == []
    assert len(balance(EvenDistributionBalancer(), c, FIXTURE_PARAMS, now=NOW + 61)) == 2


def test_destinations_must_be_under_64_percent_with_defaults():
    # 4 cores, so the VM itself fits under HighUtilization either way
    assert balance(EvenDistributionBalancer(), ovirt_fixture(b_cpu=63.0, b_cpus=4), {})
    assert balance(EvenDistributionBalancer(), ovirt_fixture(b_cpu=64.0, b_cpus=4), {}) == []


def test_memory_balancing_is_off_while_its_limits_are_unset():
    vms = [vm(f"v{i}", "full", memory_mib=7000) for i in range(3)]
    c = cluster([host("full", 10.0), host("empty", 10.0)], vms)  # 21000 of 24576 promised
    assert balance(EvenDistributionBalancer(), c, {}) == []
    out = balance(EvenDistributionBalancer(), c, {"MaxFreeMemoryForOverUtilized": 4000,
                                                  "MinFreeMemoryForUnderUtilized": 8000})
    assert out and out[0].metric == "memory" and out[0].source_host_id == "full"


def test_a_cycle_moves_one_vm_and_the_next_cycle_with_new_stats_moves_nothing_back(
        service, clock):
    policy = EVENLY_DISTRIBUTED.with_parameters(**FIXTURE_PARAMS)
    c = ovirt_fixture()
    report = run_cycle(service, policy, c)
    assert report.move is not None
    m = report.move
    assert (m.vm_name, m.source_host_name, m.dest_host_name) == ("VM1A", "A", "B")
    assert m.cost_after < m.cost_before and m.improvement_percent >= 10
    # monitoring has not seen it yet: B holds it as pending, so nothing else moves
    clock.advance(60)
    assert run_cycle(service, policy, c).move is None
    # monitoring sees it: A at 70% (back inside the band), B at 45%
    moved = [attrs.evolve(v, host_id="B", last_migrated_at=clock.now()) if v.id == "VM1A"
             else v for v in c.vms]
    after = cluster([host("A", 70.0, cpus=1), host("B", 45.0, cpus=1)], moved)
    for _ in range(5):
        clock.advance(60)
        r = run_cycle(service, policy, after)
        assert r.move is None, format_report(r)


def test_at_most_one_move_per_cycle_and_a_vm_best_where_it_is_yields_to_the_next(service):
    keep = AffinityGroup("stay", ["VM1A"], host_ids=["A"],
                         host_rule=AffinityRule(positive=True, enforcing=True))
    c = attrs.evolve(ovirt_fixture(), affinity_groups=(keep,))
    report = run_cycle(service, EVENLY_DISTRIBUTED.with_parameters(**FIXTURE_PARAMS), c,
                       dry_run=True)
    assert report.move is not None and report.move.vm_name == "VM1B"
    assert [(s.vm_name, "no candidate host fits" in s.reason) for s in report.skipped] == [
        ("VM1A", True)]


def test_cooldown_skips_a_recently_moved_vm(service, clock):
    c = ovirt_fixture()
    recent = [attrs.evolve(v, last_migrated_at=NOW - 300) if v.id == "VM1A" else v
              for v in c.vms]
    c = attrs.evolve(c, vms=recent)
    r = run_cycle(service, EVENLY_DISTRIBUTED.with_parameters(**FIXTURE_PARAMS), c,
                  dry_run=True)
    assert r.move is not None and r.move.vm_name == "VM1B"
    assert "moved 5 min ago (cooldown 10 min)" in r.skipped[0].reason
    longer = EVENLY_DISTRIBUTED.with_parameters(**FIXTURE_PARAMS, MigrationCooldownMinutes=4)
    assert run_cycle(service, longer, c, dry_run=True).move.vm_name == "VM1A"


def test_the_services_own_moves_are_remembered_for_the_cooldown(service, clock):
    policy = EVENLY_DISTRIBUTED.with_parameters(**FIXTURE_PARAMS)
    assert run_cycle(service, policy, ovirt_fixture()).move.vm_name == "VM1A"
    service.pending.release("VM1A")
    clock.advance(120)
    again = run_cycle(service, policy, ovirt_fixture(), dry_run=True)
    assert again.move.vm_name == "VM1B" and "cooldown" in again.skipped[0].reason


def test_a_move_must_improve_by_the_margin(service):
    policy = EVENLY_DISTRIBUTED.with_parameters(**FIXTURE_PARAMS, ImprovementMarginPercent=90)
    r = run_cycle(service, policy, ovirt_fixture(), dry_run=True)
    assert r.move is None
    assert "< ImprovementMarginPercent 90" in r.skipped[0].reason


def test_dry_run_records_nothing_and_says_what_it_would_do(service):
    policy = EVENLY_DISTRIBUTED.with_parameters(**FIXTURE_PARAMS)
    r = run_cycle(service, policy, ovirt_fixture(), dry_run=True)
    assert service.pending.entries() == [] and service.moved_at == {}
    text = format_report(r)
    assert text.startswith("[dry run] cluster 'c1', policy 'evenly_distributed'")
    assert "would move VM1A: A -> B (A CPU at or over HighUtilization 80% for 2+ min" in text


def test_policy_none_never_migrates(service):
    r = run_cycle(service, NONE, ovirt_fixture())
    assert r.move is None and r.note == "the balancer proposes no move"


def _guests(a: int, b: int) -> ClusterFacts:
    vms = [vm(f"a{i:02d}", "A") for i in range(a)] + [vm(f"b{i:02d}", "B") for i in range(b)]
    return cluster([host("A", 10.0), host("B", 10.0)], vms)


def test_vm_evenly_distributed_12_and_5_becomes_10_and_7_in_two_cycles(service, clock):
    c = _guests(12, 5)
    counts = []
    for _ in range(4):
        r = run_cycle(service, VM_EVENLY_DISTRIBUTED, c)
        if r.move is not None:
            assert (r.move.source_host_id, r.move.dest_host_id) == ("A", "B")
            vms = [attrs.evolve(v, host_id="B") if v.id == r.move.vm_id else v for v in c.vms]
            c = cluster([host("A", 10.0), host("B", 10.0)], vms)
        counts.append(tuple(sum(v.host_id == h for v in c.vms) for h in "AB"))
        clock.advance(60)
    assert counts == [(11, 6), (10, 7), (10, 7), (10, 7)]


def test_vm_evenly_distributed_does_nothing_below_high_vm_count():
    assert balance(EvenGuestDistributionBalancer(), _guests(9, 1),
                   VM_EVENLY_DISTRIBUTED.parameters) == []


def test_spm_grace_counts_as_vms():
    c = _guests(6, 5)
    spm = attrs.evolve(c, hosts=(attrs.evolve(c.hosts[0], is_spm=True), c.hosts[1]))
    assert balance(EvenGuestDistributionBalancer(), c, VM_EVENLY_DISTRIBUTED.parameters) == []
    out = balance(EvenGuestDistributionBalancer(), spm, VM_EVENLY_DISTRIBUTED.parameters)
    assert out and out[0].source_host_id == "A"  # 6 + 5 grace = 11 >= 10; 11 - 5 >= 5


def _power_cluster(idle_vms: int = 1):
    vms = ([vm(f"busy{i}", "busy", cpu_usage_percent=40.0, memory_mib=2048) for i in range(6)]
           + [vm(f"mid{i}", "mid", cpu_usage_percent=40.0) for i in range(4)]
           + [vm(f"idle{i}", "idle", cpu_usage_percent=5.0) for i in range(idle_vms)])
    return cluster([host("busy", 60.0), host("mid", 40.0),
                    host("idle", 5.0, cpu_over_commit_since=NOW - 600)], vms)


def test_power_saving_drains_an_idle_host_onto_the_busiest_acceptable_one(service):
    r = run_cycle(service, POWER_SAVING, _power_cluster(), dry_run=True)
    assert r.move is not None, format_report(r)
    assert (r.move.vm_name, r.move.dest_host_name) == ("idle0", "busy")
    assert r.move.metric == "consolidation" and r.move.cost_after == 0


def test_power_saving_does_not_shuffle_vms_between_idle_hosts(service):
    """A move between idle hosts must empty one: i1's two VMs never move to i2 one at a
    time (nothing gets emptier), i2's only VM may (i2 is then empty, can be switched off);
    afterwards nothing moves back."""
    vms = [vm("x1", "i1", cpu_usage_percent=5.0), vm("x2", "i1", cpu_usage_percent=5.0),
           vm("y", "i2", cpu_usage_percent=5.0)]
    idle = dict(cpu_over_commit_since=NOW - 600)
    c = cluster([host("i1", 4.0, **idle), host("i2", 3.0, **idle)], vms)
    r = run_cycle(service, POWER_SAVING, c, dry_run=True)
    assert r.move is not None and (r.move.vm_name, r.move.dest_host_name) == ("y", "i1"), \
        format_report(r)
    assert all(s.vm_name != "x1" or "ImprovementMarginPercent" in s.reason
               or "best where" in s.reason for s in r.skipped), format_report(r)
    after = cluster([host("i1", 6.0, **idle), host("i2", 0.0, **idle)],
                    [vm("x1", "i1", cpu_usage_percent=5.0),
                     vm("x2", "i1", cpu_usage_percent=5.0),
                     vm("y", "i1", cpu_usage_percent=5.0)])
    again = run_cycle(service, POWER_SAVING, after, dry_run=True)
    assert again.move is None, format_report(again)


def test_over_commit_tracker_sets_keeps_and_clears():
    t = OverCommitTracker()
    assert t.update("h", 50.0, 100.0, high=80, low=20) is None
    assert t.update("h", 85.0, 200.0, high=80, low=20) == 200.0
    assert t.update("h", 95.0, 300.0, high=80, low=20) == 200.0
    assert t.update("h", 60.0, 400.0, high=80, low=20) is None
    assert t.update("h", 10.0, 500.0, high=80, low=20) == 500.0
    assert t.apply(host("h")).cpu_over_commit_since == 500.0


def test_apply_move_shifts_load_memory_and_counts():
    c = ovirt_fixture()
    moved = {h.id: h for h in apply_move(list(c.hosts), c.vm("VM1A"), "A", "B")}
    assert moved["A"].cpu_usage_percent == pytest.approx(70.0)
    assert moved["B"].cpu_usage_percent == pytest.approx(45.0)
    assert moved["B"].vm_count == 3 and moved["A"].vm_count == 1
    assert moved["B"].committed_memory_mib == c.host("B").committed_memory_mib + 1024


def test_load_params_lowered_threshold():
    assert LoadParams(high_utilization=80).lowered_high == 64
    assert LoadParams(high_utilization=60).lowered_high == 48
