"""What hosts and storage report, compared with the store: the monitor's rules.

Blocking code, run by the engine's loops in its thread pool, one call per host
per poll (so one hung host costs one thread, never the others' polls):

* :meth:`Monitor.poll_host` — ping the host, feed :mod:`~virtplane_engine.hoststate`,
  record the transition and its event; (re)subscribe to the host's lifecycle
  events after a good poll;
* :meth:`Monitor.poll_vms` — one bulk-stats call, then reconcile: the host is
  the truth for runtime state. A VM the store runs here that the host does not
  report is asked about once and set Down with the reason (``after_vm_destroy``
  fires once: a libvirt event may have done it already, and the store's
  compare-and-set lets only one of the two write); a VM found running where the
  store says Down (or on another host that no longer reports it) is adopted; a
  domain no VM corresponds to is listed as external. The monitor never starts,
  stops or moves a VM, and leaves a VM alone while an operation holds its lock;
* :meth:`Monitor.probe_storage` — the storage service's probe for every domain
  in use; VMs with a disk on an Inactive domain are marked.
"""

from __future__ import annotations

import logging
import operator
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from virtplane import model
from virtplane.errors import Conflict, NotFound, StateError, VirtplaneError
from virtplane.services.storage import ADMIN_DEACTIVATED
from virtplane_engine import hoststate
from virtplane_engine.codes import Code
from virtplane_engine.leases import Keeper
from virtplane_engine.locks import ObjectLocks
from virtplane_engine.settings import EngineSettings
from virtplane_engine.storewatch import VmCache, VmSnapshot

if TYPE_CHECKING:
    from virtplane.manager import Manager
    from virtplane.state import StateStore

log = logging.getLogger("virtplane.engine.monitor")

#: how a VM's status_reason starts when the monitor marks it for an Inactive domain
STORAGE_MARK = "storage domain "
#: hosts in these statuses are asked for their VMs (oVirt polls VMs on Up,
#: NonOperational and PreparingForMaintenance hosts)
VM_POLLED = frozenset({model.HostStatus.UP, model.HostStatus.NON_OPERATIONAL,
                       model.HostStatus.PREPARING_FOR_MAINTENANCE})
#: a bulk-stats report's (name, status), what reconciliation looks at
_NAME_STATUS = operator.itemgetter("name", "status")
#: libvirt's VIR_DOMAIN_PAUSED_IOERROR, as bulk stats report it in ``state.reason``
_PAUSED_IOERROR = 5

Emit = Callable[[str, Code, str, str | None], None]


def vm_key(name: str) -> str:
    """The lock key of a VM (commands and the monitor agree on it)."""
    return f"vm:{name}"


