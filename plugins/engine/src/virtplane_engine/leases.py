"""Several engines on one store: which hosts this engine acts on, and whether it leads.

On a server store (PostgreSQL) any number of engines run at once. They share the
hosts out through the store's leases (:mod:`virtplane.state._leases`: a row per
resource with a holder, an epoch and an expiry on the database's clock):

* every engine keeps a presence lease ``engine:<id>``, so the others know how many
  engines are alive;
* each takes free or expired host leases up to its fair share
  (``ceil(hosts / live engines)``) and, when it holds more than that (another
  engine joined), hands one back per round, so hosts spread out without churn;
* it renews what it holds every third of ``lease_ttl``; a renewal refused with
  :class:`~virtplane.errors.LeaseLost` (it was paused past its lease and another
  engine took over) makes it step back from that host at once;
* one engine holds :data:`~virtplane.state.LEADER`: :attr:`Keeper.is_leader` is what
  balancing, HA and fencing loops check before they decide anything; the leader's
  rounds also fail the unfinished jobs of engines whose presence lease ran out
  (:func:`virtplane_engine.jobs.fail_orphans`);
* every write the monitor makes for a host goes through :meth:`Keeper.fenced`,
  the store's fenced transaction with that host's lease: a write prepared before a
  pause cannot land after a takeover (the epoch is a fencing token);
* when the store is unreachable the round fails, :attr:`Keeper.reachable` turns
  False and the engine stops acting (no writes, and the local deadlines of its
  leases run out, so no fencing either); it keeps polling and logging, and the next
  round that reaches the store takes its leases again (new epochs if they expired).

On the embedded SQLite store one engine holds the file's lock (``flock``), so the
keeper is *sole*: it acts on every host, leads, and its writes are plain
transactions; renewing rows no one else reads would only cost writes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from virtplane.errors import LeaseHeld, LeaseLost, StateError, StateUnavailable
from virtplane.state import LEADER, Lease

if TYPE_CHECKING:
    from virtplane import model
    from virtplane.manager import Manager
    from virtplane.state import StateStore

log = logging.getLogger("virtplane.engine.leases")

#: prefix of the presence lease each live engine keeps
PRESENCE = "engine:"


class Keeper:
    """The leases of one engine.

    :param store: the engine's store (a callable: the store is opened lazily).
    :param holder: this engine's name in lease rows.
    :param ttl: seconds each lease lasts.
    :param shared: False on a store only one engine can open (SQLite): no rows.
    :param on_lost: called with a host id this engine stopped holding (from the
        thread that found out), so the engine can let go of the host.
    """

    def __init__(self, store: Callable[[], StateStore], holder: str, ttl: float, *,
                 shared: bool, on_lost: Callable[[str], None] | None = None) -> None:
        self._store = store
        self.holder = holder
        self.ttl = ttl
        self.shared = shared
        self.on_lost = on_lost
        #: host id -> the lease this engine holds on it
        self.held: dict[str, Lease] = {}
        self.leader: Lease | None = None
        self.presence: Lease | None = None
        #: whether the last round reached the store
        self.reachable = True
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- queries

    @property
    def interval(self) -> float:
        """Seconds between rounds: a third of the time to live, so two rounds may fail
        (a slow statement, a brief outage) before a lease expires."""
        return self.ttl / 3

    @property
    def is_leader(self) -> bool:
        """Whether this engine may take the singleton decisions (balancing, HA, fencing)
        now: it holds the leader lease, its local deadline has not passed, and the last
        round reached the store. Check it right before acting, every time."""
        if not self.shared:
            return True
        lead = self.leader
        return lead is not None and self.reachable and lead.remaining() > 0

    def acts_on(self, host_id: str) -> bool:
        """Whether this engine monitors ``host_id`` (it holds a lease on it, as far as it
        knows; whether that lease is still current is the store's to say, in
        :meth:`fenced`)."""
        return not self.shared or host_id in self.held

    def may_act(self, host_id: str) -> bool:
        """Whether this engine may act on ``host_id`` outside the store (fence it,
        restart its VMs elsewhere): the lease's local deadline has not passed and the
        store answers."""
        if not self.shared:
            return True
        lease = self.held.get(host_id)
        return lease is not None and self.reachable and lease.remaining() > 0

    def describe(self) -> dict[str, object]:
        """For ``engine status``."""
        return {"id": self.holder, "shared": self.shared, "leader": self.is_leader,
                "reachable": self.reachable,
                "hosts": {h: {"epoch": lease.epoch, "remaining_s": round(lease.remaining(), 1)}
                          for h, lease in sorted(self.held.items())}}

    # ------------------------------------------------------------------ writes

    @contextlib.contextmanager
    def fenced(self, host_id: str) -> Iterator[StateStore]:
        """A transaction whose writes land only while this engine's lease on ``host_id``
        is current (on a sole store: a plain transaction).

        :raises LeaseLost: this engine does not hold it, or the store refused the epoch
            (then the engine steps back from the host).
        """
        store = self._store()
        if not self.shared:
            with store.transaction():
                yield store
            return
        lease = self.held.get(host_id)
        if lease is None:
            raise LeaseLost(host_id, 0, f"engine {self.holder} does not hold it")
        try:
            with store.fenced(lease):
                yield store
        except LeaseLost as exc:
            self._lost(host_id, lease, str(exc))
            raise

    # ------------------------------------------------------------------- round

    def round(self, host_ids: list[str] | Callable[[], list[str]]) -> None:
        """Renew, hand back and take leases (blocking; every :attr:`interval`).

        :param host_ids: the hosts to share out, or what reads them from the store (an
            outage found by that read counts like one found by the leases).

        :raises StateUnavailable: the store did not answer; :attr:`reachable` is False
            until a round succeeds.
        """
        if not self.shared:
            return
        store = self._store()
        try:
            hosts = host_ids() if callable(host_ids) else host_ids
            self._round(store, sorted(set(hosts)))
        except StateUnavailable:
            if self.reachable:
                log.warning("state store unreachable: this engine stops acting on its %d "
                            "host(s) until it is back", len(self.held))
            self.reachable = False
            raise
        if not self.reachable:
            log.warning("state store reachable again: this engine acts on %d host(s)",
                        len(self.held))
        self.reachable = True

    def _round(self, store: StateStore, hosts: list[str]) -> None:
        self.presence = store.acquire_lease(PRESENCE + self.holder, self.holder, self.ttl)
        for host_id, lease in sorted(self.held.items()):
            if host_id not in hosts:
                store.release_lease(lease)
                self._drop(host_id)
                continue
            try:
                self.held[host_id] = store.renew_lease(lease)
            except LeaseLost as exc:
                self._lost(host_id, lease, str(exc))
        rows = {lease.resource: lease for lease in store.list_leases()}
        engines = {r.holder for name, r in rows.items()
                   if name.startswith(PRESENCE) and r.holder and r.remaining() > 0}
        share = math.ceil(len(hosts) / max(1, len(engines | {self.holder})))
        if len(self.held) > share:
            give = sorted(self.held)[-1]
            log.info("handing host %s back (%d held, fair share %d of %d hosts for %d "
                     "engines)", give, len(self.held), share, len(hosts), len(engines),
                     extra={"host_id": give})
            store.release_lease(self.held[give])
            self._drop(give)
        for host_id in hosts:
            if len(self.held) >= share:
                break
            if host_id in self.held:
                continue
            row = rows.get(host_id)
            if row is not None and row.holder and row.remaining() > 0:
                continue
            try:
                lease = store.acquire_lease(host_id, self.holder, self.ttl)
            except LeaseHeld:
                continue
            with self._lock:
                self.held[host_id] = lease
            log.info("took host %s (epoch %d)", host_id, lease.epoch,
                     extra={"host_id": host_id, "epoch": lease.epoch})
        self._lead(store)
        if self.is_leader:
            self._recover_jobs(store, engines | {self.holder})

    def _recover_jobs(self, store: StateStore, live: set[str]) -> None:
        """Fail what dead engines left running (two lease times after their last
        write, so a starting engine's first jobs are not taken for a dead one's)."""
        from virtplane_engine.jobs import fail_orphans

        for job in fail_orphans(store, live, 2 * self.ttl):
            log.warning("job %s %s of a dead engine failed", job.kind, job.id,
                        extra={"job": job.id})

    def _lead(self, store: StateStore) -> None:
        if self.leader is not None:
            try:
                self.leader = store.renew_lease(self.leader)
                return
            except LeaseLost as exc:
                log.warning("no longer the leader: %s", exc)
                self.leader = None
        try:
            self.leader = store.acquire_lease(LEADER, self.holder, self.ttl)
        except LeaseHeld:
            return
        log.info("this engine is the leader (epoch %d)", self.leader.epoch,
                 extra={"epoch": self.leader.epoch})

    def _drop(self, host_id: str) -> None:
        with self._lock:
            self.held.pop(host_id, None)
        if self.on_lost is not None:
            self.on_lost(host_id)

    def _lost(self, host_id: str, lease: Lease, why: str) -> None:
        with self._lock:
            if self.held.get(host_id) is not lease:
                return  # already dropped (or retaken) by another thread
        log.warning("stepping back from host %s: %s", host_id, why,
                    extra={"host_id": host_id, "epoch": lease.epoch})
        self._drop(host_id)

    def release_all(self) -> None:
        """Give every lease back (a clean stop: the others take over at once)."""
        if not self.shared:
            return
        store = self._store()
        for lease in [*self.held.values(), self.leader, self.presence]:
            if lease is None:
                continue
            try:
                store.release_lease(lease)
            except (StateUnavailable, LeaseLost) as exc:
                log.info("lease %s not released: %s", lease.resource, exc)
        self.held.clear()
        self.leader = None
        self.presence = None


def fence_events(m: Manager, keeper: Keeper) -> None:
    """Route libvirt's lifecycle events (the driver's event thread) through the host's
    lease: an event from a host this engine no longer holds is ignored (its holder
    sees the same VM at its next poll), and the Down it records is a fenced write."""
    monitor = m.monitor
    on_stopped = monitor.on_stopped

    def fenced_on_stopped(host: model.Host, name: str, reason: str) -> None:
        if not keeper.acts_on(host.id):
            log.debug("event for VM %s on host %s ignored: another engine holds the host",
                      name, host.name)
            return
        try:
            with keeper.fenced(host.id):
                on_stopped(host, name, reason)
        except StateError as exc:  # LeaseLost or the store away: the next poll sees it
            log.warning("VM %s stopped on host %s (%s); not recorded now: %s", name,
                        host.name, reason, exc)

    monitor.on_stopped = fenced_on_stopped  # type: ignore[method-assign]
