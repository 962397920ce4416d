"""PolicyScheduler as the core's Scheduler: fake facts, then a real Manager on libvirt's
test driver with ManagerFacts."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.util import find_spec

import pytest

from tests.conftest import need
from tests.libvirt_hosts import forget_test_domains
from virtplane import model
from virtplane.errors import InvalidState
from virtplane.scheduling import Scheduler
from virtplane_engine.scheduling.adapter import (
    ManagerFacts,
    NoHostFits,
    PolicyScheduler,
    cpu_percent,
    free_memory_mib,
)
from virtplane_engine.scheduling.facts import ClusterFacts, VmFacts
from virtplane_engine.scheduling.policies import NONE, POWER_SAVING
from virtplane_engine.scheduling.scheduler import SchedulingService

from .conftest import cluster, host


class FakeFacts:
    """Monitoring as a dict: host name -> CPU %."""

    def __init__(self, cpu: dict[str, float], free: int = 16000) -> None:
        self.cpu, self.free = cpu, free

    def cluster_facts(self, cluster_id: str, hosts: Sequence[model.Host]) -> ClusterFacts:
        c = cluster([host(h.name, self.cpu[h.name], free_memory_mib=self.free) for h in hosts])
        return ClusterFacts(cluster_id, "cl", hosts=[
            type(f)(**{**{a.name: getattr(f, a.name) for a in f.__attrs_attrs__}, "id": h.id})
            for f, h in zip(c.hosts, hosts, strict=True)])

    def vm_facts(self, vm: model.Vm) -> VmFacts:
        return VmFacts(vm.id, vm.name, memory_mib=vm.spec.memory_mib, vcpus=vm.spec.vcpus)


def records(*names: str) -> list[model.Host]:
    return [model.Host(n, "c1", "kvm", "test:///default") for n in names]


def test_it_is_a_core_scheduler_and_picks_by_policy(clock):
    hosts = records("busy", "idle") + [model.Host("other", "c2", "kvm", "test:///default")]
    facts = FakeFacts({"busy": 70.0, "idle": 5.0})
    sched = PolicyScheduler(facts, NONE, SchedulingService(clock=clock))
    as_core: Scheduler = sched  # the core's Protocol (checked by mypy, not at run time)
    assert callable(as_core.pick)
    vm = model.Vm(spec=model.VmSpec(name="v1"), cluster_id="c1")
    assert sched.pick(vm, hosts).name == "idle"
    assert "idle" in sched.explain(vm.id)
    packing = PolicyScheduler(facts, lambda cid: POWER_SAVING, SchedulingService(clock=clock))
    assert packing.pick(vm, hosts).name == "busy"


def test_no_host_is_an_invalid_state_carrying_the_decision(clock):
    seen = []
    sched = PolicyScheduler(FakeFacts({"a": 5.0}, free=100), NONE,
                            SchedulingService(clock=clock), on_decision=seen.append)
    vm = model.Vm(spec=model.VmSpec(name="big", memory_mib=4096), cluster_id="c1")
    with pytest.raises(NoHostFits) as err:
        sched.pick(vm, records("a"))
    assert isinstance(err.value, InvalidState)
    assert "a  Memory: needs 4096 MiB free, host has 100 MiB" in str(err.value)
    assert seen == [err.value.decision]
    with pytest.raises(InvalidState, match="no scheduling decision"):
        sched.explain("unknown")


def test_stats_readers():
    assert cpu_percent({"load": [2.0, 1.0, 1.0]}, 4) == 50.0
    assert cpu_percent({"load": [9.0]}, 4) == 100.0
    assert cpu_percent({"cpu_percent": 12}, 4) == 12.0
    assert cpu_percent({}, 4) is None
    assert free_memory_mib({"free_memory_bytes": 3 << 30}) == 3072
    assert free_memory_mib({"memory_kib": {"free": 1024, "cached": 2048, "total": 9}}) == 3
    assert free_memory_mib({}) is None


@pytest.fixture
def m(manager_factory, tmp_path):
    need(find_spec("libvirt") is not None, "libvirt-python is not installed")

    m = manager_factory()
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    m.hosts.add("h1", "cl1", "test:///default")
    m.hosts.add("h2", "cl1", "test:///default")
    yield m
    forget_test_domains(vm.name for vm in m.vms.list())


def test_vm_start_through_the_policy_scheduler_on_the_test_driver(m, clock):
    facts = ManagerFacts(m.hosts, m.context.store, clock=clock)
    snap = facts.cluster_facts(m.clusters.get("cl1").id, m.hosts.list())
    assert {h.name for h in snap.hosts} == {"h1", "h2"}
    assert all(h.memory_mib > 0 and h.cpus > 0 for h in snap.hosts)
    sched = PolicyScheduler(facts, NONE, SchedulingService(clock=clock))
    m.vms.scheduler = sched
    m.vms.create(model.VmSpec(name="sched-a", memory_mib=256), "cl1")
    m.vms.create(model.VmSpec(name="sched-b", memory_mib=256), "cl1")
    a = m.vms.start("sched-a")
    b = m.vms.start("sched-b")
    hosts = {h.id: h.name for h in m.hosts.list()}
    # both hosts are the same libvirt, so their load is equal: the first start goes to h1
    # (tie by name), and its committed memory sends the second one to h2
    assert hosts[a.host_id] == "h1" and hosts[b.host_id] == "h2"
    d = sched.decisions[b.id]
    assert d.host_name == "h2" and len(d.hosts) == 2
    again = facts.cluster_facts(m.clusters.get("cl1").id, m.hosts.list())
    assert {h.name: h.vm_count for h in again.hosts} == {"h1": 1, "h2": 1}


def test_engine_facts_measure_cpu_demand_run_time_plus_steal(m, clock):
    """A VM's figure is its CPU demand between two polls: the time it ran plus the time
    its vCPUs waited for a physical CPU (``cpu_delay_ns``, libvirt's vcpu.N.delay). Two
    starved spinning guests (40 % run, 60 % waiting) are 100 % each, so their 2-CPU host
    (load_source = guests) reads 100 % whatever else the machine runs; without a delay
    figure the run time alone counts."""
    from virtplane.capabilities import HostCapabilities
    from virtplane_engine.placement import EngineFacts
    from virtplane_engine.scheduling.registry import UnitRegistry

    for n in ("spin-a", "spin-b", "plain"):
        m.vms.create(model.VmSpec(name=n, memory_mib=256), "cl1")
    h1 = m.hosts.get("h1")
    cpus = HostCapabilities.of(h1.capabilities).cpus
    assert cpus > 0
    facts = EngineFacts(m, UnitRegistry(entry_points=False), clock, "guests")

    def poll(t: float) -> None:
        ns = int(t * 1e9)
        facts.observe(h1, [
            {"name": "spin-a", "vcpus": 1, "cpu_time_ns": ns * 4 // 10,
             "cpu_delay_ns": ns * 6 // 10},
            {"name": "spin-b", "vcpus": 1, "cpu_time_ns": ns * 4 // 10,
             "cpu_delay_ns": ns * 6 // 10},
            {"name": "plain", "vcpus": 2, "cpu_time_ns": ns // 2},  # no delay figure
        ], None)

    poll(0.0)
    clock.advance(2.0)
    poll(2.0)
    ids = {v.name: v.id for v in m.vms.list()}
    assert facts.vm_cpu[ids["spin-a"]] == pytest.approx(100.0)
    assert facts.vm_cpu[ids["spin-b"]] == pytest.approx(100.0)
    assert facts.vm_cpu[ids["plain"]] == pytest.approx(25.0)  # 0.5 s/s over 2 vCPUs
    assert facts.host_cpu[h1.id] == pytest.approx(min(100.0, 250.0 / cpus))


def test_engine_facts_read_vms_from_the_engines_cache_not_the_store(m, clock, monkeypatch):
    """The engine hands its VM cache to the facts: a VM poll of a host must not parse
    every VM of the store again (it was half the idle engine's CPU with 1,000 VMs)."""
    from virtplane_engine.placement import EngineFacts
    from virtplane_engine.scheduling.registry import UnitRegistry

    vm = m.vms.create(model.VmSpec(name="cached", memory_mib=256), "cl1")
    h1 = m.hosts.get("h1")
    facts = EngineFacts(m, UnitRegistry(entry_points=False), clock, "guests",
                        vms_by_name=lambda: {"cached": vm})

    def no_listing(*_a: object) -> None:
        raise AssertionError("observe listed the store's VMs")

    monkeypatch.setattr(m.context.store, "list", no_listing)
    for t in (0.0, 1.0):
        clock.advance(t)
        facts.observe(h1, [{"name": "cached", "vcpus": 1, "cpu_time_ns": int(t * 5e8)}], None)
    monkeypatch.undo()  # the fixture's clean-up lists the VMs
    assert facts.vm_cpu[vm.id] == pytest.approx(50.0)
