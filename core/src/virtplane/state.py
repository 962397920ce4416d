"""The embedded state store: model objects in one SQLite file.

Each object is stored as its cattrs JSON in one row, keyed by its UUID, with
its kind and name indexed. Writes happen in transactions
(``BEGIN IMMEDIATE``; WAL journal; ``synchronous=NORMAL``, which in WAL mode
survives a killed process; only a power loss can drop the last commits, never
corrupt the file), so a process killed in the middle of an operation leaves the
previous consistent state behind: either all objects of an operation are there,
or none.

Several writers share one file (the CLI, an engine, a REST API, a libvirt event
thread), so updates are compare-and-set: every row has a version, incremented by
each write, and every object read from the store remembers it in its
``revision`` attribute (see :mod:`virtplane.model` for why an attribute and not a
side table). :meth:`StateStore.update` refuses a copy whose row changed since it
was read with :class:`~virtplane.errors.Conflict`; :meth:`StateStore.modify`
re-reads, changes and writes in one transaction, which is what a writer that does
not care about the previous value should use.

The file records its schema version in ``meta``; a file written by a newer
virtplane is refused and an older one is migrated in place, in one transaction.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from virtplane import model
from virtplane.errors import AlreadyExists, Conflict, NotFound, StateError

T = TypeVar("T")

log = logging.getLogger("virtplane.state")

#: the schema this virtplane writes; files with an older one are migrated on open
SCHEMA_VERSION = 2

#: how often :meth:`StateStore.modify` re-reads and retries after a Conflict
MODIFY_ATTEMPTS = 5

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

_JOBS_TABLE = (
    """CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        correlation_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        object_id TEXT,
        status TEXT NOT NULL,
        data TEXT NOT NULL,
        version INTEGER NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL
    )""",
    "CREATE INDEX jobs_correlation ON jobs(correlation_id)",
    "CREATE INDEX jobs_object ON jobs(object_id)",
    "CREATE INDEX jobs_status ON jobs(status)",
)

#: a fresh file at SCHEMA_VERSION (one statement each: ``executescript`` would commit)
_SCHEMA: tuple[str, ...] = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE objects (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        data TEXT NOT NULL,
        updated REAL NOT NULL,
        version INTEGER NOT NULL DEFAULT 1
    )""",
    "CREATE UNIQUE INDEX objects_kind_name ON objects(kind, name)",
    """CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        object_id TEXT NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        code INTEGER,
        correlation_id TEXT
    )""",
    "CREATE INDEX events_object ON events(object_id)",
    "CREATE INDEX events_correlation ON events(correlation_id)",
    *_JOBS_TABLE,
)

#: from version N to N+1: the statements, run in the same transaction as the check
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        # every existing row counts as written once
        "ALTER TABLE objects ADD COLUMN version INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE events ADD COLUMN code INTEGER",
        "ALTER TABLE events ADD COLUMN correlation_id TEXT",
        "CREATE INDEX events_correlation ON events(correlation_id)",
        *_JOBS_TABLE,
    ),
}


