"""Jobs, events and leases: the records besides model objects, on every backend."""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Self

from virtplane import model
from virtplane.errors import AlreadyExists, NotFound
from virtplane.state._core import Row, StoreCore, UnreadableRow, _event_ok, _fields

if TYPE_CHECKING:
    from virtplane.state._leases import Lease


#: an event row's insert: ``VALUES (...)`` of them, or ``SELECT ... FROM`` a statement's
#: result (:meth:`StateStore.update_with_event <virtplane.state.StateStore.update_with_event>`)
_EVENT_INSERT = "INSERT INTO events(ts, object_id, level, message, code, correlation_id)"
_EVENT_VALUES = ":ts, :object_id, :level, :message, :code, :correlation_id"


class RecordsMixin(StoreCore):
    """Jobs (with compare-and-set), the event log, leases and fenced transactions."""

    # ------------------------------------------------------------------------- jobs

    def add_job(self, job: model.Job, *, engine: str | None = None) -> None:
        """Store a new job (at revision 1).

        :param engine: the engine that runs it (its lease holder name), so that when
            several engines share the store, only a dead engine's jobs are recovered.
        """
        with self.transaction():
            rows = self._rows(
                "INSERT INTO jobs(id, correlation_id, kind, object_id, status, data, "
                "version, created, updated, engine) VALUES (:id, :correlation_id, :kind, "
                ":object_id, :status, :data, 1, :created, :updated, :engine) "
                "ON CONFLICT DO NOTHING RETURNING version",
                {"id": job.id, "correlation_id": job.correlation_id, "kind": job.kind,
                 "object_id": job.object_id, "status": job.status.value,
                 "data": model.to_json(job), "created": job.created, "updated": job.updated,
                 "engine": engine})
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

    def job_engines(self) -> dict[str, str | None]:
        """Job id -> the engine that runs it, for every job not ended (queued or
        started); None for a job stored without one."""
        rows = self._rows("SELECT id, engine FROM jobs WHERE status IN (:queued, :started)",
                          {"queued": model.JobStatus.QUEUED.value,
                           "started": model.JobStatus.STARTED.value})
        return {r[0]: r[1] for r in rows}

    def get_job(self, job_id: str) -> model.Job:
        """The job with this id, at its current revision."""
        rows = self._rows("SELECT data, version FROM jobs WHERE id=:id", {"id": job_id})
        if not rows:
            raise NotFound(f"no job with id {job_id}")
        return self._row(model.Job, rows[0][0], rows[0][1], job_id)

    def list_jobs(self, *, status: model.JobStatus | Sequence[model.JobStatus] | None = None,
                  correlation_id: str | None = None,
                  object_id: str | None = None) -> builtins.list[model.Job]:
        """Jobs, oldest first, optionally only those matching every filter given; a job
        whose row cannot be read is left out and logged (:meth:`get_job` raises)."""
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
        sql = "SELECT data, version, id FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._rows(sql + " ORDER BY created, id", params)
        try:
            return [self._row(model.Job, r[0], r[1], r[2]) for r in rows]
        except UnreadableRow:  # left out and logged, as StateStore.list does
            return self._readable(model.Job, rows)

    # ----------------------------------------------------------------------- events

    def add_event(self, object_id: str, message: str, level: str = "info", *,
                  code: int | None = None, correlation_id: str | None = None) -> None:
        """Append to an object's event log (e.g. a hook script's stderr).

        :param code: the event's numeric code (oVirt's audit log codes, when assigned).
        :param correlation_id: the request or job that caused it; None: the job running
            in this context, if any (:func:`virtplane.events.correlation`).
        """
        # one statement: atomic by itself, or part of this thread's transaction
        self._write_one(f"{_EVENT_INSERT} VALUES ({_EVENT_VALUES})",
                        self._event_params(object_id, message, level, code, correlation_id))

    @staticmethod
    def _event_params(object_id: str, message: str, level: str, code: int | None,
                      correlation_id: str | None) -> dict[str, Any]:
        """The parameters of :data:`_EVENT_VALUES`; correlation id None: the running job's."""
        if correlation_id is None:
            from virtplane.events import correlation_id as current

            correlation_id = current()
        return {"ts": time.time(), "object_id": object_id, "level": level,
                "message": message, "code": code, "correlation_id": correlation_id}

    def events(self, object_id: str) -> builtins.list[tuple[float, str, str]]:
        """An object's event log, oldest first: (time, level, message)."""
        rows = self._rows("SELECT seq, ts, object_id, level, message, code, correlation_id "
                          "FROM events WHERE object_id=:id ORDER BY seq", {"id": object_id})
        return [(r[1], r[3], r[4]) for r in self._readable_events(rows)]

    def events_since(self, seq: int, limit: int = 1000) -> builtins.list[tuple[Any, ...]]:
        """Every object's events after sequence number ``seq``, oldest first:
        (seq, time, object id, level, message, code, correlation id)."""
        rows = self._rows("SELECT seq, ts, object_id, level, message, code, correlation_id "
                          "FROM events WHERE seq > :seq ORDER BY seq LIMIT :limit",
                          {"seq": seq, "limit": limit})
        return [tuple(r) for r in self._readable_events(rows)]

    def _readable_events(self, rows: builtins.list[Row]) -> builtins.list[Row]:
        """The event rows whose fields have the types the store writes (a time, text,
        a whole-number code or none); any other is left out and logged, as listings
        leave out an object they cannot read (a hand-edited SQLite file keeps any
        value in any column)."""
        good = [r for r in rows if _event_ok(r)]
        if len(good) < len(rows):
            for r in rows:
                if not _event_ok(r):
                    self._left_out(UnreadableRow(
                        self.location, "event", str(r[0]), None,
                        f"its fields are {_fields(r)}; an event has a time, text and a "
                        "whole-number code"), r[1:])
        return good

    def last_event_seq(self) -> int:
        """The newest event's sequence number (0: none yet)."""
        return int(self._rows("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0])

    def object_names(self) -> dict[str, str]:
        """Object id -> "kind name" for every stored object (events shown by name;
        nothing is parsed)."""
        rows = self._rows("SELECT id, kind, name FROM objects")
        return {r[0]: f"{r[1].replace('_', ' ')} {r[2]}" for r in rows}

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
