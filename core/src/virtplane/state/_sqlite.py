"""The embedded backend: one SQLite file, through the standard library's sqlite3.

Each object is stored as its cattrs JSON in one row, keyed by its UUID, with its
kind and name indexed. Writes happen in transactions (``BEGIN IMMEDIATE``; WAL
journal; ``synchronous=NORMAL``, which in WAL mode survives a killed process; only
a power loss can drop the last commits, never corrupt the file), so a process
killed in the middle of an operation leaves the previous consistent state behind.

Why not SQLAlchemy here, as for PostgreSQL: importing it costs about 210 ms, and
every command that opens the store (``virtplane dc list`` takes 125 ms in all)
would pay it; sqlite3 costs 6 ms. The schema below and the Alembic scripts of
``virtplane-state-postgresql`` describe the same tables; a test keeps them equal.

The file records its schema version in ``meta``; a file written by a newer
virtplane is refused and an older one is migrated in place, in one transaction.
"""

from __future__ import annotations

import builtins
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Sequence
from typing import ClassVar

from virtplane.errors import StateError
from virtplane.state._base import SCHEMA_VERSION, Params, Row, StateStore, log
from virtplane.state._location import path_of

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

_LEASES_TABLE = (
    """CREATE TABLE leases (
        resource TEXT PRIMARY KEY,
        holder TEXT,
        epoch INTEGER NOT NULL,
        expires REAL NOT NULL,
        acquired REAL NOT NULL
    )""",
)

#: which engine runs a job (several engines share a server store; recovery fails only
#: a dead engine's jobs)
_JOBS_ENGINE = ("ALTER TABLE jobs ADD COLUMN engine TEXT",)

#: VMs and hosts by cluster, schema 4 and 5 (an expression index, replaced in 6)
_CLUSTER_INDEX = ("CREATE INDEX objects_cluster ON objects(kind, "
                  "json_extract(data, '$.cluster_id'))",)

#: VMs and hosts by cluster (a permission on a cluster lists its VMs through it): the
#: ``cluster_id`` the store writes with every row (NULL for kinds without one)
_CLUSTER_COLUMN = (
    "ALTER TABLE objects ADD COLUMN cluster_id TEXT",
    "CREATE INDEX objects_cluster ON objects(kind, cluster_id)",
)

#: schema 5 to 6: the column, filled from the JSON, instead of the expression index
_CLUSTER_TO_COLUMN = (
    "DROP INDEX objects_cluster",
    _CLUSTER_COLUMN[0],
    "UPDATE objects SET cluster_id = json_extract(data, '$.cluster_id') "
    "WHERE json_type(data, '$.cluster_id') = 'text'",
    _CLUSTER_COLUMN[1],
)

#: what an object belongs to (a VM's images and snapshots, a template's images): the
#: ``owner_id`` the store writes with every row (see ``_owner_of``; NULL for kinds and
#: objects without an owner, which the partial index leaves out)
_OWNER_COLUMN = (
    "ALTER TABLE objects ADD COLUMN owner_id TEXT",
    "CREATE INDEX objects_owner ON objects(kind, owner_id) WHERE owner_id IS NOT NULL",
)

_UUID_GLOB = "-".join("[0-9a-f]" * n for n in (8, 4, 4, 4, 12))

#: schema 6 to 7: the column, filled from the JSON as ``_owner_of`` reads it: a
#: snapshot's ``vm_id``; an image's ``owner`` (``vm:<id>``, ``template:<id>``), or for
#: an image stored before owners were recorded the VM its description names (``<vm
#: id>/<disk>``, no alias), which is the owner the model derives for it
_OWNER_FILL = (
    _OWNER_COLUMN[0],
    "UPDATE objects SET owner_id = NULLIF(json_extract(data, '$.vm_id'), '') "
    "WHERE kind = 'snapshot' AND json_type(data, '$.vm_id') = 'text'",
    "UPDATE objects SET owner_id = CASE "
    "WHEN json_extract(data, '$.owner') GLOB 'vm:?*' "
    "THEN substr(json_extract(data, '$.owner'), 4) "
    "WHEN json_extract(data, '$.owner') GLOB 'template:?*' "
    "THEN substr(json_extract(data, '$.owner'), 10) END "
    "WHERE kind = 'image' AND json_type(data, '$.owner') = 'text'",
    "UPDATE objects SET owner_id = substr(json_extract(data, '$.description'), 1, 36) "
    "WHERE kind = 'image' AND json_type(data, '$.owner') IS NULL "
    "AND coalesce(json_extract(data, '$.alias'), '') = '' "
    f"AND json_extract(data, '$.description') GLOB '{_UUID_GLOB}/*'",
    _OWNER_COLUMN[1],
)

#: a fresh file at SCHEMA_VERSION (one statement each: ``executescript`` would commit)
SCHEMA: tuple[str, ...] = (
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
    *_LEASES_TABLE,
    *_JOBS_ENGINE,
    *_CLUSTER_COLUMN,
    *_OWNER_COLUMN,
)

#: from version N to N+1: the statements, run in the same transaction as the check
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        # every existing row counts as written once
        "ALTER TABLE objects ADD COLUMN version INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE events ADD COLUMN code INTEGER",
        "ALTER TABLE events ADD COLUMN correlation_id TEXT",
        "CREATE INDEX events_correlation ON events(correlation_id)",
        *_JOBS_TABLE,
    ),
    2: _LEASES_TABLE,
    3: _CLUSTER_INDEX,
    4: _JOBS_ENGINE,
    5: _CLUSTER_TO_COLUMN,
    6: _OWNER_FILL,
}


