"""One placement: filter order, explanations, pending resources, the cluster lock."""

from __future__ import annotations

import threading
import time

import pytest

from virtplane_engine.scheduling.decision import Decision, format_decision
from virtplane_engine.scheduling.filters_resources import MemoryFilter
from virtplane_engine.scheduling.policies import BUILTIN_POLICIES, NONE, POWER_SAVING
from virtplane_engine.scheduling.registry import FILTERS, UnitRegistry
from virtplane_engine.scheduling.scheduler import SchedulingService

from .conftest import NOW, cluster, host, vm


def test_least_loaded_host_wins_under_none_and_busiest_under_power_saving(service):
    c = cluster([host("busy", 60.0), host("idle", 5.0), host("mid", 30.0)])
    assert service.schedule(NONE, c, vm("v"), record_pending=False).host_name == "idle"
    assert service.schedule(POWER_SAVING, c, vm("v"), record_pending=False).host_name == "busy"


def test_every_host_gets_a_verdict_and_the_explanation_names_filters(service):
    c = cluster([host("ok", 10.0), host("small", free_memory_mib=100),
                 host("down", status="Maintenance"), host("arm", arch="aarch64",
                                                          guest_arches=["aarch64"])])
    d = service.schedule(NONE, c, vm("v", memory_mib=2048))
    assert d.host_name == "ok" and d.summary.startswith("ok, the only host left")
    verdicts = {v.host_name: v for v in d.hosts}
    assert set(verdicts) == {"ok", "small", "down", "arm"}
    assert verdicts["small"].filtered_by == "Memory"
    assert verdicts["down"].filtered_by == "status" and verdicts["down"].reason == "is Maintenance"
    assert verdicts["arm"].filtered_by == "Architecture"
    text = format_decision(d)
    assert "small  Memory: needs 2048 MiB free, host has 100 MiB" in text
    assert "down   status: is Maintenance" in text


def test_no_host_fits_says_why_for_each(service):
    c = cluster([host("a", free_memory_mib=10), host("b", cpus=0)])
    d = service.schedule(NONE, c, vm("v"))
    assert not d.placed and d.host_id is None
    assert d.summary == "none of the 2 hosts fits (CPU: 1, Memory: 1)"
    assert "no host: none of the 2 hosts fits" in format_decision(d)
    assert service.pending.entries() == []


def test_scores_and_ties_are_explained(service):
    c = cluster([host("b", 10.0), host("a", 10.0), host("c", 50.0)])
    d = service.schedule(NONE, c, vm("v"), record_pending=False)
    assert d.host_name == "a" and d.tied == ("a", "b")
    assert "tied with b; first by name" in d.summary
    chosen = d.hosts[0]
    assert chosen.outcome == "chosen" and chosen.host_name == "a"
    units = {s.unit: s for s in d.scores(chosen)}
    assert units["OptimalForCpuEvenDistribution"].factor == 2
    assert units["OptimalForCpuEvenDistribution"].rank == 1
    text = format_decision(d)
    assert "OptimalForCpuEvenDistribution 12.50 r1x2=2" in text


def test_decisions_round_trip_through_json(service):
    import json

    c = cluster([host("a", 10.0), host("b", 20.0), host("x", free_memory_mib=1)])
    d = service.schedule(NONE, c, vm("v"))
    stored = d.to_dict()
    # each host is a JSON object with its field names (the verdicts are named tuples)
    assert {h["host_name"]: h["outcome"] for h in stored["hosts"]} == {
        "a": "chosen", "b": "candidate", "x": "filtered"}
    assert stored["hosts"][-1]["filtered_by"] == "Memory"
    again = Decision.from_dict(json.loads(json.dumps(stored)))
    assert again == d
    bad = json.loads(json.dumps(stored))
    bad["hosts"][0]["colour"] = "red"
    with pytest.raises(Exception, match="structuring Decision"):  # cattrs' error group
        Decision.from_dict(bad)


