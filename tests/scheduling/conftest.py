"""Fake hosts and VMs on a virtual clock for the scheduling tests."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from virtplane_engine.scheduling.clock import VirtualClock
from virtplane_engine.scheduling.facts import ClusterFacts, HostFacts, VmFacts
from virtplane_engine.scheduling.registry import UnitRegistry
from virtplane_engine.scheduling.scheduler import SchedulingService

NOW = 1_700_000_000.0


def host(name: str, cpu: float | None = 10.0, **kw: Any) -> HostFacts:
    """An Up x86_64 host with 4 CPUs, 16 GiB, plenty free, unless told otherwise."""
    base: dict[str, Any] = dict(id=name, name=name, cpus=4, memory_mib=16384,
                                free_memory_mib=16000, cpu_usage_percent=cpu,
                                guest_arches=["x86_64"])
    base.update(kw)
    return HostFacts(**base)


def vm(name: str, on: str | None = None, **kw: Any) -> VmFacts:
    base: dict[str, Any] = dict(id=name, name=name, memory_mib=1024, vcpus=1, host_id=on,
                                status="Up" if on else "Down")
    base.update(kw)
    return VmFacts(**base)


def cluster(hosts: list[HostFacts], vms: list[VmFacts] | None = None, **kw: Any) -> ClusterFacts:
    """A cluster whose hosts list their running VMs (vm_ids and committed resources are
    filled in from ``vms`` unless a host sets them)."""
    vms = vms or []
    out = []
    for h in hosts:
        mine = [v for v in vms if v.host_id == h.id]
        if mine and not h.vm_ids:
            h = attrs.evolve(h, vm_ids=[v.id for v in mine],
                             committed_memory_mib=sum(v.memory_mib for v in mine),
                             vcpus_committed=sum(v.vcpus for v in mine))
        out.append(h)
    return ClusterFacts("c1", "c1", hosts=out, vms=list(vms), **kw)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(NOW)


@pytest.fixture
def registry() -> UnitRegistry:
    return UnitRegistry()


@pytest.fixture
def service(registry: UnitRegistry, clock: VirtualClock) -> SchedulingService:
    return SchedulingService(registry, clock)
