"""The core's ``Scheduler`` protocol, answered by cluster policy.

``Vms(ctx, ..., scheduler=PolicyScheduler(...))`` makes ``vm start`` place VMs
with filters, weights and pending resources instead of the core's first Up
host. The scheduler reads hosts through a :class:`~.facts.FactsProvider`: the
engine feeds one from its monitoring; :class:`ManagerFacts` builds the same
snapshot without an engine from ``hosts.stats()``, recorded capabilities and
the state store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from virtplane import model
from virtplane.capabilities import HostCapabilities
from virtplane.errors import InvalidState, VirtplaneError
from virtplane_engine.scheduling.balancing import OverCommitTracker
from virtplane_engine.scheduling.clock import Clock, SystemClock
from virtplane_engine.scheduling.decision import Decision, format_decision
from virtplane_engine.scheduling.facts import AffinityGroup, ClusterFacts, HostFacts, VmFacts
from virtplane_engine.scheduling.policies import NONE, ClusterPolicy
from virtplane_engine.scheduling.scheduler import SchedulingService
from virtplane_engine.scheduling.units import Mode

log = logging.getLogger(__name__)

_RUNNING_ELSEWHERE = (model.VmStatus.MIGRATION_SOURCE, model.VmStatus.MIGRATION_DESTINATION)


class NoHostFits(InvalidState):
    """No host of the cluster can take the VM; :attr:`decision` says why, host by host."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(format_decision(decision, show_scores=False))
        self.decision = decision


class PolicyScheduler:
    """Places VMs by the cluster's policy (implements ``virtplane.scheduling.Scheduler``).

    ``policy`` is one policy for every cluster or a function of the cluster id.
    ``on_decision`` receives every decision (the engine stores them for
    ``scheduling explain``); the last one per VM is also kept in memory.
    """

    def __init__(self, facts: FactsProviderLike,
                 policy: ClusterPolicy | Callable[[str], ClusterPolicy] = NONE,
                 service: SchedulingService | None = None,
                 on_decision: Callable[[Decision], None] | None = None) -> None:
        self.facts = facts
        self._policy = policy
        self.service = service or SchedulingService()
        self.on_decision = on_decision
        self.decisions: dict[str, Decision] = {}

    def policy_for(self, cluster_id: str) -> ClusterPolicy:
        if isinstance(self._policy, ClusterPolicy):
            return self._policy
        return self._policy(cluster_id)

    def pick(self, vm: model.Vm, hosts: list[model.Host]) -> model.Host:
        """The host to start ``vm`` on; :class:`NoHostFits` (an InvalidState) when none."""
        mine = [h for h in hosts if h.cluster_id == vm.cluster_id]
        decision = self.decide(vm, mine)
        if decision.host_id is None:
            raise NoHostFits(decision)
        for h in mine:
            if h.id == decision.host_id:
                return h
        raise InvalidState(f"the scheduler chose host {decision.host_id!r}, which is not "
                           f"among the hosts of VM {vm.name!r}'s cluster")

    def decide(self, vm: model.Vm, hosts: Sequence[model.Host], *,
               mode: Mode = Mode.START) -> Decision:
        """The decision for ``vm`` (recorded, pending resources held) without raising."""
        cluster = self.facts.cluster_facts(vm.cluster_id, hosts)
        decision = self.service.schedule(self.policy_for(vm.cluster_id), cluster,
                                         self.facts.vm_facts(vm), mode=mode,
                                         source_host_id=vm.host_id
                                         if mode is not Mode.START else None)
        self.decisions[vm.id] = decision
        if self.on_decision is not None:
            self.on_decision(decision)
        return decision

    def release(self, vm_id: str) -> bool:
        """The start failed: free what the decision held on its host."""
        return self.service.pending.release(vm_id)

    def explain(self, vm_id: str) -> str:
        """The last decision for a VM, formatted (``scheduling explain VM``)."""
        d = self.decisions.get(vm_id)
        if d is None:
            raise InvalidState(f"no scheduling decision is recorded for VM {vm_id!r}")
        return format_decision(d)


class FactsProviderLike(Protocol):
    def cluster_facts(self, cluster_id: str, hosts: Sequence[model.Host]) -> ClusterFacts: ...

    def vm_facts(self, vm: model.Vm) -> VmFacts: ...


class _HostsLike(Protocol):
    def stats(self, name: str) -> dict[str, Any]: ...


class _StoreLike(Protocol):
    def list(self, kind: Any) -> list[Any]: ...

    def get(self, kind: Any, oid: str) -> Any: ...


def vms_by_host(vms: Sequence[model.Vm]) -> dict[str | None, list[model.Vm]]:
    """The VMs grouped by the host they are on, in one pass (a snapshot of a thousand
    hosts then looks at each VM once, not once per host)."""
    out: dict[str | None, list[model.Vm]] = {}
    for v in vms:
        out.setdefault(v.host_id, []).append(v)
    return out


def cpu_percent(stats: dict[str, Any], cpus: int) -> float | None:
    """CPU use (%) from a driver's ``host_stats``: ``cpu_percent`` when the driver gives
    it, else the 1-minute load average over the CPU count (capped at 100)."""
    if isinstance(stats.get("cpu_percent"), int | float):
        return float(stats["cpu_percent"])
    load = stats.get("load")
    if isinstance(load, list | tuple) and load and cpus > 0:
        return min(100.0, 100.0 * float(load[0]) / cpus)
    return None


