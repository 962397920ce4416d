"""The scheduling layer fed by the engine's monitoring: facts, policies, decisions.

:class:`EngineFacts` is the engine's :class:`~.scheduling.facts.FactsProvider`:
the host records the monitor keeps, the VMs of the store, and the figures the
VM polls measure (each VM's CPU demand between two polls: its CPU time plus the
time its vCPUs waited for a physical CPU, the guest's steal time, when the driver
reports it as ``cpu_delay_ns``). It
updates the :class:`~.scheduling.balancing.OverCommitTracker` at every VM poll,
so "over HighUtilization for CpuOverCommitDurationMinutes" means what monitoring
saw, poll after poll.

A host's CPU load comes from ``[engine] load_source``:

* ``host`` (default): the host's own CPU counters (libvirt's node CPU stats,
  busy time between two polls), what a host that is a machine of its own reports;
* ``guests``: the sum of its guests' measured CPU demand over its CPUs. For hosts
  that share one machine (the project's namespace hosts, whose node counters are
  all the same machine's), this is the only figure that tells them apart; and
  since it counts what the guests waited for as well as what they got, a busy
  machine does not hide a loaded host (two spinning vCPUs on a 2-CPU host are
  100 % of it whatever else runs).

Each cluster's policy is its record's ``scheduling_policy`` with its
``scheduling_parameters`` (``virtplane scheduling policy set``); every decision
is kept in memory and stored as an event of its VM (code 100060) whose message
is the explanation, so ``virtplane scheduling explain VM`` answers after an
engine restart too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from virtplane import model
from virtplane.capabilities import HostCapabilities
from virtplane.errors import ConfigError, InvalidState, NotFound, VirtplaneError
from virtplane_engine.codes import Code
from virtplane_engine.scheduling.adapter import (
    ManagerFacts,
    PolicyScheduler,
    cpu_percent,
    free_memory_mib,
    vms_by_host,
)
from virtplane_engine.scheduling.balancing import OverCommitTracker
from virtplane_engine.scheduling.clock import Clock
from virtplane_engine.scheduling.decision import Decision, format_decision
from virtplane_engine.scheduling.facts import DOWN, ClusterFacts, HostFacts, VmFacts
from virtplane_engine.scheduling.params import PolicyError
from virtplane_engine.scheduling.policies import ClusterPolicy
from virtplane_engine.scheduling.registry import UnitRegistry
from virtplane_engine.scheduling.scheduler import SchedulingService

if TYPE_CHECKING:
    from virtplane.config import Config
    from virtplane.manager import Manager

log = logging.getLogger("virtplane.engine.placement")

#: how a stored decision's event message starts (``scheduling explain`` finds it by this)
DECISION_PREFIX = "scheduling decision: "
#: a host in Maintenance whose reason starts so is powered off (the model has no Down)
POWERED_OFF = "powered off"
_MIGRATING = (model.VmStatus.MIGRATION_SOURCE, model.VmStatus.MIGRATION_DESTINATION)


@attrs.frozen
class AutomationSettings:
    """The ``[engine]`` keys of scheduling, HA, fencing and maintenance (oVirt's defaults:
    balancing every minute, no fencing in the first 300 s, soft fencing waits 60 s,
    fencing skipped when 50 % of a cluster's hosts are unreachable, HA restarts retried
    every 30 s ten times, then every 30 min, a lower-priority HA VM waiting at most
    600 s in all for higher-priority ones to be Up: MaxTimeAutoStartBlockedOnPriority)."""

    balance_interval: float = 60.0
    fence_startup_grace: float = 300.0
    fence_confirm_interval: float = 10.0
    soft_fence_timeout: float = 60.0
    fence_connectivity_threshold: int = 50
    ha_retry_interval: float = 30.0
    ha_retries_short: int = 10
    ha_retry_long_interval: float = 1800.0
    ha_priority_wait: float = 600.0
    maintenance_retry: float = 30.0
    load_source: str = "host"

    def __attrs_post_init__(self) -> None:
        for name in ("balance_interval", "ha_retry_interval", "ha_retry_long_interval",
                     "maintenance_retry"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"engine.{name} = {getattr(self, name)!r} is not allowed; "
                                  "it must be a number of seconds above 0")
        for name in ("fence_startup_grace", "fence_confirm_interval", "soft_fence_timeout",
                     "ha_retries_short", "ha_priority_wait"):
            if getattr(self, name) < 0:
                raise ConfigError(f"engine.{name} = {getattr(self, name)!r} is not allowed; "
                                  "it must be 0 or more")
        if not 1 <= self.fence_connectivity_threshold <= 100:
            raise ConfigError(f"engine.fence_connectivity_threshold = "
                              f"{self.fence_connectivity_threshold} is not allowed; it must "
                              "be a percentage from 1 to 100 (oVirt offers 25, 50, 75, 100)")
        if self.load_source not in ("host", "guests"):
            raise ConfigError(f"engine.load_source = {self.load_source!r} is not allowed; "
                              "it must be 'host' (the host's CPU counters) or 'guests' (the "
                              "sum of its guests' CPU: hosts sharing one machine)")

    @classmethod
    def from_config(cls, cfg: Config, **overrides: Any) -> AutomationSettings:
        table = dict(cfg.values.get("engine") or {})
        fields = {f.name for f in attrs.fields(cls)}
        values = {k: v for k, v in table.items() if k in fields and v is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def cluster_policy(registry: UnitRegistry, cluster: model.Cluster) -> ClusterPolicy:
    """The cluster's policy with its parameter overrides (a :class:`PolicyError` names
    the unknown policy or parameter)."""
    policy = registry.policy(cluster.scheduling_policy or "none")
    assert isinstance(policy, ClusterPolicy)
    if cluster.scheduling_parameters:
        policy = policy.with_parameters(**cluster.scheduling_parameters)
    return policy


def _int_param(policy: ClusterPolicy, name: str, default: int) -> int:
    try:
        return int(str(policy.parameters.get(name, default)))
    except ValueError:
        return default


class EngineFacts:
    """Cluster snapshots from the engine's monitoring (see the module docstring)."""

    def __init__(self, m: Manager, registry: UnitRegistry, clock: Clock,
                 load_source: str = "host",
                 vms_by_name: Callable[[], Mapping[str, model.Vm]] | None = None) -> None:
        """:param vms_by_name: the store's VMs by name, from the engine's cache (the
            monitor's :class:`~virtplane_engine.storewatch.VmCache`); without it every
            poll reads them from the store."""
        self.m = m
        self._vms_by_name = vms_by_name or (
            lambda: {v.name: v for v in m.context.store.list(model.Vm)})
        self.registry = registry
        self.clock = clock
        self.load_source = load_source
        self.tracker = OverCommitTracker()
        #: VM id -> its CPU use per vCPU (%) between its last two polls
        self.vm_cpu: dict[str, float] = {}
        #: VM id -> when a migration of it last ended (the balancing cooldown)
        self.migrated_at: dict[str, float] = {}
        self.host_cpu: dict[str, float] = {}
        self.host_free: dict[str, int] = {}
        self._vm_samples: dict[str, tuple[int, float]] = {}
        self._host_samples: dict[str, tuple[int, int, float]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ observing

    def observe(self, host: model.Host, reports: Sequence[dict[str, Any]],
                host_stats: dict[str, Any] | None) -> None:
        """One VM poll of ``host``: its domains' bulk stats (and, with ``load_source =
        host``, its own stats). Updates the figures and the over-commit timestamp."""
        now = self.clock.now()
        caps = HostCapabilities.of(host.capabilities)
        by_name = self._vms_by_name()
        guests = 0.0
        with self._lock:
            for r in reports:
                vm = by_name.get(str(r.get("name")))
                cpu_ns, vcpus = r.get("cpu_time_ns"), int(r.get("vcpus") or 1)
                if vm is None or not isinstance(cpu_ns, int):
                    continue
                delay = r.get("cpu_delay_ns")
                # CPU demand: the time it ran plus the time its vCPUs waited for a
                # physical CPU (a starved guest still wants what it cannot get)
                demand = cpu_ns + (delay if isinstance(delay, int) else 0)
                last = self._vm_samples.get(vm.id)
                self._vm_samples[vm.id] = (demand, now)
                if last is not None and now > last[1] and demand >= last[0]:
                    pct = min(100.0, 100.0 * (demand - last[0]) / ((now - last[1]) * 1e9)
                              / max(vcpus, 1))
                    self.vm_cpu[vm.id] = pct
                guests += self.vm_cpu.get(vm.id, 0.0) * vcpus
            load: float | None
            if self.load_source == "guests":
                load = min(100.0, guests / caps.cpus) if caps.cpus > 0 else None
            else:
                load = self._host_load(host.id, host_stats or {}, now, caps.cpus)
            if host_stats is not None:
                free = None if host.uri.startswith("test:") else free_memory_mib(host_stats)
                if free is not None:
                    self.host_free[host.id] = free
            if load is None:
                return
            self.host_cpu[host.id] = load
        policy = self._policy_of(host.cluster_id)
        high = _int_param(policy, "HighUtilization", 80) if policy else 80
        low = _int_param(policy, "LowUtilization", 0) if policy else 0
        self.tracker.update(host.id, load, now, high, low)

    def _host_load(self, host_id: str, stats: dict[str, Any], now: float,
                   cpus: int) -> float | None:
        """Busy share of the host's CPU time between two polls (libvirt's node stats)."""
        cpu = stats.get("cpu_ns")
        if isinstance(cpu, dict) and "idle" in cpu:
            total = sum(int(v) for v in cpu.values())
            idle = int(cpu.get("idle", 0)) + int(cpu.get("iowait", 0))
            last = self._host_samples.get(host_id)
            self._host_samples[host_id] = (total - idle, total, now)
            if last is not None and total > last[1]:
                return max(0.0, min(100.0, 100.0 * (total - idle - last[0]) / (total - last[1])))
        # the first sample (or a driver without counters): the load average, if any
        return cpu_percent(stats, cpus)

    def _first_figure(self, host: model.Host, cpus: int) -> float | None:
        """A host no VM poll has measured yet (the engine just started): its guests'
        CPU is not known yet, so 0; its own load average, read once now."""
        if self.load_source == "guests":
            return 0.0
        stats = host_stats_or_none(self.m, host)
        load = None if stats is None else cpu_percent(stats, cpus)
        if load is not None:
            with self._lock:
                self.host_cpu.setdefault(host.id, load)
        return load

    def describe(self) -> dict[str, Any]:
        """Each host's CPU load as the scheduler sees it, and since when it has been
        outside the [LowUtilization, HighUtilization] band (``engine status``)."""
        names = {h.id: h.name for h in self.m.context.store.list(model.Host)}
        now = self.clock.now()
        return {"load": {names.get(h, h): {
            "cpu_percent": round(cpu, 1),
            "outside_band_s": (None if self.tracker.since(h) is None
                               else round(now - (self.tracker.since(h) or now), 1))}
            for h, cpu in sorted(self.host_cpu.items())}}

    def _policy_of(self, cluster_id: str) -> ClusterPolicy | None:
        try:
            return cluster_policy(self.registry,
                                  self.m.context.store.get(model.Cluster, cluster_id))
        except (NotFound, PolicyError) as exc:
            log.warning("cluster %s: no usable policy: %s", cluster_id, exc)
            return None

    # ------------------------------------------------------------ snapshots

    def cluster_facts(self, cluster_id: str, hosts: Sequence[model.Host]) -> ClusterFacts:
        store = self.m.context.store
        cluster = store.get(model.Cluster, cluster_id)
        vms = [v for v in store.list(model.Vm) if v.cluster_id == cluster_id]
        ids = {h.name: h.id for h in hosts}
        on = vms_by_host(vms)
        return ClusterFacts(
            id=cluster_id, name=cluster.name, arch=cluster.architecture,
            cpu_model=cluster.cpu_model,
            hosts=tuple(self.host_facts(h, on.get(h.id, ())) for h in hosts
                        if h.cluster_id == cluster_id),
            vms=tuple(self._vm(v, ids) for v in vms if v.status != model.VmStatus.DOWN))

    def host_facts(self, host: model.Host, vms: Sequence[model.Vm]) -> HostFacts:
        caps = HostCapabilities.of(host.capabilities)
        running = [v for v in vms if v.host_id == host.id and v.status != model.VmStatus.DOWN]
        status = host.status.value
        cpu = self.host_cpu.get(host.id)
        if cpu is None and host.status == model.HostStatus.UP:
            cpu = self._first_figure(host, caps.cpus)
        if host.status == model.HostStatus.MAINTENANCE and \
                host.status_reason.startswith(POWERED_OFF):
            status = DOWN
        return HostFacts(
            id=host.id, name=host.name, status=status, arch=caps.arch,
            guest_arches=caps.guest_arches, any_guest_arch=caps.any_guest_arch,
            cpu_model=caps.cpu_model, usable_cpu_models=caps.usable_cpu_models,
            cpus=caps.cpus, cpu_usage_percent=cpu,
            cpu_over_commit_since=self.tracker.since(host.id),
            memory_mib=caps.memory_mib, free_memory_mib=self.host_free.get(host.id),
            committed_memory_mib=sum(v.spec.memory_mib for v in running),
            vm_ids=frozenset(v.id for v in running),
            vcpus_committed=sum(v.spec.vcpus for v in running),
            migrating_vms=sum(v.status in _MIGRATING for v in running),
            power_management=bool(host.fence_agent), address=host.uri)

    def vm_facts(self, vm: model.Vm) -> VmFacts:
        return self._vm(vm, {h.name: h.id for h in self.m.context.store.list(model.Host)})

    def _vm(self, vm: model.Vm, host_ids: dict[str, str]) -> VmFacts:
        return ManagerFacts._vm(vm, host_ids, highly_available=vm.spec.highly_available,
                                priority=vm.spec.ha_priority,
                                cpu_usage_percent=self.vm_cpu.get(vm.id, 0.0),
                                last_migrated_at=self.migrated_at.get(vm.id))


class EngineScheduler(PolicyScheduler):
    """The engine's placement: each cluster's own policy, decisions stored as events."""

    def __init__(self, facts: EngineFacts, service: SchedulingService,
                 emit: Callable[[str, Code, str, str | None], None]) -> None:
        super().__init__(facts, self._policy, service, self._record)
        self.engine_facts = facts
        self._emit = emit

    def _policy(self, cluster_id: str) -> ClusterPolicy:
        cluster = self.engine_facts.m.context.store.get(model.Cluster, cluster_id)
        try:
            return cluster_policy(self.service.registry, cluster)
        except PolicyError as exc:
            raise InvalidState(f"cluster {cluster.name!r}: its scheduling policy is not "
                               f"usable: {exc}") from None

    def _record(self, decision: Decision) -> None:
        self._emit(decision.vm_id, Code.SCHEDULING_DECISION,
                   DECISION_PREFIX + format_decision(decision), None)

    def explain(self, vm_id: str) -> str:
        """The last decision about a VM: this engine's, else the last one stored."""
        if vm_id in self.decisions:
            return super().explain(vm_id)
        return stored_explanation(self.engine_facts.m, vm_id)


def stored_explanation(m: Manager, vm_id: str) -> str:
    """The explanation of the last decision stored for a VM (its events)."""
    for _ts, _level, message in reversed(m.context.store.events(vm_id)):
        if message.startswith(DECISION_PREFIX):
            return message[len(DECISION_PREFIX):]
    raise InvalidState("no scheduling decision is recorded for this VM (it was started "
                       "with --host, without an engine, or never)")


def host_stats_or_none(m: Manager, host: model.Host) -> dict[str, Any] | None:
    """The host's own statistics for the load figures (None, logged, when unreadable)."""
    try:
        stats: dict[str, Any] = m.context.connections.get(host).host_stats()
    except VirtplaneError as exc:
        log.warning("host %s: statistics not read: %s", host.name, exc)
        return None
    return stats

