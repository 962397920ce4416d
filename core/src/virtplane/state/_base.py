"""The state store's interface, and the SQL every backend shares.

:class:`StateStore` is what services, the CLI and the engine call. Calling
``StateStore(location)`` picks the backend from the location (see
:mod:`virtplane.state._location`): a plain path or ``sqlite:///path`` is the
embedded SQLite file, ``postgresql://...`` the backend a plugin registers under
that scheme. Backends subclass it and supply five primitives (run a statement and
fetch its rows, run one and count the rows it touched, run one for many parameter
sets, begin/commit/rollback the outermost transaction); every operation is written
once here, in the SQL both SQLite (3.35 or newer) and PostgreSQL accept, with
``:name`` parameters.

Compare-and-set is done by the write itself (``UPDATE ... WHERE version = :read``),
not by a read before it, so it holds on PostgreSQL's row locks as well as under
SQLite's single writer: of two writers that read the same version, exactly one
changes the row.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from virtplane import model
from virtplane.errors import AlreadyExists, Conflict, NotFound, StateError

if TYPE_CHECKING:
    from virtplane.state._leases import Lease

T = TypeVar("T")

log = logging.getLogger("virtplane.state")

#: the schema this virtplane writes; older stores are migrated (SQLite: on open)
SCHEMA_VERSION = 3

#: how often :meth:`StateStore.modify` re-reads and retries after a Conflict
MODIFY_ATTEMPTS = 5

Row = Sequence[Any]
Params = Mapping[str, Any]

_KINDS: dict[type[Any], str] = {
    model.DataCenter: "datacenter",
    model.Cluster: "cluster",
    model.Host: "host",
    model.StorageDomain: "storage_domain",
    model.Image: "image",
    model.Template: "template",
    model.Vm: "vm",
    model.Snapshot: "snapshot",
}


def kind_of(cls: type[Any]) -> str:
    """The store's kind name for a model class."""
    try:
        return _KINDS[cls]
    except KeyError:
        raise TypeError(f"{cls.__name__} is not a stored model class") from None


def stored_classes() -> dict[str, type[Any]]:
    """kind name -> model class, for every kind the store keeps (jobs included)."""
    out: dict[str, type[Any]] = {v: k for k, v in _KINDS.items()}
    out["job"] = model.Job
    return out


def _name_of(obj: Any) -> str:
    if isinstance(obj, model.Vm):
        return obj.spec.name
    if isinstance(obj, model.Image):
        return obj.alias or obj.id
    if isinstance(obj, model.Snapshot):
        return f"{obj.vm_id}/{obj.name}"
    name: str = obj.name
    return name