def test_back_to_back_starts_spread_through_pending_resources(service):
    hosts = [host(f"h{i}", 10.0) for i in range(3)]
    c = cluster(hosts)
    placed = [service.schedule(NONE, c, vm(f"v{i}", vcpus=4)).host_name for i in range(6)]
    assert sorted(placed) == ["h0", "h0", "h1", "h1", "h2", "h2"]
    assert placed[:3] == ["h0", "h1", "h2"]


def test_pending_memory_stops_overcommit_and_suggests_a_retry(service):
    c = cluster([host("only", free_memory_mib=3000)])
    assert service.schedule(NONE, c, vm("v1", memory_mib=2048)).host_name == "only"
    d = service.schedule(NONE, c, vm("v2", memory_mib=2048))
    assert not d.placed and d.retry_after_pending
    assert "retry shortly" in format_decision(d)


def test_pending_clears_when_monitoring_sees_the_vm_or_after_its_ttl(service, clock):
    c = cluster([host("a"), host("b")])
    service.schedule(NONE, c, vm("v1"))
    assert [e.vm_id for e in service.pending.entries()] == ["v1"]
    placed = service.pending.entries()[0].host_id
    seen = cluster([host("a", vm_ids=["v1"] if placed == "a" else []),
                    host("b", vm_ids=["v1"] if placed == "b" else [])])
    service.schedule(NONE, seen, vm("v2"))
    assert [e.vm_id for e in service.pending.entries()] == ["v2"]
    clock.advance(service.pending.ttl)
    service.schedule(NONE, c, vm("v3"), record_pending=False)
    assert service.pending.entries() == []


def test_release_frees_a_failed_start(service):
    c = cluster([host("a")])
    service.schedule(NONE, c, vm("v1"))
    assert service.pending.release("v1") and not service.pending.release("v1")


def test_exclude_and_only(service):
    c = cluster([host("a", 5.0), host("b", 10.0), host("c", 15.0)])
    d = service.schedule(NONE, c, vm("v"), exclude={"a"}, exclude_reason="host in maintenance",
                         record_pending=False)
    assert d.host_name == "b"
    assert {v.host_name: v.reason for v in d.filtered} == {"a": "host in maintenance"}
    d = service.schedule(NONE, c, vm("v"), only={"c"}, record_pending=False)
    assert d.host_name == "c"


def test_one_scheduling_at_a_time_per_cluster(clock):
    active: dict[str, int] = {}
    peak: dict[str, int] = {}
    guard = threading.Lock()

    class SlowMemory(MemoryFilter):
        def filter(self, ctx, params, vm, hosts):
            with guard:
                active[ctx.cluster.id] = active.get(ctx.cluster.id, 0) + 1
                peak[ctx.cluster.id] = max(peak.get(ctx.cluster.id, 0), active[ctx.cluster.id])
            time.sleep(0.01)
            with guard:
                active[ctx.cluster.id] -= 1
            return super().filter(ctx, params, vm, hosts)

    service = SchedulingService(UnitRegistry(extra={FILTERS: {"Memory": SlowMemory}}), clock)
    c1 = cluster([host("a"), host("b")])
    c2 = type(c1)("c2", "c2", hosts=c1.hosts)

    def start(c, i):
        service.schedule(NONE, c, vm(f"{c.id}-{i}"))

    threads = [threading.Thread(target=start, args=(c, i)) for i in range(4) for c in (c1, c2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == {"c1": 1, "c2": 1}
    assert len(service.pending.entries()) == 8


def test_every_builtin_policy_places_on_a_plain_cluster(service):
    c = cluster([host("a", 20.0), host("b", 30.0)])
    for name, policy in BUILTIN_POLICIES.items():
        v = vm("v", highly_available=name == "cluster_maintenance")
        d = service.schedule(policy, c, v, record_pending=False)
        assert d.placed, f"{name}: {format_decision(d)}"
        assert d.at == NOW
