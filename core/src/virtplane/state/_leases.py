"""Leases: which engine acts on which host, and which one leads, with fencing tokens.

Several engines share one store. Each resource (a host id, or :data:`LEADER` for
the singleton duties) has at most one row in ``leases``: its holder, an *epoch*
and an expiry time on the **store's** clock (PostgreSQL's ``statement_timestamp()``,
so engines on machines whose clocks drift still agree; on SQLite, the one machine's
clock). The epoch grows by one every time the holder changes, or the same holder
comes back after its lease expired; a holder renews well before the expiry.

Why rows and not PostgreSQL advisory locks: a session-level advisory lock belongs
to one server connection, and a connection pooler in transaction mode hands that
connection to other clients between transactions, so the lock would be held by
the wrong process or silently dropped; and a lock says nothing to a write that
races its loss. A row with an epoch is read inside the writer's own transaction
(:meth:`StateStore.fenced`), which is the only place the check means anything.

The local deadline :attr:`Lease.deadline` (monotonic, taken *before* the request
was sent, so it is never later than the store's expiry) lets a holder stop acting
on its own when it cannot renew in time, without asking the store.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from virtplane.errors import InvalidInput, LeaseHeld, LeaseLost
from virtplane.state._core import CHECK_HINT, UnreadableRow, valid_version

if TYPE_CHECKING:
    from virtplane.state._core import StoreCore

#: the resource whose holder runs the singleton duties (balancing, HA, fencing)
LEADER = "leader"


@dataclasses.dataclass(frozen=True)
class Lease:
    """A lease as granted: carry it to :meth:`StateStore.fenced` with every write."""

    resource: str
    holder: str
    #: the fencing token: higher than every previous holder's
    epoch: int
    #: expiry on the store's clock (seconds since the epoch)
    expires: float
    #: seconds it was granted for (what :meth:`StateStore.renew_lease` extends by default)
    ttl: float
    #: ``time.monotonic()`` before which this process may still act on it
    deadline: float = 0.0

    def remaining(self) -> float:
        """Seconds this process may still act before it must have renewed."""
        return self.deadline - time.monotonic()


def _check_args(resource: str, holder: str, ttl: float) -> None:
    if not resource or not holder:
        raise InvalidInput("a lease needs a resource and a holder name (both non-empty)")
    if not 0 < ttl <= 3600:
        raise InvalidInput(f"a lease's time to live must be between 0 and 3600 seconds, "
                           f"not {ttl}")


def acquire(store: StoreCore, resource: str, holder: str, ttl: float) -> Lease:
    """Insert or take over the row in one statement; see :meth:`StateStore.acquire_lease`.

    The conditional upsert is atomic on both backends: of two engines racing for an
    expired lease, the second one's ``WHERE`` sees the first one's fresh row and
    changes nothing, so it gets no row back and learns who holds it.
    """
    _check_args(resource, holder, ttl)
    now = store._NOW
    sql = (
        "INSERT INTO leases(resource, holder, epoch, expires, acquired) "
        f"VALUES (:resource, :holder, 1, {now} + :ttl, {now}) "
        "ON CONFLICT (resource) DO UPDATE SET "
        f"epoch = CASE WHEN leases.holder = excluded.holder AND leases.expires > {now} "
        "THEN leases.epoch ELSE leases.epoch + 1 END, "
        f"acquired = CASE WHEN leases.holder = excluded.holder AND leases.expires > {now} "
        "THEN leases.acquired ELSE excluded.acquired END, "
        "holder = excluded.holder, expires = excluded.expires "
        f"WHERE (leases.holder IS NULL OR leases.expires <= {now} "
        "OR leases.holder = excluded.holder) "
        # a row whose epoch or expiry is not a number (SQLite keeps what it is given; a
        # hand-edited file) is never taken over: its epoch would start again from 1
        "AND leases.epoch + 0 = leases.epoch AND leases.epoch >= 1 "
        "AND leases.expires + 0 = leases.expires "
        "RETURNING epoch, expires")
    for _ in range(3):
        started = time.monotonic()
        with store.transaction():
            rows = store._rows(sql, {"resource": resource, "holder": holder, "ttl": ttl,
                                     **store._clock()})
            if rows:
                return Lease(resource, holder, int(rows[0][0]), float(rows[0][1]), ttl,
                             started + ttl)
            other = store._rows(f"SELECT resource, holder, epoch, expires, expires - {now} "
                                "FROM leases WHERE resource=:resource",
                                {"resource": resource, **store._clock()})
        if other:
            held = from_row(store, other[0])  # raises UnreadableRow for a damaged row
            if other[0][1] is not None and held.remaining() > 0:
                raise LeaseHeld(resource, held.holder, held.remaining())
        # released or expired between the two statements: try again
    raise LeaseHeld(resource, "another holder", 0.0)


def renew(store: StoreCore, lease: Lease, ttl: float) -> Lease:
    """Extend a lease that is still held, at the same epoch."""
    _check_args(lease.resource, lease.holder, ttl)
    now = store._NOW
    started = time.monotonic()
    params = {"resource": lease.resource, "holder": lease.holder, "epoch": lease.epoch,
              "ttl": ttl, **store._clock()}
    with store.transaction():
        rows = store._rows(f"UPDATE leases SET expires = {now} + :ttl "
                           "WHERE resource=:resource AND holder=:holder AND epoch=:epoch "
                           f"AND expires > {now} RETURNING expires", params)
        if not rows:
            raise LeaseLost(lease.resource, lease.epoch, _why_lost(store, lease))
    return dataclasses.replace(lease, expires=float(rows[0][0]), ttl=ttl,
                               deadline=started + ttl)


def release(store: StoreCore, lease: Lease) -> bool:
    """Mark the row free now, keeping its epoch for the next holder to build on."""
    now = store._NOW
    with store.transaction():
        return bool(store._count(
            f"UPDATE leases SET holder=NULL, expires={now} "
            "WHERE resource=:resource AND holder=:holder AND epoch=:epoch",
            {"resource": lease.resource, "holder": lease.holder, "epoch": lease.epoch,
             **store._clock()}))


def check(store: StoreCore, lease: Lease) -> None:
    """Inside the caller's transaction: the lease is current, and stays so until it ends.

    On PostgreSQL ``FOR SHARE`` keeps the row from being taken over (an ``UPDATE``)
    until this transaction commits, so the writes that follow are ordered before any
    takeover; SQLite's write lock, already held, does the same.
    """
    now = store._NOW
    rows = store._rows(f"SELECT holder, epoch, expires - {now} FROM leases "
                       f"WHERE resource=:resource{store._FOR_SHARE}",
                       {"resource": lease.resource, **store._clock()})
    if not rows:
        raise LeaseLost(lease.resource, lease.epoch, "there is no such lease")
    holder, epoch, left = rows[0]
    if not valid_version(epoch) or not isinstance(left, (int, float)):
        raise LeaseLost(lease.resource, lease.epoch, _damaged(epoch, left))
    if holder != lease.holder or epoch != lease.epoch or left <= 0:
        raise LeaseLost(lease.resource, lease.epoch,
                        _explain(lease, holder, epoch, left))


def _why_lost(store: StoreCore, lease: Lease) -> str:
    rows = store._rows(f"SELECT holder, epoch, expires - {store._NOW} FROM leases "
                       "WHERE resource=:resource", {"resource": lease.resource,
                                                    **store._clock()})
    if not rows:
        return "there is no such lease"
    holder, epoch, left = rows[0]
    if not valid_version(epoch) or not isinstance(left, (int, float)):
        return _damaged(epoch, left)
    return _explain(lease, holder, epoch, float(left))


def _damaged(epoch: Any, left: Any) -> str:
    return (f"its row is unreadable (epoch {epoch!r:.40}, expiry {left!r:.40}); "
            f"{CHECK_HINT}")


def _explain(lease: Lease, holder: str | None, epoch: int, left: float) -> str:
    if epoch != lease.epoch:
        now_held = f"held by {holder!r}" if holder is not None else "released"
        return f"it was taken over (now epoch {epoch}, {now_held})"
    if holder is None:
        return "it was released"
    if holder != lease.holder:
        return f"it is held by {holder!r}"
    return f"it expired {-left:.1f} s ago"


def get(store: StoreCore, resource: str) -> Lease | None:
    rows = store._rows(f"SELECT resource, holder, epoch, expires, expires - {store._NOW} "
                       "FROM leases WHERE resource=:resource",
                       {"resource": resource, **store._clock()})
    return from_row(store, rows[0]) if rows else None


def list_all(store: StoreCore) -> list[Lease]:
    """Every lease that can be read; a damaged row is left out and logged."""
    rows = store._rows(f"SELECT resource, holder, epoch, expires, expires - {store._NOW} "
                       "FROM leases ORDER BY resource", store._clock())
    out = []
    for row in rows:
        try:
            out.append(from_row(store, row))
        except UnreadableRow as exc:
            store._left_out(exc, row[2])
    return out


def from_row(store: StoreCore, row: Sequence[Any]) -> Lease:
    """The lease a row (resource, holder, epoch, expires, seconds left) holds.

    :raises UnreadableRow: its epoch is not a whole number, or its expiry not a number
        (what a hand-edited SQLite file may hold).
    """
    resource, holder, epoch, expires, left = row
    if not valid_version(epoch) or not all(isinstance(v, (int, float)) and v == v
                                         for v in (expires, left)):
        raise UnreadableRow(store.location, "lease", repr(resource), None,
                            f"its epoch is {epoch!r:.40} and its expiry {expires!r:.40}; an "
                            "epoch is a whole number from 1 on, an expiry a time in seconds")
    return Lease(str(resource), "" if holder is None else str(holder), epoch,
                 float(expires), 0.0, time.monotonic() + float(left))
