"""HA restarts: which Down VMs are started again, by whom, in what order, and how never twice.

A highly available VM is restartable when it is Down for a failure: its reason starts
``fenced`` (its host's power was switched off) or ``crashed`` (its QEMU died on a host
that still answers). A user's or the guest's own stop, or a hibernation, is not.
:func:`restartable` is that rule, the only one.

**Who restarts.** The store is the queue: the leader (the one engine holding the
leader lease; the only engine of an SQLite store) picks every restartable VM up from
it at each HA round (:meth:`Restarts.recover`), whichever engine's monitor saw it go
down. An engine that is not the leader starts none: its monitor only records the Down.
A VM that went down on a host the leader monitors itself is queued at once as well.

**Never twice.** Each attempt holds the VM's lock and starts it only while it is still
restartable. A restart in progress is written to the store before the VM is started:
its reason gains :data:`UNDER_WAY` (taken off again if the start fails, so the VM stays
restartable; the refusal is an event). An engine that finds a VM Down with that mark and
did not put it there itself (the engine that did stopped in the middle, and a QEMU may
run) asks every host of the cluster first: found running, it is left to monitoring,
which adopts it; a host that cannot be asked keeps it waiting, retried as a failed
restart. On a store several engines share, the mark and the start are each written
under the leader lease (:class:`LeaderFence`, the store's fenced transaction): the
start's transaction holds the lease row against a takeover until the VM is recorded
Up, so a leader paused past its lease has its late restart refused
(:class:`~virtplane.errors.LeaseLost`); it then steps back (forgets its queue; the new
leader takes the VMs from the store).

**Order and retries** (oVirt's AutoStartVmsRunner and HaAutoStartVmsRunner): highest
``ha_priority`` first; a VM waits while a VM of higher priority is still to be
restarted (queued, or its start failed and will be retried) or restarted but not Up yet
(:data:`COMING_UP`), at most ``ha_priority_wait`` (600 s) in all; the first wait is an
event (100028). A failed start is retried every ``ha_retry_interval`` (30 s)
``ha_retries_short`` (10) times, then every ``ha_retry_long_interval`` (30 min).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import attrs

from virtplane import model
from virtplane.errors import Conflict, LeaseLost, NotFound, StateError, VirtplaneError
from virtplane.state import LEADER
from virtplane_engine.codes import Code
from virtplane_engine.monitoring import Emit, vm_key

if TYPE_CHECKING:
    from virtplane.manager import Manager
    from virtplane.state import StateStore
    from virtplane_engine.leases import Keeper
    from virtplane_engine.locks import ObjectLocks
    from virtplane_engine.placement import AutomationSettings

log = logging.getLogger("virtplane.engine.ha")

#: reasons a Down VM is restarted for (anything else: a user or its guest stopped it)
RESTARTABLE = ("fenced", "crashed")
#: appended to the Down VM's reason while an HA restart of it is under way
UNDER_WAY = " (HA restart under way)"
#: a restarted VM in one of these is still coming up: lower priorities wait for it
#: (oVirt's HaVmToRestart.shouldWaitForVmUp)
COMING_UP = (model.VmStatus.WAIT_FOR_LAUNCH, model.VmStatus.POWERING_UP,
             model.VmStatus.PAUSED, model.VmStatus.REBOOT_IN_PROGRESS,
             model.VmStatus.MIGRATION_SOURCE, model.VmStatus.MIGRATION_DESTINATION)


def restartable(vm: model.Vm) -> bool:
    """Whether ``vm`` is to be restarted: highly available, Down for a failure (fenced
    or crashed, with or without :data:`UNDER_WAY`), not hibernated."""
    return (vm.spec.highly_available and vm.status == model.VmStatus.DOWN
            and vm.status_reason.startswith(RESTARTABLE) and not vm.saved_state)


class LeaderFence:
    """The leader lease around HA restart writes.

    Calling it gives a transaction whose writes land only while this engine holds the
    leader lease (:meth:`StateStore.fenced`); refused, it raises
    :class:`~virtplane.errors.LeaseLost` and this engine no longer :meth:`leads` under
    that lease (until the keeper takes the lease again, with a new epoch). Without a
    keeper, or with a sole one (SQLite: one engine), it leads always and the block is
    not a transaction (a start must not hold the file's write lock).
    """

    def __init__(self, store: Callable[[], StateStore], keeper: Keeper | None = None) -> None:
        self._store = store
        self.keeper = keeper
        #: the epoch of a leader lease the store refused (this engine stepped back)
        self.lost_epoch: int | None = None

    @property
    def shared(self) -> bool:
        return self.keeper is not None and self.keeper.shared

    def leads(self) -> bool:
        """Whether this engine may restart VMs now (check right before acting)."""
        if self.keeper is None or not self.keeper.shared:
            return True
        lease = self.keeper.leader
        return self.keeper.is_leader and lease is not None and lease.epoch != self.lost_epoch

    @contextlib.contextmanager
    def __call__(self) -> Iterator[StateStore]:
        store = self._store()
        if self.keeper is None or not self.keeper.shared:
            yield store
            return
        lease = self.keeper.leader
        if lease is None or lease.epoch == self.lost_epoch:
            raise LeaseLost(LEADER, 0 if lease is None else lease.epoch,
                            f"engine {self.keeper.holder} does not lead")
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(store.fenced(lease))
            except LeaseLost:
                self.lost_epoch = lease.epoch
                raise
            yield store


@attrs.define
class Restart:
    """A highly available VM waiting to be started again."""

    vm_id: str
    name: str
    priority: int
    reason: str
    attempts: int = 0
    due: float = 0.0
    #: seconds spent waiting for higher priorities so far, and since when it waits now
    blocked_s: float = 0.0
    blocked_since: float | None = None
    #: its last restart may have started it: ask every host before starting it
    verify: bool = False

    def blocked(self, by: int | None, now: float, cap: float) -> bool:
        """Whether it waits now for a VM of priority ``by`` (None: nothing higher is
        pending); the time it waited is summed, and past ``cap`` it waits no more
        (oVirt's isBlockedOnPriority)."""
        if self.blocked_since is not None:
            self.blocked_s += now - self.blocked_since
            self.blocked_since = None
        if by is None or by <= self.priority or self.blocked_s >= cap:
            return False
        self.blocked_since = now
        return True


class SteppedBack(Exception):  # noqa: N818 - not an error: the round ends here
    """The leader lease was refused in the middle of a round."""


class Restarts:
    """The HA restart queue of one engine (a part of :class:`~virtplane_engine.ha.Ha`)."""

    m: Manager
    settings: AutomationSettings
    locks: ObjectLocks
    emit: Emit
    clock: Callable[[], float]
    _lock: threading.RLock

    def _init_restarts(self, fence: LeaderFence | None,
                       vms: Callable[[], Iterable[model.Vm]] | None) -> None:
        self.fence = fence or LeaderFence(lambda: self.m.context.store)
        #: every VM as stored now (the engine gives its monitor's cache: cheap to re-read)
        self.vms = vms or (lambda: self.m.context.store.list(model.Vm))
        self.queue: dict[str, Restart] = {}
        #: VM id -> priority of the VMs restarted here that are not Up yet
        self.coming_up: dict[str, int] = {}
        #: VM id -> the stored revision found running elsewhere (not picked up again
        #: until that row changes: monitoring adopts it)
        self._settled: dict[str, int] = {}

    # ------------------------------------------------------------ the queue

    def on_down(self, vm: model.Vm, reason: str) -> None:
        """A VM went Down here: a highly available one that crashed is queued at once
        when this engine leads (otherwise the leader picks it up from the store)."""
        if vm.spec.highly_available and reason.startswith("crashed"):
            if self.fence.leads():
                self.enqueue(vm, reason)
            else:
                log.info("highly available VM %s crashed; the leader restarts it", vm.name)

    def enqueue(self, vm: model.Vm, reason: str, verify: bool = False) -> None:
        with self._lock:
            if vm.id in self.queue:
                return
            self.queue[vm.id] = Restart(vm.id, vm.name, vm.spec.ha_priority, reason,
                                        due=self.clock(), verify=verify)
        if verify:
            self.emit(vm.id, Code.HA_VM_FAILED, f"highly available VM {vm.name}: its "
                      f"restart was interrupted ({reason}); it is started again only once "
                      "no host of its cluster runs it", None)
            return
        self.emit(vm.id, Code.HA_VM_FAILED, f"highly available VM {vm.name} failed "
                  f"({reason}); it will be restarted on another host", None)

    def recover(self) -> int:
        """Queue the restartable VMs of the store this engine has not queued yet (at
        engine start, and at every round of the leader: whichever engine saw them go
        down); returns how many. Nothing when this engine does not lead."""
        if not self.fence.leads():
            return 0
        n = 0
        for vm in self.vms():
            settled = self._settled.get(vm.id)
            if settled is not None and settled != vm.revision:
                del self._settled[vm.id]  # its row moved on (adopted, started, down again)
            if not restartable(vm) or vm.id in self.queue or settled == vm.revision:
                continue
            interrupted = vm.status_reason.endswith(UNDER_WAY)
            self.enqueue(vm, vm.status_reason.removesuffix(UNDER_WAY), interrupted)
            n += 1
        return n

    def restart_due(self) -> None:
        """Start the queued VMs that are due, highest priority first; one waits while a
        higher-priority VM is queued or coming up (see the module docstring)."""
        now = self.clock()
        self._refresh_coming_up()
        with self._lock:
            ordered = sorted(self.queue.values(), key=lambda r: (-r.priority, r.name))
        for r in ordered:
            if r.due > now:
                continue
            with self._lock:
                higher = [q.priority for q in self.queue.values()
                          if q.vm_id != r.vm_id and q.priority > r.priority]
                higher += [p for v, p in self.coming_up.items()
                           if v != r.vm_id and p > r.priority]
                first_wait = r.blocked_s == 0.0 and r.blocked_since is None
                waits = r.blocked(max(higher, default=None), now,
                                  self.settings.ha_priority_wait)
            if waits:
                if first_wait:
                    self.emit(r.vm_id, Code.HA_VM_WAITS, f"highly available VM {r.name} "
                              f"(priority {r.priority}) waits for VMs of higher priority "
                              f"({max(higher)}) to be Up, at most "
                              f"{self.settings.ha_priority_wait:g} s", None)
                continue
            if not self.fence.leads():
                return  # no longer the leader: the next one takes them from the store
            try:
                self._restart(r)
            except SteppedBack as exc:
                self._step_back(str(exc))
                return

    def _refresh_coming_up(self) -> None:
        """Forget restarted VMs that are Up (or Down, removed, no longer HA) now."""
        with self._lock:
            ids = list(self.coming_up)
        for vm_id in ids:
            try:
                vm = self.m.context.store.get(model.Vm, vm_id)
            except NotFound:
                vm = None
            if vm is None or vm.status not in COMING_UP or not vm.spec.highly_available:
                with self._lock:
                    self.coming_up.pop(vm_id, None)

    def _step_back(self, why: str) -> None:
        """The leader lease was refused: forget every queued restart (the store keeps
        them; the new leader picks them up)."""
        with self._lock:
            names = sorted(r.name for r in self.queue.values())
            self.queue.clear()
            self.coming_up.clear()
        log.warning("no longer the leader (%s): HA restarts of %s left to the new leader",
                    why, ", ".join(names) or "no VM")

    # ------------------------------------------------------------ one restart

    def _restart(self, r: Restart) -> None:
        store = self.m.context.store
        with self.locks.hold([vm_key(r.name)]):
            try:
                vm = store.get(model.Vm, r.vm_id)
            except NotFound:
                self._drop(r, "removed")
                return
            if not restartable(vm):
                # started by someone, no longer HA, or stopped on purpose since
                self._drop(r, f"it is {vm.status.value} ({vm.status_reason or 'no reason'})")
                return
            if r.verify or vm.status_reason.endswith(UNDER_WAY):
                # a start may have run (another leader's, or one whose write failed)
                where, unsure = self._runs_on(vm)
                if where is not None:
                    self._drop(r, f"it runs on {where}")
                    self._settled[vm.id] = vm.revision
                    self.emit(vm.id, Code.VM_ADOPTED, f"highly available VM {vm.name} "
                              f"runs on {where} (its interrupted restart started it): not "
                              "started again; monitoring adopts it", None)
                    return
                if unsure:
                    self._retry(r, vm, f"cannot tell whether it already runs: {unsure}")
                    return
                r.verify = False
            r.attempts += 1
            try:
                with self.fence():  # what a later engine reads
                    self._mark(vm, r.reason + UNDER_WAY)
                with self.fence():  # the start's transaction holds the leader lease
                    started = self.m.vms.start(vm.name)
            except LeaseLost as exc:
                raise SteppedBack(f"restart of VM {vm.name} refused: {exc}") from None
            except StateError as exc:
                # the store failed around the start: it may have run; ask the hosts first
                r.verify = True
                self._retry(r, vm, str(exc))
                return
            except VirtplaneError as exc:
                try:
                    with self.fence():
                        self._mark(vm, r.reason, after_failure=True)  # still restartable
                except LeaseLost as lost:
                    raise SteppedBack(f"after the failed restart of VM {vm.name}: "
                                      f"{lost}") from None
                self._retry(r, vm, str(exc))
                return
        host = store.get(model.Host, started.host_id) if started.host_id else None
        self._drop(r, "")
        if started.status in COMING_UP:
            with self._lock:
                self.coming_up[r.vm_id] = r.priority
        self.emit(vm.id, Code.HA_VM_RESTART, f"highly available VM {vm.name} restarted on "
                  f"{host.name if host else '?'} (attempt {r.attempts}; it went down: "
                  f"{r.reason})", None)

    def _retry(self, r: Restart, vm: model.Vm, why: str) -> None:
        short = r.attempts <= self.settings.ha_retries_short
        wait = self.settings.ha_retry_interval if short else self.settings.ha_retry_long_interval
        r.due = self.clock() + wait
        self.emit(vm.id, Code.HA_VM_RESTART_FAILED, f"restart {max(r.attempts, 1)} of highly "
                  f"available VM {vm.name} failed: {why}; next try in {wait:g} s", None)

    def _mark(self, vm: model.Vm, reason: str, after_failure: bool = False) -> None:
        """Store the Down VM's reason (with or without :data:`UNDER_WAY`); after a failed
        start, whatever error the start stored is replaced (the VM is Down for the
        failure it is restarted for, not for the refusal; the refusal is an event)."""
        def change(v: model.Vm) -> None:
            if v.status == model.VmStatus.DOWN and (
                    after_failure or v.status_reason.startswith(RESTARTABLE)):
                v.status_reason = reason

        try:
            self.m.context.store.modify(model.Vm, vm.id, change)
        except (Conflict, NotFound) as exc:
            log.warning("VM %s: restart progress not recorded: %s", vm.name, exc)

    def _runs_on(self, vm: model.Vm) -> tuple[str | None, str]:
        """Where the VM runs in its cluster (a host name), else None with why that is
        not certain ("" when every host said no)."""
        unsure = []
        for host in self.m.context.store.list(model.Host):
            if host.cluster_id != vm.cluster_id:
                continue
            if host.status == model.HostStatus.MAINTENANCE:
                continue  # runs no VM (and a powered-off one answers nothing)
            if host.status in (model.HostStatus.NON_RESPONSIVE, model.HostStatus.CONNECTING):
                unsure.append(f"host {host.name} is {host.status.value}")
                continue
            try:
                state, _why = self.m.context.connections.get(host).state(vm.name)
            except VirtplaneError as exc:
                unsure.append(f"host {host.name}: {exc}")
                continue
            if state != "Down":
                return host.name, ""
        return None, "; ".join(unsure)

    def _drop(self, r: Restart, why: str) -> None:
        with self._lock:
            self.queue.pop(r.vm_id, None)
        if why:
            log.info("HA VM %s is not restarted: %s", r.name, why)