def kind_of(cls: type[Any]) -> str:
    """The store's kind name for a model class."""
    try:
        return _KINDS[cls]
    except KeyError:
        raise TypeError(f"{cls.__name__} is not a stored model class") from None


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
    """SQLite-backed store of model objects, safe for several writers.

    :param path: the database file. When missing, it is created 0600 (it holds
        connection details and console data) and so is its folder (0700).
    :param readonly: open the file read-only; reads work, the first write raises
        StateError. ``None`` (the default) opens read-only exactly when the file
        exists and is not writable, so that a read-only state file still serves
        read-only commands.
    :param strict: when False, an update of a stale copy is logged as a warning and
        written anyway (last writer wins, the behaviour before compare-and-set) instead
        of raising Conflict. Only for code not yet converted to re-read before writing.
    :raises StateError: the folder cannot be created, the file is not a state store
        (not SQLite, damaged, or written by a newer virtplane) or cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool | None = None,
                 strict: bool = True) -> None:
        self.path = Path(path)
        self.strict = strict
        self._local = threading.local()
        if readonly is None:
            readonly = self.path.exists() and not os.access(self.path, os.W_OK)
        self.readonly = readonly
        if readonly:
            if not self.path.is_file():
                raise StateError(f"state store {self.path} does not exist, so it cannot "
                                 "be opened read-only")
            log.info("state store %s is not writable: opened read-only", self.path)
        else:
            self._create_file()
        try:
            self._open_schema()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StateError(self._unreadable(exc)) from None
        except BaseException:
            self.close()
            raise

    def _unreadable(self, exc: sqlite3.Error) -> str:
        if "not a database" in str(exc):
            return (f"state store {self.path} is unreadable: it is not an SQLite database "
                    "(a wrong path, or a damaged file: restore it from a backup)")
        return f"state store {self.path} is unreadable: {exc}"

    def _create_file(self) -> None:
        """Create the folder (0700) and the empty file (0600) before SQLite opens it.

        SQLite would create the file with the umask's mode (usually 0644); its -wal
        and -shm files copy the database file's mode, so creating it first is enough.
        """
        folder = self.path.parent
        if not folder.is_dir():
            try:
                folder.mkdir(mode=0o700, parents=True)
                os.chmod(folder, 0o700)
            except FileExistsError:
                pass  # created by a concurrent opener, or a file is in the way (below)
            except OSError as exc:
                raise StateError(f"cannot create the folder {folder} of the state store "
                                 f"{self.path.name}: {exc.strerror or exc}") from None
            if not folder.is_dir():
                raise StateError(f"cannot create the folder {folder} of the state store "
                                 f"{self.path.name}: a file of that name is in the way")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        except OSError as exc:
            raise StateError(f"cannot create the state store {self.path}: "
                             f"{exc.strerror or exc}") from None
        os.close(fd)
        log.info("created state store %s", self.path)

    def _open_schema(self) -> None:
        """Create, check or migrate the schema, under the write lock when writable.

        Holding the lock makes concurrent first opens and migrations safe: the second
        opener sees the first one's result.
        """
        conn = self._conn()
        if self.readonly:
            version = self._schema_version(conn)
            if version is None:
                raise StateError(f"state store {self.path} is empty and read-only")
            self._check_version(version)
            if version < SCHEMA_VERSION:
                raise StateError(
                    f"state store {self.path} has schema version {version} and needs "
                    f"migrating to {SCHEMA_VERSION}, but it is read-only: open it once "
                    "with write access")
            return
        with self.transaction():
            version = self._schema_version(conn)
            if version is None:
                for stmt in _SCHEMA:
                    conn.execute(stmt)
                conn.execute("INSERT INTO meta(key, value) VALUES ('schema', ?)",
                             (str(SCHEMA_VERSION),))
                return
            self._check_version(version)
            if version < SCHEMA_VERSION:
                self._migrate(conn, version)

    def _schema_version(self, conn: sqlite3.Connection) -> int | None:
        """The file's schema version; None for an empty database."""
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return None
        if "meta" not in tables or "objects" not in tables:
            raise StateError(f"state store {self.path} is an SQLite database but not a "
                             f"virtplane state store (tables: {', '.join(sorted(tables))})")
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        try:
            return int(row[0])
        except (TypeError, ValueError):
            found = "none" if row is None else repr(row[0])
            raise StateError(f"state store {self.path} has no valid schema version "
                             f"(found {found})") from None

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StateError(
                f"state store {self.path} has schema version {version}, written by a newer "
                f"virtplane; this virtplane understands up to version {SCHEMA_VERSION}: "
                "upgrade virtplane")

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        """Bring the file from ``version`` to SCHEMA_VERSION (the caller's transaction)."""
        start = version
        while version < SCHEMA_VERSION:
            for stmt in _MIGRATIONS[version]:
                try:
                    conn.execute(stmt)
                except sqlite3.Error as exc:
                    raise StateError(
                        f"migrating state store {self.path} from schema version {version} to "
                        f"{version + 1} failed ({exc}); the file is unchanged") from None
            version += 1
        conn.execute("UPDATE meta SET value=? WHERE key='schema'", (str(version),))
        log.info("migrated state store %s from schema version %d to %d",
                 self.path, start, version)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.readonly:
                uri = "file:" + urllib.parse.quote(str(self.path.absolute())) + "?mode=ro"
                conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
            else:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            self._local.depth = 0
            self._local.undo = []
        return conn

    def close(self) -> None:
        """Close this thread's connection (other threads close their own)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StateStore]:
        """Group writes: all of them land, or (on an exception or a kill) none.

        Transactions nest; only the outermost one commits. It takes the write lock at
        once (``BEGIN IMMEDIATE``), so what is read inside it stays current until it
        ends: a read-change-write inside one transaction cannot conflict with another
        writer. On a rollback, the ``revision`` of every object written in it goes back
        to what it was, so the caller's copies stay usable for a retry.

        :raises StateError: the store is read-only.
        """
        if self.readonly:
            raise StateError(f"state store {self.path} is read-only (opened without write "
                             "access): this command needs to change it; run it as a user "
                             "who can write the file")
        conn = self._conn()
        depth: int = self._local.depth
        if depth == 0:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StateError(f"state store {self.path} cannot be written: {exc}") from None
        self._local.depth = depth + 1
        try:
            yield self
        except BaseException:
            self._local.depth = depth
            if depth == 0:
                conn.execute("ROLLBACK")
                undo: builtins.list[tuple[Any, int]] = self._local.undo
                for obj, revision in reversed(undo):
                    obj.revision = revision
                undo.clear()
            raise
        self._local.depth = depth
        if depth == 0:
            conn.execute("COMMIT")
            self._local.undo.clear()

    def _set_revision(self, obj: Any, revision: int) -> None:
        """Give ``obj`` the revision just written, undone if the transaction rolls back."""
        self._local.undo.append((obj, obj.revision))
        obj.revision = revision

    # ------------------------------------------------------------------ objects

    def add(self, obj: Any) -> None:
        """Store a new object (at revision 1); its name must be unique for its kind."""
        kind = kind_of(type(obj))
        try:
            with self.transaction():
                self._conn().execute(
                    "INSERT INTO objects(id, kind, name, data, updated, version) "
                    "VALUES (?,?,?,?,?,1)",
                    (obj.id, kind, _name_of(obj), model.to_json(obj), time.time()),
                )
                self._set_revision(obj, 1)
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"a {kind} named {_name_of(obj)!r} already exists") from None

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
        with self.transaction():
            conn = self._conn()
            row = conn.execute("SELECT version FROM objects WHERE id=? AND kind=?",
                               (obj.id, kind)).fetchone()
            if row is None:
                raise NotFound(f"no {kind} named {name!r} (id {obj.id})")
            current: int = row[0]
            if current != obj.revision:
                self._stale(kind, name, obj.revision, current)
            try:
                conn.execute(
                    "UPDATE objects SET name=?, data=?, updated=?, version=? "
                    "WHERE id=? AND kind=?",
                    (name, model.to_json(obj), time.time(), current + 1, obj.id, kind),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"a {kind} named {name!r} already exists") from None
            self._set_revision(obj, current + 1)

    def _stale(self, kind: str, name: str, read: int, current: int) -> None:
        """A stale copy is being written: refuse (strict) or warn and let it win."""
        if self.strict:
            raise Conflict(kind, name, read, current)
        log.warning("state store %s: %s %r written from a stale copy (read at revision "
                    "%d, now %d); the other writer's change is overwritten",
                    self.path, kind, name, read, current)

    def remove(self, cls: type[Any], obj_id: str, *, revision: int | None = None) -> None:
        """Delete an object by id (its events are kept).

        :param revision: when given, delete only if the row is still at this revision
            (the ``revision`` of the copy the decision to delete was based on).
        :raises Conflict: ``revision`` is given and the row changed since.
        """
        kind = kind_of(cls)
        with self.transaction():
            conn = self._conn()
            row = conn.execute("SELECT version, name FROM objects WHERE id=? AND kind=?",
                               (obj_id, kind)).fetchone()
            if row is None:
                raise NotFound(f"no {kind} with id {obj_id}")
            if revision is not None and row[0] != revision:
                self._stale(kind, row[1], revision, row[0])
            conn.execute("DELETE FROM objects WHERE id=? AND kind=?", (obj_id, kind))

    def _load(self, cls: type[T], data: str, version: int) -> T:
        obj = model.from_json(data, cls)
        obj.revision = version  # type: ignore[attr-defined]
        return obj

    def get(self, cls: type[T], obj_id: str) -> T:
        """The object of ``cls`` with this id, at its current revision."""
        kind = kind_of(cls)
        row = self._conn().execute(
            "SELECT data, version FROM objects WHERE id=? AND kind=?", (obj_id, kind)
        ).fetchone()
        if row is None:
            raise NotFound(f"no {kind} with id {obj_id}")
        return self._load(cls, row[0], row[1])

    def refresh(self, obj: T) -> T:
        """A fresh copy of ``obj`` as stored now (for a retry after a Conflict)."""
        return self.get(type(obj), obj.id)  # type: ignore[attr-defined]

    def find(self, cls: type[T], name_or_id: str) -> T:
        """Look an object up by name, else by id; NotFound names what exists."""
        kind = kind_of(cls)
        row = self._conn().execute(
            "SELECT data, version FROM objects WHERE kind=? AND (name=? OR id=?)",
            (kind, name_or_id, name_or_id),
        ).fetchone()
        if row is None:
            names = [r[0] for r in self._conn().execute(
                "SELECT name FROM objects WHERE kind=? ORDER BY name LIMIT 20", (kind,)
            )]
            known = ", ".join(names) if names else "none"
            raise NotFound(f"no {kind} named {name_or_id!r} (known: {known})")
        return self._load(cls, row[0], row[1])

    def modify(self, cls: type[T], name_or_id: str, fn: Callable[[T], T | None], *,
               attempts: int = MODIFY_ATTEMPTS) -> T:
        """Read the current object, let ``fn`` change it and write it back, atomically.

        ``fn`` gets the current copy and either changes it in place (returning None) or
        returns the new object (e.g. ``attrs.evolve(obj, ...)``). Read and write happen
        in one transaction; should the write still conflict (``fn`` itself wrote the
        object through another copy), the transaction is rolled back and everything is
        retried, up to ``attempts`` times, so ``fn`` must only change the object it is
        given. Returns the object as written.

        :raises Conflict: still conflicting after ``attempts`` tries.
        :raises NotFound: there is no such object.
        """
        kind = kind_of(cls)
        last: Conflict | None = None
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction():
                    current = self.find(cls, name_or_id)
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
        row = self._conn().execute("SELECT 1 FROM objects WHERE kind=? AND id=?",
                                   (kind_of(cls), obj_id)).fetchone()
        return row is not None

    def exists(self, cls: type[Any], name: str) -> bool:
        """Whether an object of ``cls`` has this name."""
        row = self._conn().execute("SELECT 1 FROM objects WHERE kind=? AND name=?",
                                   (kind_of(cls), name)).fetchone()
        return row is not None

    def require_free(self, cls: type[Any], name: str, what: str | None = None) -> None:
        """Raise AlreadyExists when ``name`` is taken for ``cls``."""
        if self.exists(cls, name):
            raise AlreadyExists(f"a {what or kind_of(cls).replace('_', ' ')} named {name!r} "
                                "already exists")

    def list(self, cls: type[T]) -> list[T]:
        """Every object of ``cls``, by name."""
        kind = kind_of(cls)
        rows = self._conn().execute(
            "SELECT data, version FROM objects WHERE kind=? ORDER BY name", (kind,)
        ).fetchall()
        return [self._load(cls, r[0], r[1]) for r in rows]

    # --------------------------------------------------------------------- jobs

    def add_job(self, job: model.Job) -> None:
        """Store a new job (at revision 1)."""
        try:
            with self.transaction():
                self._conn().execute(
                    "INSERT INTO jobs(id, correlation_id, kind, object_id, status, data, "
                    "version, created, updated) VALUES (?,?,?,?,?,?,1,?,?)",
                    (job.id, job.correlation_id, job.kind, job.object_id, job.status.value,
                     model.to_json(job), job.created, job.updated),
                )
                self._set_revision(job, 1)
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"a job with id {job.id} already exists") from None

    def update_job(self, job: model.Job) -> None:
        """Write a job's new progress/status if nobody changed it since it was read.

        Sets ``job.updated`` to now.

        :raises Conflict: another writer changed the job since it was read.
        :raises NotFound: no such job.
        """
        with self.transaction():
            conn = self._conn()
            row = conn.execute("SELECT version FROM jobs WHERE id=?", (job.id,)).fetchone()
            if row is None:
                raise NotFound(f"no job with id {job.id}")
            current: int = row[0]
            label = f"{job.kind} {job.id}"
            if current != job.revision:
                self._stale("job", label, job.revision, current)
            job.updated = time.time()
            conn.execute(
                "UPDATE jobs SET correlation_id=?, kind=?, object_id=?, status=?, data=?, "
                "version=?, updated=? WHERE id=?",
                (job.correlation_id, job.kind, job.object_id, job.status.value,
                 model.to_json(job), current + 1, job.updated, job.id),
            )
            self._set_revision(job, current + 1)

    def get_job(self, job_id: str) -> model.Job:
        """The job with this id, at its current revision."""
        row = self._conn().execute("SELECT data, version FROM jobs WHERE id=?",
                                   (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job with id {job_id}")
        return self._load(model.Job, row[0], row[1])

    def list_jobs(self, *, status: model.JobStatus | Sequence[model.JobStatus] | None = None,
                  correlation_id: str | None = None,
                  object_id: str | None = None) -> builtins.list[model.Job]:
        """Jobs, oldest first, optionally only those matching every filter given."""
        where: builtins.list[str] = []
        args: builtins.list[Any] = []
        if status is not None:
            statuses = [status] if isinstance(status, model.JobStatus) else builtins.list(status)
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(s.value for s in statuses)
        if correlation_id is not None:
            where.append("correlation_id=?")
            args.append(correlation_id)
        if object_id is not None:
            where.append("object_id=?")
            args.append(object_id)
        sql = "SELECT data, version FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._conn().execute(sql + " ORDER BY created, id", args).fetchall()
        return [self._load(model.Job, r[0], r[1]) for r in rows]

    # ------------------------------------------------------------------- events

    def add_event(self, object_id: str, message: str, level: str = "info", *,
                  code: int | None = None, correlation_id: str | None = None) -> None:
        """Append to an object's event log (e.g. a hook script's stderr).

        :param code: the event's numeric code (oVirt's audit log codes, when assigned).
        :param correlation_id: the request or job that caused it.
        """
        with self.transaction():
            self._conn().execute(
                "INSERT INTO events(ts, object_id, level, message, code, correlation_id) "
                "VALUES (?,?,?,?,?,?)",
                (time.time(), object_id, level, message, code, correlation_id),
            )

    def events(self, object_id: str) -> builtins.list[tuple[float, str, str]]:
        """An object's event log, oldest first: (time, level, message)."""
        rows = self._conn().execute(
            "SELECT ts, level, message FROM events WHERE object_id=? ORDER BY seq",
            (object_id,),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def check(self) -> builtins.list[str]:
        """Integrity check: SQLite's own, plus every row parses as its kind."""
        problems: builtins.list[str] = []
        for (msg,) in self._conn().execute("PRAGMA integrity_check"):
            if msg != "ok":
                problems.append(f"sqlite: {msg}")
        by_kind: dict[str, type[Any]] = {v: k for k, v in _KINDS.items()}
        rows = [(kind, obj_id, data) for obj_id, kind, data in self._conn().execute(
            "SELECT id, kind, data FROM objects")]
        rows += [("job", job_id, data) for job_id, data in self._conn().execute(
            "SELECT id, data FROM jobs")]
        by_kind["job"] = model.Job
        for kind, obj_id, data in rows:
            try:
                model.from_json(data, by_kind[kind])
            except Exception as exc:  # noqa: BLE001 - report every unreadable row
                problems.append(f"{kind} {obj_id}: {exc}")
        return problems
