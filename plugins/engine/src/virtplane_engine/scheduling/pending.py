"""Pending resources: VMs placed a moment ago that monitoring has not seen yet.

Between "the scheduler picked host A" and "host A's next poll shows the VM"
there are seconds in which A looks as empty as before. Without a record of
what was promised, ten starts in a row all pick A (oVirt's
``SCHED/pending/*``). Each placement adds an entry (memory, vCPUs, CPU load, one
VM) for its host; it goes away when the snapshot shows the VM running on that
host, when the caller releases it (the start failed), or after a time-to-live
(a start that never reported back must not hold memory forever).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import attrs

from virtplane_engine.scheduling.facts import HostFacts


@attrs.frozen
class PendingEntry:
    """What one placed-but-not-yet-seen VM holds on its host."""

    vm_id: str
    host_id: str
    memory_mib: int
    vcpus: int
    cpu_load: float
    since: float


@attrs.frozen
class PendingTotals:
    """The sum of a host's pending entries."""

    memory_mib: int = 0
    vcpus: int = 0
    vms: int = 0
    cpu_load: float = 0.0


class PendingResources:
    """Thread-safe pending entries, one per VM (a new placement replaces the old one)."""

    def __init__(self, ttl_seconds: float = 300.0) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"pending resources need a positive time-to-live, not {ttl_seconds}")
        self.ttl = ttl_seconds
        self._entries: dict[str, PendingEntry] = {}
        self._lock = threading.Lock()

    def add(self, entry: PendingEntry) -> None:
        with self._lock:
            self._entries[entry.vm_id] = entry

    def release(self, vm_id: str) -> bool:
        """Forget a VM's entry (its start failed or was cancelled); True if there was one."""
        with self._lock:
            return self._entries.pop(vm_id, None) is not None

    def entries(self) -> list[PendingEntry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: (e.since, e.vm_id))

    def reconcile(self, hosts: Iterable[HostFacts], now: float) -> list[PendingEntry]:
        """Drop entries whose VM the snapshot shows on its host, and expired ones;
        returns what was dropped."""
        with self._lock:
            if not self._entries:
                return []
            running = {h.id: h.vm_ids for h in hosts}
            gone = [e for e in self._entries.values()
                    if e.vm_id in running.get(e.host_id, frozenset())
                    or now - e.since >= self.ttl]
            for e in gone:
                del self._entries[e.vm_id]
            return gone

    def totals(self) -> dict[str, PendingTotals]:
        """Host id -> what is pending there."""
        out: dict[str, PendingTotals] = {}
        with self._lock:
            for e in self._entries.values():
                t = out.get(e.host_id, PendingTotals())
                out[e.host_id] = PendingTotals(t.memory_mib + e.memory_mib, t.vcpus + e.vcpus,
                                               t.vms + 1, t.cpu_load + e.cpu_load)
        return out

    def placements(self) -> dict[str, str]:
        """VM id -> host id of every pending VM."""
        with self._lock:
            return {e.vm_id: e.host_id for e in self._entries.values()}


def with_pending(host: HostFacts, totals: PendingTotals | None) -> HostFacts:
    """The host as units see it: its pending resources filled in."""
    if totals is None:
        return host
    return attrs.evolve(host, pending_memory_mib=totals.memory_mib,
                        pending_vcpus=totals.vcpus, pending_vms=totals.vms,
                        pending_cpu=totals.cpu_load)