class SQLiteStore(StateStore):
    """SQLite-backed store, safe for several writers (threads and processes).

    :param location: the database file, or ``sqlite:///path``. When missing, it is
        created 0600 (it holds connection details and console data) and so is its
        folder (0700).
    :param readonly: open the file read-only; reads work, the first write raises
        StateError. ``None`` (the default) opens read-only exactly when the file
        exists and is not writable, so that a read-only state file still serves
        read-only commands.
    :raises StateError: the folder cannot be created, the file is not a state store
        (not SQLite, damaged, or written by a newer virtplane) or cannot be opened.
    """

    backend: ClassVar[str] = "sqlite"

    def __init__(self, location: str | os.PathLike[str], *, readonly: bool | None = None,
                 strict: bool = True) -> None:
        self.path = path_of(location)
        #: the schema version found when opened (0: a new file)
        self.migrated_from = 0
        self.location = str(self.path)
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

    # ----------------------------------------------------------------------- schema

    def _open_schema(self) -> None:
        """Create, check or migrate the schema, under the write lock when writable.

        Holding the lock makes concurrent first opens and migrations safe: the second
        opener sees the first one's result.
        """
        self._conn()  # a file SQLite cannot open is "unreadable", not "cannot be written"
        if self.readonly:
            version = self._file_version()
            if version is None:
                raise StateError(f"state store {self.path} is empty and read-only")
            self._check_version(version)
            if version < SCHEMA_VERSION:
                raise StateError(
                    f"state store {self.path} has schema version {version} and needs "
                    f"migrating to {SCHEMA_VERSION}, but it is read-only: open it once "
                    "with write access")
            self.migrated_from = version
            return
        self.migrated_from = self.migrate()[0]

    @classmethod
    def upgrade(cls, location: str | os.PathLike[str]) -> tuple[int, int]:
        """Opening the file writable migrates it; report what it was before."""
        store = cls(location, readonly=False)
        store.close()
        return store.migrated_from, SCHEMA_VERSION

    def migrate(self) -> tuple[int, int]:
        """Create the schema in an empty file, or migrate an older one, in place."""
        with self.transaction():
            conn = self._conn()
            version = self._file_version()
            if version is None:
                for stmt in SCHEMA:
                    conn.execute(stmt)
                conn.execute("INSERT INTO meta(key, value) VALUES ('schema', ?)",
                             (str(SCHEMA_VERSION),))
                return 0, SCHEMA_VERSION
            self._check_version(version)
            if version < SCHEMA_VERSION:
                self._migrate(conn, version)
            return version, SCHEMA_VERSION

    def _file_version(self) -> int | None:
        """The file's schema version; None for an empty database."""
        conn = self._conn()
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return None
        if "meta" not in tables or "objects" not in tables:
            raise StateError(f"state store {self.path} is an SQLite database but not a "
                             f"virtplane state store (tables: {', '.join(sorted(tables))})")
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        try:
            version = int(row[0])
        except (TypeError, ValueError):
            version = 0
        if version < 1:  # what this virtplane wrote is 1 or more
            found = "none" if row is None else f"{row[0]!r:.40}"
            raise StateError(f"state store {self.path} has no valid schema version "
                             f"(found {found}): restore it from a backup")
        return version

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
            for stmt in MIGRATIONS[version]:
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

    # ------------------------------------------------------------------- primitives

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
        return conn

    def _rows(self, sql: str, params: Params | None = None) -> builtins.list[Row]:
        try:
            return self._conn().execute(sql, params or {}).fetchall()
        except sqlite3.OperationalError as exc:
            raise self._failed(exc) from None

    def _count(self, sql: str, params: Params | None = None) -> int:
        try:
            return self._conn().execute(sql, params or {}).rowcount
        except sqlite3.OperationalError as exc:
            raise self._failed(exc) from None

    def _many(self, sql: str, params: Sequence[Params]) -> None:
        try:
            self._conn().executemany(sql, params)
        except sqlite3.OperationalError as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: sqlite3.OperationalError) -> StateError:
        if "readonly" in str(exc):
            return StateError(f"state store {self.path} is read-only: {exc}")
        return StateError(f"state store {self.path} failed: {exc}")

    def _begin(self) -> None:
        try:
            self._conn().execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StateError(f"state store {self.path} cannot be written: {exc}") from None

    def _commit(self) -> None:
        self._conn().execute("COMMIT")

    def _rollback(self) -> None:
        self._conn().execute("ROLLBACK")

    def close(self) -> None:
        """Close this thread's connection (other threads close their own)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def schema_version(self) -> int:
        return self._file_version() or 0

    def check(self) -> builtins.list[str]:
        """Integrity check: SQLite's own, plus every row parses as its kind."""
        problems = [f"sqlite: {msg}" for (msg,) in self._conn().execute(
            "PRAGMA integrity_check") if msg != "ok"]
        return problems + self._check_rows()

    def data_version(self) -> int:
        """Changes whenever another connection committed to the file (SQLite's
        ``PRAGMA data_version``): a cache can skip re-reading an unchanged store."""
        return int(self._conn().execute("PRAGMA data_version").fetchone()[0])