def free_memory_mib(stats: dict[str, Any]) -> int | None:
    """Free memory (MiB) from ``host_stats``: ``free_memory_bytes``, else libvirt's
    node memory stats (free + buffers + cached, KiB)."""
    if isinstance(stats.get("free_memory_bytes"), int):
        return int(stats["free_memory_bytes"]) // (1024 * 1024)
    mem = stats.get("memory_kib")
    if isinstance(mem, dict) and "free" in mem:
        return int(sum(int(mem.get(k, 0)) for k in ("free", "buffers", "cached")) // 1024)
    return None


class ManagerFacts:
    """Cluster snapshots without an engine: the state store, recorded capabilities and
    one ``hosts.stats()`` call per Up host.

    ``hosts`` is the core's Hosts service (``m.hosts``), ``store`` its state store
    (``m.context.store``). ``tracker`` keeps over-commit timestamps between calls
    (HighUtilization/LowUtilization given as ``high``/``low``); ``affinity`` lists a
    cluster's affinity groups. A host whose statistics cannot be read is reported
    without them (the CPU-load units then treat it as oVirt does); the reason is
    logged.
    """

    def __init__(self, hosts: _HostsLike, store: _StoreLike, *, clock: Clock | None = None,
                 tracker: OverCommitTracker | None = None, high: float = 80.0,
                 low: float = 0.0,
                 affinity: Callable[[str], Sequence[AffinityGroup]] | None = None) -> None:
        self.hosts = hosts
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.tracker = tracker or OverCommitTracker()
        self.high, self.low = high, low
        self.affinity = affinity

    def cluster_facts(self, cluster_id: str, hosts: Sequence[model.Host]) -> ClusterFacts:
        cluster = self.store.get(model.Cluster, cluster_id)
        vms = [v for v in self.store.list(model.Vm) if v.cluster_id == cluster_id]
        by_name = {h.name: h.id for h in hosts}
        on = vms_by_host(vms)
        return ClusterFacts(
            id=cluster_id, name=cluster.name, arch=cluster.architecture,
            cpu_model=cluster.cpu_model,
            hosts=tuple(self.host_facts(h, on.get(h.id, ())) for h in hosts
                        if h.cluster_id == cluster_id),
            vms=tuple(self._vm(v, by_name) for v in vms if v.status != model.VmStatus.DOWN),
            affinity_groups=tuple(self.affinity(cluster_id)) if self.affinity else ())

    def host_facts(self, host: model.Host, vms: Sequence[model.Vm]) -> HostFacts:
        caps = HostCapabilities.of(host.capabilities)
        running = [v for v in vms if v.host_id == host.id and v.status != model.VmStatus.DOWN]
        cpu: float | None = None
        free: int | None = None
        if host.status == model.HostStatus.UP:
            try:
                stats = self.hosts.stats(host.name)
            except VirtplaneError as exc:
                log.warning("no statistics for host %s: %s", host.name, exc)
            else:
                cpu = cpu_percent(stats, caps.cpus)
                # libvirt's test driver answers virNodeGetFreeMemory in KiB, not bytes
                # (3072 MiB of "RAM" read as 3 MiB free): no physical check there
                free = None if host.uri.startswith("test:") else free_memory_mib(stats)
        since = None
        if cpu is not None:
            since = self.tracker.update(host.id, cpu, self.clock.now(), self.high, self.low)
        return HostFacts(
            id=host.id, name=host.name, status=host.status.value, arch=caps.arch,
            guest_arches=caps.guest_arches, any_guest_arch=caps.any_guest_arch,
            cpu_model=caps.cpu_model, usable_cpu_models=caps.usable_cpu_models,
            cpus=caps.cpus, cpu_usage_percent=cpu, cpu_over_commit_since=since,
            memory_mib=caps.memory_mib, free_memory_mib=free,
            committed_memory_mib=sum(v.spec.memory_mib for v in running),
            vm_ids=frozenset(v.id for v in running),
            vcpus_committed=sum(v.spec.vcpus for v in running),
            migrating_vms=sum(v.status in _RUNNING_ELSEWHERE for v in running),
            address=host.uri)

    def vm_facts(self, vm: model.Vm) -> VmFacts:
        hosts = {h.name: h.id for h in self.store.list(model.Host)}
        return self._vm(vm, hosts)

    @staticmethod
    def _vm(vm: model.Vm, host_ids: dict[str, str], **more: Any) -> VmFacts:
        """The VM's facts; ``more`` sets further fields (one object built, not two)."""
        # fields the core's model may not carry yet are read when present
        def ids(names: Any) -> frozenset[str]:
            return frozenset(host_ids.get(n, n) for n in names or ())

        fields: dict[str, Any] = dict(
            id=vm.id, name=vm.name, memory_mib=vm.spec.memory_mib, vcpus=vm.spec.vcpus,
            arch=vm.spec.arch, cpu_model=vm.spec.cpu_model, host_id=vm.host_id,
            status=vm.status.value,
            migratable=bool(getattr(vm, "migratable", True)),
            pinned_hosts=ids(getattr(vm, "pinned_hosts", None)),
            preferred_hosts=ids(getattr(vm, "preferred_hosts", None)),
            highly_available=bool(getattr(vm, "highly_available", False)),
            priority=int(getattr(vm, "priority", 0) or 0))
        fields.update(more)
        return VmFacts(**fields)
