"""What the scheduler knows about a cluster: immutable snapshots of hosts and VMs.

Policy units never talk to hosts. They read these frozen records, which the
engine fills from its monitoring (or :class:`~.adapter.ManagerFacts` from
``hosts.stats()`` without an engine, or a test from plain literals). That keeps
every unit a pure function of its inputs, so a decision can be replayed and
explained, and a thousand fake hosts cost nothing.

Units are given :class:`HostFacts` with the cluster's *pending* resources
already added (:mod:`.pending`): VMs placed a moment ago and not yet seen by
monitoring count as if they ran, so back-to-back starts do not pile onto one
host.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Protocol

import attrs

from virtplane import model

#: Host statuses the scheduling layer reads (the engine's names); ``Down`` is a host
#: powered off by power saving or fencing, which the core's model does not have yet.
UP = "Up"
MAINTENANCE = "Maintenance"
DOWN = "Down"


_EMPTY: frozenset[str] = frozenset()


def _frozenset(value: object) -> frozenset[str]:
    if value is None or (isinstance(value, frozenset | set | tuple | list) and not value):
        return _EMPTY  # most VMs pin, prefer and group nothing: one shared empty set
    if isinstance(value, str):
        raise TypeError(f"expected a collection of names, not the string {value!r}")
    return frozenset(str(v) for v in value)  # type: ignore[attr-defined]


def _opt_frozenset(value: object) -> frozenset[str] | None:
    return None if value is None else _shared(value)


#: equal name sets of different hosts, kept once (see :func:`_shared`)
_SHARED: dict[frozenset[str], frozenset[str]] = {}


def _shared(value: object) -> frozenset[str]:
    """A name set most hosts of a cluster have alike (guest architectures, usable CPU
    models, networks), interned: a thousand hosts hold one set rather than a thousand
    equal ones, and the filters that read it per host find it in the CPU's cache.
    Bounded: the table starts over past 4,096 distinct sets."""
    names = _frozenset(value)
    if len(_SHARED) >= 4096:
        _SHARED.clear()
    return _SHARED.setdefault(names, names)


@attrs.frozen
class HostFacts:
    """One host as monitoring last saw it, plus the pending resources placed on it.

    CPU figures are percentages of the host's shared physical CPUs (oVirt's
    "effective shared CPU load"); ``cpu_usage_percent`` None means the host has
    no statistics yet, which the CPU-load units treat as oVirt does (dropped by
    CPUOverloaded, worst weight). Memory is in MiB. ``cpu_over_commit_since`` is
    when the host last left the [LowUtilization, HighUtilization] band (set and
    cleared by :class:`~.balancing.OverCommitTracker`); None means it is inside.
    """

    id: str
    name: str
    status: str = UP
    arch: str = "x86_64"
    guest_arches: frozenset[str] = attrs.field(factory=frozenset, converter=_shared)
    any_guest_arch: bool = False
    cpu_model: str | None = None
    usable_cpu_models: frozenset[str] = attrs.field(factory=frozenset, converter=_shared)
    cpus: int = 0
    cpu_usage_percent: float | None = None
    cpu_over_commit_since: float | None = None
    memory_mib: int = 0
    free_memory_mib: int | None = None
    committed_memory_mib: int = 0
    reserved_memory_mib: int = 0
    vm_ids: frozenset[str] = attrs.field(factory=frozenset, converter=_frozenset)
    vcpus_committed: int = 0
    migrating_vms: int = 0
    is_spm: bool = False
    power_management: bool = False
    external_status_ok: bool = True
    networks: frozenset[str] | None = attrs.field(default=None, converter=_opt_frozenset)
    address: str = ""
    pending_memory_mib: int = 0
    pending_vcpus: int = 0
    pending_vms: int = 0
    pending_cpu: float = 0.0

    @property
    def vm_count(self) -> int:
        """VMs running on the host (not counting pending ones)."""
        return len(self.vm_ids)

    @property
    def load(self) -> float:
        """CPU load in percent-cores (usage % x shared CPUs) including pending VMs."""
        return (self.cpu_usage_percent or 0.0) * self.cpus + self.pending_cpu

    @property
    def effective_cpu_percent(self) -> float:
        """Shared CPU load in percent of the host, pending VMs included."""
        if self.cpus <= 0:
            return self.cpu_usage_percent or 0.0
        return self.load / self.cpus

    def scheduling_memory_mib(self, overcommit_percent: int) -> int:
        """Memory still promised to nobody: physical x overcommit %, minus what running
        and pending VMs were given and what the host keeps for itself (oVirt's "max
        scheduling memory")."""
        return (self.memory_mib * overcommit_percent // 100 - self.committed_memory_mib
                - self.pending_memory_mib - self.reserved_memory_mib)

    @property
    def physical_free_mib(self) -> int | None:
        """Physically free memory after pending VMs (None when monitoring did not say)."""
        if self.free_memory_mib is None:
            return None
        return self.free_memory_mib - self.pending_memory_mib


@attrs.frozen
class VmFacts:
    """What placing or moving one VM needs to know about it.

    ``cpu_usage_percent`` is its average use per vCPU (for balancing, which moves
    the cheapest VM first); ``last_migrated_at`` feeds the balancing cooldown.
    """

    id: str
    name: str
    memory_mib: int = 1024
    vcpus: int = 1
    arch: str | None = None
    cpu_model: str | None = None
    host_id: str | None = None
    status: str = "Down"
    cpu_usage_percent: float = 0.0
    migratable: bool = True
    pinned_hosts: frozenset[str] = attrs.field(factory=frozenset, converter=_frozenset)
    preferred_hosts: frozenset[str] = attrs.field(factory=frozenset, converter=_frozenset)
    highly_available: bool = False
    priority: int = 0
    networks: frozenset[str] = attrs.field(factory=frozenset, converter=_frozenset)
    last_migrated_at: float | None = None

    @property
    def cpu_load(self) -> float:
        """CPU use in percent-cores (usage % x vCPUs), oVirt's VM CPU comparator."""
        return self.cpu_usage_percent * self.vcpus

    @property
    def paused(self) -> bool:
        return self.status == model.VmStatus.PAUSED.value


@attrs.frozen
class AffinityRule:
    """One side of an affinity group: together (positive) or apart, hard or soft."""

    positive: bool = True
    enforcing: bool = False


@attrs.frozen
class AffinityGroup:
    """oVirt's affinity group: a VM rule among its VMs and a host rule towards its hosts.

    An enforcing rule is a filter (a host that breaks it is never chosen); a
    non-enforcing one is a weight (breaking it costs, but is allowed).
    """

    name: str
    vm_ids: frozenset[str] = attrs.field(factory=frozenset, converter=_frozenset)
    host_ids: frozenset[str] = attrs.field(factory=frozenset, converter=_frozenset)
    vm_rule: AffinityRule | None = None
    host_rule: AffinityRule | None = None


def _hosts(value: Iterable[HostFacts]) -> tuple[HostFacts, ...]:
    return tuple(value)


def _vms(value: Iterable[VmFacts]) -> tuple[VmFacts, ...]:
    return tuple(value)


def _groups(value: Iterable[AffinityGroup]) -> tuple[AffinityGroup, ...]:
    return tuple(value)


@attrs.frozen
class ClusterFacts:
    """One cluster at one moment: its hosts (any status), VMs and affinity groups."""

    id: str
    name: str = ""
    arch: str = "x86_64"
    cpu_model: str | None = None
    hosts: tuple[HostFacts, ...] = attrs.field(default=(), converter=_hosts)
    vms: tuple[VmFacts, ...] = attrs.field(default=(), converter=_vms)
    affinity_groups: tuple[AffinityGroup, ...] = attrs.field(default=(), converter=_groups)
    #: the cluster keeps room to restart each host's HA VMs elsewhere (oVirt's HA reservation)
    ha_reservation: bool = False

    def host(self, host_id: str) -> HostFacts:
        """A host by id (a clear error names the cluster when it is not there)."""
        for h in self.hosts:
            if h.id == host_id:
                return h
        raise KeyError(f"cluster {self.name or self.id!r} has no host {host_id!r}")

    def vm(self, vm_id: str) -> VmFacts:
        """A VM by id."""
        for v in self.vms:
            if v.id == vm_id:
                return v
        raise KeyError(f"cluster {self.name or self.id!r} has no VM {vm_id!r}")


class FactsProvider(Protocol):
    """Where the scheduler gets its snapshots: the engine's monitoring, or a fake.

    Implementations must be cheap to call on every placement; the engine keeps
    the last poll of each host in memory.
    """

    def cluster_facts(self, cluster_id: str, hosts: Sequence[model.Host]) -> ClusterFacts:
        """The cluster's snapshot; ``hosts`` are the host records the caller holds."""

    def vm_facts(self, vm: model.Vm) -> VmFacts:
        """The facts of the VM about to be placed."""


def _memory_used_percent(h: HostFacts) -> float:
    return 100.0 * h.committed_memory_mib / h.memory_mib if h.memory_mib > 0 else 0.0


def spread(hosts: Sequence[HostFacts], metric: str) -> float:
    """Population standard deviation of a per-host figure: ``cpu`` (load %), ``memory``
    (memory promised %), ``vm_count``."""
    if len(hosts) < 2:
        return 0.0
    if metric == "memory":
        values = [_memory_used_percent(h) for h in hosts]
    elif metric == "vm_count":
        values = [float(h.vm_count) for h in hosts]
    else:
        values = [h.effective_cpu_percent for h in hosts]
    return statistics.pstdev(values)