class StateStore:
    """Model objects, jobs, events and leases, safe for several writers.

    ``StateStore(location, readonly=None, strict=True)`` opens the backend the
    location names (a path for SQLite, a URL otherwise; see :func:`open_location`).

    :param strict: when False, an update of a stale copy is logged as a warning and
        written anyway (last writer wins) instead of raising Conflict. Only for code
        not yet converted to re-read before writing.
    :ivar location: where the store is, printable (a URL's password is hidden).
    :ivar backend: the backend's scheme (``sqlite``, ``postgresql``).
    """

    backend: ClassVar[str] = ""
    #: SQL for "now" on the store's clock, in seconds since the epoch (leases use it)
    _NOW: ClassVar[str] = ":now"
    #: appended to a SELECT that must lock the row it reads until the transaction ends
    _FOR_UPDATE: ClassVar[str] = ""
    _FOR_SHARE: ClassVar[str] = ""

    location: str
    readonly: bool
    strict: bool
    #: per-thread connection and transaction state (backends create it)
    _local: threading.local

    _backend_for: ClassVar[Callable[[str | os.PathLike[str]], type[Any]]]

    def __new__(cls, location: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Self:
        """Pick the backend class for ``location`` when called on StateStore itself."""
        if cls is StateStore:
            # set by the package (virtplane.state): the backend for the location's
            # scheme; kept out of this module so the backends can import it (no cycle)
            chosen: type[Any] = StateStore._backend_for(location)
            return super().__new__(chosen)  # type: ignore[no-any-return]
        return super().__new__(cls)

    def __init__(self, location: str | os.PathLike[str], *, readonly: bool | None = None,
                 strict: bool = True) -> None:
        raise TypeError("StateStore is the interface; open a store with StateStore(location)")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location}>"

    # ---------------------------------------------------------- backend primitives

    def _rows(self, sql: str, params: Params | None = None) -> builtins.list[Row]:
        """Run one statement and return all its rows."""
        raise NotImplementedError

    def _count(self, sql: str, params: Params | None = None) -> int:
        """Run one statement and return how many rows it changed."""
        raise NotImplementedError

    def _many(self, sql: str, params: Sequence[Params]) -> None:
        """Run one statement for each parameter set (bulk copy)."""
        raise NotImplementedError

    def _begin(self) -> None:
        """Start the outermost transaction, taking whatever lock makes it safe."""
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _clock(self) -> dict[str, Any]:
        """Parameters :data:`_NOW` needs (SQLite: this machine's clock)."""
        return {"now": time.time()}

    def close(self) -> None:
        """Release this thread's connection (other threads release their own)."""

    def schema_version(self) -> int:
        """The schema version the store has now."""
        rows = self._rows("SELECT value FROM meta WHERE key='schema'")
        return int(rows[0][0]) if rows else 0

    def migrate(self) -> tuple[int, int]:
        """Bring the store to :data:`SCHEMA_VERSION`; returns (before, after)."""
        raise NotImplementedError

    @classmethod
    def upgrade(cls, location: str | os.PathLike[str]) -> tuple[int, int]:
        """Migrate the store at ``location`` (``virtplane state migrate``): (before, after).

        A classmethod because a backend may refuse to open an outdated store at all.
        """
        store = cls(location, readonly=False)
        try:
            return store.migrate()
        finally:
            store.close()

    def _after_copy(self) -> None:
        """Rows were copied in with their own keys (PostgreSQL moves its sequences)."""

    def check(self) -> builtins.list[str]:
        """Integrity problems found (an empty list when there are none)."""
        return self._check_rows()

    def _check_rows(self) -> builtins.list[str]:
        """Every object and job row parses as its kind."""
        problems: builtins.list[str] = []
        by_kind = stored_classes()
        rows = [(r[1], r[0], r[2]) for r in self._rows("SELECT id, kind, data FROM objects")]
        rows += [("job", r[0], r[1]) for r in self._rows("SELECT id, data FROM jobs")]
        for kind, obj_id, data in rows:
            cls = by_kind.get(kind)
            if cls is None:
                problems.append(f"{kind} {obj_id}: unknown kind")
                continue
            try:
                model.from_json(data, cls)
            except Exception as exc:  # noqa: BLE001 - report every unreadable row
                problems.append(f"{kind} {obj_id}: {exc}")
        return problems

    # ----------------------------------------------------------------- transactions

    def _tls(self) -> threading.local:
        local: threading.local = self._local
        if not hasattr(local, "depth"):
            local.depth = 0
            local.undo = []
        return local

    def _refuse_readonly(self) -> None:
        raise StateError(f"state store {self.location} is read-only (opened without write "
                         "access): this command needs to change it; run it as a user "
                         "who can write the file")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Self]:
        """Group writes: all of them land, or (on an exception or a kill) none.

        Transactions nest; only the outermost one commits. On SQLite it takes the
        write lock at once (``BEGIN IMMEDIATE``), so what is read inside stays current
        until it ends. On PostgreSQL other writers go on; each write checks the row's
        version (compare-and-set) and :meth:`modify` locks the row it reads. On a
        rollback the ``revision`` of every object written in it goes back to what it
        was, so the caller's copies stay usable for a retry.

        :raises StateError: the store is read-only.
        :raises StateUnavailable: the database server cannot be reached.
        """
        if self.readonly:
            self._refuse_readonly()
        local = self._tls()
        depth: int = local.depth
        if depth == 0:
            self._begin()
        local.depth = depth + 1
        try:
            yield self
        except BaseException:
            local.depth = depth
            if depth == 0:
                try:
                    self._rollback()
                finally:
                    undo: builtins.list[tuple[Any, int]] = local.undo
                    for obj, revision in reversed(undo):
                        obj.revision = revision
                    undo.clear()
            raise
        local.depth = depth
        if depth == 0:
            try:
                self._commit()
            except BaseException:
                for obj, revision in reversed(local.undo):
                    obj.revision = revision
                local.undo.clear()
                raise
            local.undo.clear()

    def in_transaction(self) -> bool:
        """Whether this thread is inside :meth:`transaction`."""
        return bool(self._tls().depth)

    def _set_revision(self, obj: Any, revision: int) -> None:
        """Give ``obj`` the revision just written, undone if the transaction rolls back."""
        self._tls().undo.append((obj, obj.revision))
        obj.revision = revision

    # ---------------------------------------------------------------------- objects

    def add(self, obj: Any) -> None:
        """Store a new object (at revision 1); its name must be unique for its kind."""
        kind = kind_of(type(obj))
        with self.transaction():
            rows = self._rows(
                "INSERT INTO objects(id, kind, name, data, updated, version) "
                "VALUES (:id, :kind, :name, :data, :updated, 1) "
                "ON CONFLICT DO NOTHING RETURNING version",
                {"id": obj.id, "kind": kind, "name": _name_of(obj),
                 "data": model.to_json(obj), "updated": time.time()})
            if not rows:
                raise AlreadyExists(f"a {kind} named {_name_of(obj)!r} already exists")
            self._set_revision(obj, 1)

    def update(self, obj: Any) -> None:
        """Replace a stored object (matched by id) if nobody changed it since it was read.

        On success ``obj.revision`` is the new version, so the same copy can be updated
        again.

        :raises Conflict: the row's version is no longer ``obj.revision`` (another
            writer changed it), or ``obj`` never came from the store.
        :raises NotFound: the object is not stored (any more).
        :raises AlreadyExists: its new name is taken.
        """
        kind = kind_of(type(obj))
        name = _name_of(obj)
        params = {"id": obj.id, "kind": kind, "name": name, "data": model.to_json(obj),
                  "updated": time.time(), "read": obj.revision}
        with self.transaction():
            if self._rows("SELECT 1 FROM objects WHERE kind=:kind AND name=:name AND id<>:id",
                          params):
                raise AlreadyExists(f"a {kind} named {name!r} already exists")
            rows = self._rows(
                "UPDATE objects SET name=:name, data=:data, updated=:updated, "
                "version=version+1 WHERE id=:id AND kind=:kind AND version=:read "
                "RETURNING version", params)
            if not rows:
                rows = self._overwrite_stale("objects", "id=:id AND kind=:kind", params,
                                             kind, name, "name=:name, data=:data, "
                                             "updated=:updated, ")
            self._set_revision(obj, int(rows[0][0]))

    def _overwrite_stale(self, table: str, where: str, params: dict[str, Any], kind: str,
                         label: str, assignments: str) -> builtins.list[Row]:
        """The compare-and-set write matched no row: say why, or (lenient) write anyway."""
        current = self._rows(f"SELECT version FROM {table} WHERE {where}", params)
        if not current:
            if kind == "job":
                raise NotFound(f"no job with id {params['id']}")
            raise NotFound(f"no {kind} named {label!r} (id {params['id']})")
        self._stale(kind, label, params["read"], int(current[0][0]))
        return self._rows(f"UPDATE {table} SET {assignments}version=version+1 "
                          f"WHERE {where} RETURNING version", params)

    def _stale(self, kind: str, name: str, read: int, current: int) -> None:
        """A stale copy is being written: refuse (strict) or warn and let it win."""
        if self.strict:
            raise Conflict(kind, name, read, current)
        log.warning("state store %s: %s %r written from a stale copy (read at revision "
                    "%d, now %d); the other writer's change is overwritten",
                    self.location, kind, name, read, current)

    def remove(self, cls: type[Any], obj_id: str, *, revision: int | None = None) -> None:
        """Delete an object by id (its events are kept).

        :param revision: when given, delete only if the row is still at this revision
            (the ``revision`` of the copy the decision to delete was based on).
        :raises Conflict: ``revision`` is given and the row changed since.
        """
        kind = kind_of(cls)
        params = {"id": obj_id, "kind": kind, "read": revision}
        with self.transaction():
            if revision is not None and self._count(
                    "DELETE FROM objects WHERE id=:id AND kind=:kind AND version=:read",
                    params):
                return
            row = self._rows("SELECT version, name FROM objects WHERE id=:id AND kind=:kind",
                             params)
            if not row:
                raise NotFound(f"no {kind} with id {obj_id}")
            if revision is not None:
                self._stale(kind, row[0][1], revision, int(row[0][0]))
            self._count("DELETE FROM objects WHERE id=:id AND kind=:kind", params)

    def _load(self, cls: type[T], data: str, version: int) -> T:
        obj = model.from_json(data, cls)
        obj.revision = version  # type: ignore[attr-defined]
        return obj

    def get(self, cls: type[T], obj_id: str) -> T:
        """The object of ``cls`` with this id, at its current revision."""
        kind = kind_of(cls)
        rows = self._rows("SELECT data, version FROM objects WHERE id=:id AND kind=:kind",
                          {"id": obj_id, "kind": kind})
        if not rows:
            raise NotFound(f"no {kind} with id {obj_id}")
        return self._load(cls, rows[0][0], rows[0][1])

    def refresh(self, obj: T) -> T:
        """A fresh copy of ``obj`` as stored now (for a retry after a Conflict)."""
        return self.get(type(obj), obj.id)  # type: ignore[attr-defined]

    def find(self, cls: type[T], name_or_id: str) -> T:
        """Look an object up by name, else by id; NotFound names what exists."""
        return self._find(cls, name_or_id, "")

    def _find(self, cls: type[T], name_or_id: str, lock: str) -> T:
        kind = kind_of(cls)
        params = {"kind": kind, "key": name_or_id}
        rows = self._rows("SELECT data, version FROM objects WHERE kind=:kind AND "
                          "(name=:key OR id=:key) ORDER BY name=:key DESC LIMIT 1" + lock,
                          params)
        if not rows:
            names = [r[0] for r in self._rows(
                "SELECT name FROM objects WHERE kind=:kind ORDER BY name LIMIT 20", params)]
            known = ", ".join(names) if names else "none"
            raise NotFound(f"no {kind} named {name_or_id!r} (known: {known})")
        return self._load(cls, rows[0][0], rows[0][1])

    def modify(self, cls: type[T], name_or_id: str, fn: Callable[[T], T | None], *,
               attempts: int = MODIFY_ATTEMPTS) -> T:
        """Read the current object, let ``fn`` change it and write it back, atomically.

        ``fn`` gets the current copy and either changes it in place (returning None) or
        returns the new object (e.g. ``attrs.evolve(obj, ...)``). Read and write happen
        in one transaction, with the row locked from the read on (PostgreSQL); should
        the write still conflict (``fn`` itself wrote the object through another copy),
        the transaction is rolled back and everything is retried, up to ``attempts``
        times, so ``fn`` must only change the object it is given. Returns the object
        as written.

        :raises Conflict: still conflicting after ``attempts`` tries.
        :raises NotFound: there is no such object.
        """
        kind = kind_of(cls)
        last: Conflict | None = None
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction():
                    current = self._find(cls, name_or_id, self._FOR_UPDATE)
                    changed = fn(current)
                    new = current if changed is None else changed
                    if new.id != current.id:  # type: ignore[attr-defined]
                        raise ValueError(f"modify({cls.__name__}, {name_or_id!r}): fn "
                                         "returned a different object")
                    self.update(new)
                return new
            except Conflict as exc:
                last = exc
                log.debug("modify %s %r: attempt %d of %d conflicted: %s",
                          kind, name_or_id, attempt, attempts, exc)
        assert last is not None, "attempts must be at least 1"
        raise Conflict(last.kind, last.name, last.read_revision, last.current_revision,
                       attempts=attempts)

    def has(self, cls: type[Any], obj_id: str) -> bool:
        """Whether an object of ``cls`` with this id is stored."""
        return bool(self._rows("SELECT 1 FROM objects WHERE kind=:kind AND id=:id",
                               {"kind": kind_of(cls), "id": obj_id}))

    def exists(self, cls: type[Any], name: str) -> bool:
        """Whether an object of ``cls`` has this name."""
        return bool(self._rows("SELECT 1 FROM objects WHERE kind=:kind AND name=:name",
                               {"kind": kind_of(cls), "name": name}))

    def require_free(self, cls: type[Any], name: str, what: str | None = None) -> None:
        """Raise AlreadyExists when ``name`` is taken for ``cls``."""
        if self.exists(cls, name):
            raise AlreadyExists(f"a {what or kind_of(cls).replace('_', ' ')} named {name!r} "
                                "already exists")

    def list(self, cls: type[T]) -> builtins.list[T]:
        """Every object of ``cls``, by name."""
        rows = self._rows("SELECT data, version FROM objects WHERE kind=:kind ORDER BY name",
                          {"kind": kind_of(cls)})
        return [self._load(cls, r[0], r[1]) for r in rows]

    def versions(self, cls: type[Any]) -> dict[str, int]:
        """id -> current revision of every object of ``cls`` (cheap: nothing is parsed),
        so a cache re-reads only the rows that moved."""
        rows = self._rows("SELECT id, version FROM objects WHERE kind=:kind",
                          {"kind": kind_of(cls)})
        return {r[0]: int(r[1]) for r in rows}

    # ------------------------------------------------------------------------- jobs

    def add_job(self, job: model.Job) -> None:
        """Store a new job (at revision 1)."""
        with self.transaction():
            rows = self._rows(
                "INSERT INTO jobs(id, correlation_id, kind, object_id, status, data, "
                "version, created, updated) VALUES (:id, :correlation_id, :kind, "
                ":object_id, :status, :data, 1, :created, :updated) "
                "ON CONFLICT DO NOTHING RETURNING version",
                {"id": job.id, "correlation_id": job.correlation_id, "kind": job.kind,
                 "object_id": job.object_id, "status": job.status.value,
                 "data": model.to_json(job), "created": job.created, "updated": job.updated})
            if not rows:
                raise AlreadyExists(f"a job with id {job.id} already exists")
            self._set_revision(job, 1)

    def update_job(self, job: model.Job) -> None:
        """Write a job's new progress/status if nobody changed it since it was read.

        Sets ``job.updated`` to now.

        :raises Conflict: another writer changed the job since it was read.
        :raises NotFound: no such job.
        """
        with self.transaction():
            before = job.updated
            job.updated = time.time()
            params = {"id": job.id, "correlation_id": job.correlation_id, "kind": job.kind,
                      "object_id": job.object_id, "status": job.status.value,
                      "data": model.to_json(job), "updated": job.updated,
                      "read": job.revision}
            sets = ("correlation_id=:correlation_id, kind=:kind, object_id=:object_id, "
                    "status=:status, data=:data, updated=:updated, ")
            try:
                rows = self._rows(f"UPDATE jobs SET {sets}version=version+1 "
                                  "WHERE id=:id AND version=:read RETURNING version", params)
                if not rows:
                    rows = self._overwrite_stale("jobs", "id=:id", params, "job",
                                                 f"{job.kind} {job.id}", sets)
            except BaseException:
                job.updated = before
                raise
            self._set_revision(job, int(rows[0][0]))

    def get_job(self, job_id: str) -> model.Job:
        """The job with this id, at its current revision."""
        rows = self._rows("SELECT data, version FROM jobs WHERE id=:id", {"id": job_id})
        if not rows:
            raise NotFound(f"no job with id {job_id}")
        return self._load(model.Job, rows[0][0], rows[0][1])

    def list_jobs(self, *, status: model.JobStatus | Sequence[model.JobStatus] | None = None,
                  correlation_id: str | None = None,
                  object_id: str | None = None) -> builtins.list[model.Job]:
        """Jobs, oldest first, optionally only those matching every filter given."""
        where: builtins.list[str] = []
        params: dict[str, Any] = {}
        if status is not None:
            statuses = [status] if isinstance(status, model.JobStatus) else builtins.list(status)
            names = [f":s{i}" for i in range(len(statuses))]
            where.append(f"status IN ({','.join(names) or 'NULL'})")
            params.update({n[1:]: s.value for n, s in zip(names, statuses, strict=True)})
        if correlation_id is not None:
            where.append("correlation_id=:correlation_id")
            params["correlation_id"] = correlation_id
        if object_id is not None:
            where.append("object_id=:object_id")
            params["object_id"] = object_id
        sql = "SELECT data, version FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._rows(sql + " ORDER BY created, id", params)
        return [self._load(model.Job, r[0], r[1]) for r in rows]

    # ----------------------------------------------------------------------- events

    def add_event(self, object_id: str, message: str, level: str = "info", *,
                  code: int | None = None, correlation_id: str | None = None) -> None:
        """Append to an object's event log (e.g. a hook script's stderr).

        :param code: the event's numeric code (oVirt's audit log codes, when assigned).
        :param correlation_id: the request or job that caused it.
        """
        with self.transaction():
            self._count(
                "INSERT INTO events(ts, object_id, level, message, code, correlation_id) "
                "VALUES (:ts, :object_id, :level, :message, :code, :correlation_id)",
                {"ts": time.time(), "object_id": object_id, "level": level,
                 "message": message, "code": code, "correlation_id": correlation_id})

    def events(self, object_id: str) -> builtins.list[tuple[float, str, str]]:
        """An object's event log, oldest first: (time, level, message)."""
        rows = self._rows("SELECT ts, level, message FROM events WHERE object_id=:id "
                          "ORDER BY seq", {"id": object_id})
        return [(r[0], r[1], r[2]) for r in rows]

    def events_since(self, seq: int, limit: int = 1000) -> builtins.list[tuple[Any, ...]]:
        """Every object's events after sequence number ``seq``, oldest first:
        (seq, time, object id, level, message, code, correlation id)."""
        rows = self._rows("SELECT seq, ts, object_id, level, message, code, correlation_id "
                          "FROM events WHERE seq > :seq ORDER BY seq LIMIT :limit",
                          {"seq": seq, "limit": limit})
        return [tuple(r) for r in rows]

    def last_event_seq(self) -> int:
        """The newest event's sequence number (0: none yet)."""
        return int(self._rows("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0])

    # ----------------------------------------------------------------------- leases

    def acquire_lease(self, resource: str, holder: str, ttl: float) -> Lease:
        """Take ``resource`` (a host id, or :data:`~virtplane.state.LEADER`) for ``ttl``
        seconds; see :mod:`virtplane.state._leases`.

        :raises LeaseHeld: another holder's lease has not expired.
        """
        from virtplane.state import _leases

        return _leases.acquire(self, resource, holder, ttl)

    def renew_lease(self, lease: Lease, ttl: float | None = None) -> Lease:
        """Extend a lease still held (same epoch) by ``ttl`` (default: its own) seconds.

        :raises LeaseLost: it expired, was released or was taken over.
        """
        from virtplane.state import _leases

        return _leases.renew(self, lease, lease.ttl if ttl is None else ttl)

    def release_lease(self, lease: Lease) -> bool:
        """Give a lease up at once (its epoch stays, so the next holder's is higher).
        False when it was no longer held."""
        from virtplane.state import _leases

        return _leases.release(self, lease)

    def get_lease(self, resource: str) -> Lease | None:
        """The lease on ``resource`` as stored (possibly expired), or None."""
        from virtplane.state import _leases

        return _leases.get(self, resource)

    def list_leases(self) -> builtins.list[Lease]:
        """Every lease row, by resource."""
        from virtplane.state import _leases

        return _leases.list_all(self)

    @contextlib.contextmanager
    def fenced(self, lease: Lease) -> Iterator[Self]:
        """A transaction whose writes land only while ``lease`` is still held.

        The lease row is checked (same holder, same epoch, not expired on the store's
        clock) inside the transaction and locked against a takeover until it ends, so
        no write of a holder that was paused past its lease, or whose lease was taken
        over, can land after the new holder's: the epoch is a fencing token.

        :raises LeaseLost: the lease is no longer held; nothing in the block lands.
        """
        from virtplane.state import _leases

        with self.transaction():
            _leases.check(self, lease)
            yield self