class Monitor:
    """Host, VM and storage monitoring over the engine's shared Manager."""

    def __init__(self, m: Manager, settings: EngineSettings, locks: ObjectLocks,
                 vms: VmCache, emit: Emit, clock: Callable[[], float] = time.monotonic,
                 keeper: Keeper | None = None) -> None:
        self.m = m
        #: the host leases: every write for a host goes through ``keeper.fenced(host)``
        self.keeper = keeper or Keeper(lambda: m.context.store, "local", 10.0, shared=False)
        self.settings = settings
        self.locks = locks
        self.vms = vms
        self.emit = emit
        self.clock = clock
        self.health: dict[str, hoststate.HostHealth] = {}
        #: host id -> names of the domains it reported at its last VM poll
        self.reported: dict[str, set[str]] = {}
        #: host id -> external domain name -> status
        self.external: dict[str, dict[str, str]] = {}
        #: host id -> (VM snapshot, cluster id, reports' (name, status)) of its last
        #: reconciliation that found nothing to do (see :meth:`reconcile`)
        self._quiet: dict[str, tuple[VmSnapshot, str, list[tuple[Any, Any]]]] = {}
        self._watched: set[str] = set()
        #: each host as its last poll read it (VM polls use it instead of reading again)
        self._hosts: dict[str, model.Host] = {}
        self._lock = threading.Lock()
        #: hooks of the engine's scheduling and HA (each call's failure is logged):
        #: after each VM poll (the host, its bulk stats), after each recorded host
        #: transition, after each failed poll of a NonResponsive host (the host, the time)
        self.on_stats: Callable[[model.Host, list[dict[str, Any]]], None] | None = None
        self.on_transition: Callable[[model.Host, hoststate.Transition], None] | None = None
        self.on_failed_poll: Callable[[model.Host, float], None] | None = None
        m.context.connections.on_drop(self._forget)

    @property
    def store(self) -> StateStore:
        return self.m.context.store

    def _forget(self, host_id: str) -> None:
        with self._lock:
            self._watched.discard(host_id)

    def let_go(self, host_id: str) -> None:
        """This engine no longer holds ``host_id``: forget what it knew (another engine's
        view is the truth now) and close the connection (no more lifecycle events)."""
        self.health.pop(host_id, None)
        self._hosts.pop(host_id, None)
        self.reported.pop(host_id, None)
        self.external.pop(host_id, None)
        self._quiet.pop(host_id, None)
        self.m.context.connections.drop(host_id)

    # --------------------------------------------------------------- hosts

    def vm_count(self, host_id: str) -> int:
        return sum(1 for v in self.vms.snapshot().by_host.get(host_id, ())
                   if v.status != model.VmStatus.DOWN)

    def _health(self, host: model.Host) -> hoststate.HostHealth:
        health = self.health.get(host.id)
        if health is None:
            health = self.health[host.id] = hoststate.HostHealth(status=host.status,
                                                                 reason=host.status_reason)
        elif (host.status, host.status_reason) != (health.status, health.reason):
            # the administrator (or a command) changed it: that is the new truth
            health.status, health.reason = host.status, host.status_reason
            if host.status in (model.HostStatus.UP, model.HostStatus.NON_OPERATIONAL):
                health.settled, health.settled_reason = host.status, host.status_reason
        return health

    def poll_host(self, host_id: str) -> model.HostStatus | None:
        """One host poll; returns the host's status after it (None: host removed)."""
        try:
            host = self.store.get(model.Host, host_id)
        except NotFound:
            self.health.pop(host_id, None)
            self._hosts.pop(host_id, None)
            return None
        self._hosts[host_id] = host
        health = self._health(host)
        if host.status in hoststate.UNTOUCHED:
            return host.status
        try:
            self.m.context.connections.get(host).ping()
        except VirtplaneError as exc:
            self.m.context.connections.drop(host.id)
            return self.poll_failed(host_id, str(exc))
        transition = hoststate.poll_ok(health, self.clock(), host.name)
        self._record(host, transition)
        self._watch(host)
        return health.status

    def poll_failed(self, host_id: str, error: str) -> model.HostStatus | None:
        """A poll failed (or did not answer in time): count it against the grace."""
        try:
            host = self.store.get(model.Host, host_id)
        except NotFound:
            return None
        health = self._health(host)
        now = self.clock()
        transition = hoststate.poll_failed(health, now, self.settings,
                                           self.vm_count(host.id), host.name, error)
        self._record(host, transition)
        if health.status == model.HostStatus.NON_RESPONSIVE and self.on_failed_poll:
            self._hook(self.on_failed_poll, host, now)
        return health.status

    @staticmethod
    def _hook(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a hook's bug must not stop monitoring
            log.exception("monitoring hook %s failed", getattr(fn, "__qualname__", fn))

    def _record(self, host: model.Host, t: hoststate.Transition | None) -> None:
        if t is None:
            return

        def change(h: model.Host) -> None:
            h.status, h.status_reason = t.status, t.reason

        try:
            # the status and its event in one transaction: both land or neither
            with self.keeper.fenced(host.id):
                written = self.store.modify(model.Host, host.id, change)
                self.emit(host.id, t.code, t.message, None)
        except (Conflict, NotFound, StateError) as exc:
            # StateError: LeaseLost (another engine holds the host now), the store is
            # unreachable or the event could not be stored; nothing landed
            log.warning("host %s: status %s not recorded: %s", host.name, t.status.value, exc)
            if isinstance(exc, StateError):
                self._unsettle(host.id)
            return
        self._hosts[host.id] = written
        if self.on_transition is not None:
            self._hook(self.on_transition, self._hosts[host.id], t)

    def _unsettle(self, host_id: str) -> None:
        """A transition was not stored: forget the in-memory health, so the next poll
        compares with the store again (and records the transition then)."""
        self.health.pop(host_id, None)

    def _watch(self, host: model.Host) -> None:
        with self._lock:
            if host.id in self._watched:
                return
            self._watched.add(host.id)
        try:
            self.m.monitor.watch_events(host.name)
        except VirtplaneError as exc:
            with self._lock:
                self._watched.discard(host.id)
            log.warning("host %s: lifecycle events not watched: %s", host.name, exc,
                        extra={"host": host.name})

    # ----------------------------------------------------------------- VMs

    def poll_vms(self, host_id: str) -> int:
        """Bulk stats of one host and reconciliation; returns how many VMs changed."""
        host = self._hosts.get(host_id)
        if host is None:  # not polled yet (a benchmark's cycle): read it once
            try:
                host = self._hosts[host_id] = self.store.get(model.Host, host_id)
            except NotFound:
                return 0
        if host.status not in VM_POLLED:
            return 0
        conn = self.m.context.connections.get(host)
        try:
            reports = conn.all_vm_stats()
        except VirtplaneError as exc:
            log.warning("host %s: bulk stats failed: %s", host.name, exc,
                        extra={"host": host.name})
            return 0
        if self.on_stats is not None:
            self._hook(self.on_stats, host, reports)
        return self.reconcile(host, reports)

    def reconcile(self, host: model.Host, reports: list[dict[str, Any]]) -> int:
        """Make the store agree with ``reports`` (the host's running domains).

        What is compared is only the store's VMs (one snapshot), the host's id and
        cluster, and each report's name and status. When all of them are as at this
        host's previous reconciliation and that one found nothing to do (no VM gone,
        changed, adopted or waited for), there is nothing to do again: the steady
        state costs one pass over the reports' names and statuses, not two over the
        VMs.
        """
        snap = self.vms.snapshot()
        seen = list(map(_NAME_STATUS, reports))
        quiet = self._quiet.get(host.id)
        if quiet is not None and quiet[0] is snap and quiet[1] == host.cluster_id \
                and quiet[2] == seen:
            return 0
        self._quiet.pop(host.id, None)
        # a domain being torn down may still be listed, shut off: that is gone too
        reported = {r["name"]: r for r in reports if r["status"] != "Down"}
        self.reported[host.id] = set(reported)
        by_name = snap.by_name
        changed = 0
        pending = 0  # VMs that needed a look: a change, or a wait for one
        down = model.VmStatus.DOWN
        for vm in snap.by_host.get(host.id, ()):
            if vm.status is down:
                continue
            report = reported.get(vm.spec.name)
            if report is None:
                pending += 1
                changed += self._gone(host, vm)
            elif report["status"] != vm.status:  # a StrEnum compares with its value
                pending += 1
                changed += self._status(host, vm, report)
        external: dict[str, str] = {}
        for name, report in reported.items():
            known = by_name.get(name)
            if known is None or known.cluster_id != host.cluster_id:
                external[name] = str(report.get("status", "?"))
            elif known.host_id != host.id or known.status is down:
                pending += 1
                changed += self._adopt(host, known, report)
        self._external(host, external)
        if not pending:
            self._quiet[host.id] = (snap, host.cluster_id, seen)
        return changed

    def _gone(self, host: model.Host, vm: model.Vm) -> int:
        """The store runs ``vm`` here; the host does not report it: ask once, then Down."""
        with self.locks.attempt(vm_key(vm.name)) as got:
            if not got:
                return 0
            status, reason = self.m.context.connections.get(host).state(vm.name)
            if status != "Down":
                return 0  # it came back between the two calls; the next poll sees it
            try:
                with self.keeper.fenced(host.id):
                    fresh = self.store.get(model.Vm, vm.id)
                    if fresh.status == model.VmStatus.DOWN or fresh.host_id != host.id:
                        return 0
                    self.m.vms.mark_down(fresh, f"crashed: {reason}" if reason else "crashed")
            except (Conflict, NotFound):
                return 0  # an event (or a command) got there first
            except StateError as exc:  # LeaseLost, or the store went away: nothing landed
                log.warning("VM %s: Down not recorded: %s", vm.name, exc)
                return 0
        return 1

    def _status(self, host: model.Host, vm: model.Vm, report: dict[str, Any]) -> int:
        """The host reports another runtime status (Paused, Up after a dead engine's
        transitional status ...): the store follows."""
        try:
            status = model.VmStatus(str(report["status"]))
        except ValueError:
            return 0
        with self.locks.attempt(vm_key(vm.name)) as got:
            if not got:
                return 0
            eio = status == model.VmStatus.PAUSED and report.get("reason") == _PAUSED_IOERROR

            def change(v: model.Vm) -> None:
                v.status = status
                if eio:
                    v.status_reason = "paused on an I/O error (EIO)"

            try:
                with self.keeper.fenced(host.id):  # the status and its event together
                    self.store.modify(model.Vm, vm.id, change)
                    if eio:
                        self.emit(vm.id, Code.VM_PAUSED_EIO,
                                  f"VM {vm.name} is paused on an I/O error", None)
                    else:
                        self.emit(vm.id, Code.VM_STATUS_FROM_HOST, f"VM {vm.name} is "
                                  f"{status.value} on its host (was {vm.status.value})", None)
            except (Conflict, NotFound):
                return 0
            except StateError as exc:
                log.warning("VM %s: status %s not recorded: %s", vm.name, status.value, exc)
                return 0
        return 1

    def _adopt(self, host: model.Host, vm: model.Vm, report: dict[str, Any]) -> int:
        """``vm`` runs on ``host`` but the store has it Down or elsewhere."""
        elsewhere = vm.host_id is not None and vm.status != model.VmStatus.DOWN
        if elsewhere:
            previous = self.reported.get(str(vm.host_id))
            if previous is None or vm.name in previous:
                # its recorded host was not polled yet, or reports it too (a migration
                # in flight): wait until one host alone has it
                return 0
        try:
            status = model.VmStatus(str(report.get("status") or "Up"))
        except ValueError:
            status = model.VmStatus.UP
        with self.locks.attempt(vm_key(vm.name)) as got:
            if not got:
                return 0
            was = "Down" if not elsewhere else f"on another host ({vm.status.value})"

            def change(v: model.Vm) -> None:
                v.status, v.host_id = status, host.id
                v.status_reason = f"adopted: found running on {host.name}"

            try:
                with self.keeper.fenced(host.id):  # the adoption and its event together
                    self.store.modify(model.Vm, vm.id, change)
                    self.emit(vm.id, Code.VM_ADOPTED, f"VM {vm.name} runs on {host.name} "
                              f"while the store had it {was}: the store now follows the "
                              "host", None)
            except (Conflict, NotFound):
                return 0
            except StateError as exc:
                log.warning("VM %s: adoption not recorded: %s", vm.name, exc)
                return 0
        return 1

    def _external(self, host: model.Host, found: dict[str, str]) -> None:
        before = self.external.get(host.id, {})
        for name in sorted(set(found) - set(before)):
            self.emit(host.id, Code.VM_EXTERNAL, f"host {host.name} runs domain {name!r}, "
                      "which no virtplane VM corresponds to (external; left alone)", None)
        self.external[host.id] = found

    # -------------------------------------------------------------- storage

    def probe_storage(self) -> int:
        """Probe every storage domain in use; returns how many changed status."""
        changed = 0
        for dom in self.m.storage.list():
            if dom.status == model.DomainStatus.UNATTACHED:
                continue
            if dom.status == model.DomainStatus.INACTIVE and \
                    dom.status_reason == ADMIN_DEACTIVATED:
                continue
            try:
                after = self.m.storage.refresh(dom.id)
            except (Conflict, VirtplaneError) as exc:
                log.warning("storage domain %s: probe failed: %s", dom.name, exc,
                            extra={"domain": dom.name})
                continue
            if after.status != dom.status:
                changed += 1
                if after.status == model.DomainStatus.INACTIVE:
                    self.emit(dom.id, Code.STORAGE_INACTIVE, f"storage domain {dom.name} is "
                              f"Inactive: {after.status_reason}", None)
                else:
                    self.emit(dom.id, Code.STORAGE_ACTIVE, f"storage domain {dom.name} is "
                              f"{after.status.value} again", None)
            self._mark_vms(after)
        return changed

    def _mark_vms(self, dom: model.StorageDomain) -> None:
        """Mark running VMs with a disk on an Inactive ``dom``; unmark when it is back.

        VDSM does not stop such VMs: QEMU pauses a VM on its first I/O error
        (``werror=stop``) and VDSM reports it Paused with pause code EIO; the mark
        says why before that happens, and the VM poll records the pause.
        """
        inactive = dom.status == model.DomainStatus.INACTIVE
        mark = (f"{STORAGE_MARK}{dom.name} is Inactive ({dom.status_reason}); the VM "
                "pauses on its next I/O error")
        for vm in self.vms.vms():
            if vm.status == model.VmStatus.DOWN or \
                    not any(d.domain_id == dom.id for d in vm.spec.disks):
                continue
            marked = vm.status_reason.startswith(f"{STORAGE_MARK}{dom.name} ")
            if inactive == marked:
                continue
            with self.locks.attempt(vm_key(vm.name)) as got:
                if not got:
                    continue

                def change(v: model.Vm) -> None:
                    v.status_reason = mark if inactive else ""

                try:
                    with self.store.transaction():  # the mark and its event together
                        self.store.modify(model.Vm, vm.id, change)
                        if inactive:
                            self.emit(vm.id, Code.VM_STORAGE_INACTIVE, f"VM {vm.name}: {mark}",
                                      None)
                        else:
                            self.emit(vm.id, Code.VM_STORAGE_BACK, f"VM {vm.name}: storage "
                                      f"domain {dom.name} is Active again", None)
                except (Conflict, NotFound):
                    continue
                except StateError as exc:
                    log.warning("VM %s: storage mark not recorded: %s", vm.name, exc)
                    continue

    # --------------------------------------------------------------- status

    def describe(self) -> dict[str, Any]:
        """Hosts as the monitor sees them, and external domains (for ``engine status``)."""
        hosts = []
        for host in self.m.hosts.list():
            health = self.health.get(host.id)
            hosts.append({"name": host.name, "status": host.status.value,
                          "reason": host.status_reason,
                          "missed_polls": health.missed if health else 0,
                          "external": sorted(self.external.get(host.id, {}))})
        return {"hosts": hosts}


def down_code(reason: str) -> Code:
    """VM_DOWN_ERROR for a VM that died on its own (the core's and the monitor's
    reasons start with "crashed"), VM_DOWN_FENCED for one that died with its fenced
    host ("fenced"), VM_DOWN for a stop someone asked for."""
    if reason.startswith("fenced"):
        return Code.VM_DOWN_FENCED
    return Code.VM_DOWN_ERROR if reason.startswith("crashed") else Code.VM_DOWN
