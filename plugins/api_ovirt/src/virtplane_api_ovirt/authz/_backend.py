"""Where the authz tables live: the SQLite file, or the shared PostgreSQL database.

:class:`~virtplane_api_ovirt.authz.store.AuthzStore` writes its SQL once, with
``?`` parameters and table names in braces (``{users}``); a backend turns that
into its own dialect and supplies the few things that differ:

======================  ==================================  =====================================
                        :class:`SqliteBackend`              :class:`PostgresBackend`
======================  ==================================  =====================================
where                   ``api-users.db`` beside the state   the state store's database, tables
                        (mode 0600, folder 0700)            ``authz_users`` ... ``authz_meta``
parameters              ``?``                               ``%s``
write transaction       ``BEGIN IMMEDIATE``                 ``BEGIN`` (+ ``FOR UPDATE`` reads)
"changed since my       ``PRAGMA data_version`` (moves on   ``authz_meta.version``, bumped in
index?"                 another connection's commit)        the same transaction as every write
a duplicate             :class:`sqlite3.IntegrityError`     ``psycopg.errors.UniqueViolation``
sessions                in the API process's memory         ``authz_sessions`` (token hashes)
server gone             (a file: n/a)                       :class:`StateUnavailable`, and a new
                                                            connection at the next call
======================  ==================================  =====================================

psycopg is imported only when a PostgreSQL backend connects, so installations on
SQLite alone do not need it (the PostgreSQL state plugin brings it).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from virtplane.errors import StateError, StateUnavailable
from virtplane.state import redact

log = logging.getLogger("virtplane.api.authz")
T = TypeVar("T")

#: the SQLite file of the API's users beside a state file (and, for a PostgreSQL
#: store, the older file copied into the database once)
USERS_FILE = "api-users.db"

#: the tables' names in each backend (SQLite keeps the names its files always had)
_SQLITE_TABLES = {t: t for t in ("users", "groups", "members", "roles", "role_actions",
                                 "permissions", "sessions", "meta")}
_PG_TABLES = {t: f"authz_{t}" for t in _SQLITE_TABLES}

_SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, hash TEXT NOT NULL, "
    "created REAL NOT NULL, updated REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS groups (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
    "domain TEXT NOT NULL, external_id TEXT NOT NULL DEFAULT '', UNIQUE(name, domain))",
    "CREATE TABLE IF NOT EXISTS members (user_id TEXT NOT NULL, group_id TEXT NOT NULL, "
    "PRIMARY KEY (user_id, group_id))",
    "CREATE TABLE IF NOT EXISTS roles (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
    "description TEXT NOT NULL, administrative INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS role_actions (role_id TEXT NOT NULL, action INTEGER NOT "
    "NULL, PRIMARY KEY (role_id, action))",
    "CREATE TABLE IF NOT EXISTS permissions (id TEXT PRIMARY KEY, principal_id TEXT NOT "
    "NULL, principal_kind TEXT NOT NULL, role_id TEXT NOT NULL, object_kind TEXT NOT NULL, "
    "object_id TEXT NOT NULL, UNIQUE(principal_id, role_id, object_kind, object_id))",
)
#: columns added to the 0.1 ``users`` table (name, hash, created, updated)
_USER_COLUMNS = {"id": "TEXT", "domain": "TEXT NOT NULL DEFAULT 'internal'",
                 "external_id": "TEXT NOT NULL DEFAULT ''",
                 "failures": "INTEGER NOT NULL DEFAULT 0",
                 "locked_until": "REAL NOT NULL DEFAULT 0", "last_login": "REAL"}

_PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS authz_meta (id INTEGER PRIMARY KEY, version BIGINT NOT NULL)",
    "INSERT INTO authz_meta(id, version) VALUES (1, 0) ON CONFLICT DO NOTHING",
    "CREATE TABLE IF NOT EXISTS authz_users (name TEXT PRIMARY KEY, hash TEXT NOT NULL, "
    "created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL, "
    "id TEXT NOT NULL UNIQUE, domain TEXT NOT NULL DEFAULT 'internal', "
    "external_id TEXT NOT NULL DEFAULT '', failures INTEGER NOT NULL DEFAULT 0, "
    "locked_until DOUBLE PRECISION NOT NULL DEFAULT 0, last_login DOUBLE PRECISION)",
    "CREATE TABLE IF NOT EXISTS authz_groups (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
    "domain TEXT NOT NULL, external_id TEXT NOT NULL DEFAULT '', UNIQUE(name, domain))",
    "CREATE TABLE IF NOT EXISTS authz_members (user_id TEXT NOT NULL, group_id TEXT NOT "
    "NULL, PRIMARY KEY (user_id, group_id))",
    "CREATE TABLE IF NOT EXISTS authz_roles (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
    "description TEXT NOT NULL, administrative INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS authz_role_actions (role_id TEXT NOT NULL, action INTEGER "
    "NOT NULL, PRIMARY KEY (role_id, action))",
    "CREATE TABLE IF NOT EXISTS authz_permissions (id TEXT PRIMARY KEY, principal_id TEXT "
    "NOT NULL, principal_kind TEXT NOT NULL, role_id TEXT NOT NULL, object_kind TEXT NOT "
    "NULL, object_id TEXT NOT NULL, UNIQUE(principal_id, role_id, object_kind, object_id))",
    "CREATE INDEX IF NOT EXISTS authz_permissions_object ON authz_permissions(object_id)",
    "CREATE TABLE IF NOT EXISTS authz_sessions (token_hash TEXT PRIMARY KEY, "
    "user_name TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS authz_sessions_expires ON authz_sessions(expires)",
)
#: what _PG_SCHEMA makes last: when it exists, the schema is complete
_PG_LAST = "authz_sessions_expires"
#: ``pg_advisory_xact_lock`` key serialising schema creation and the one-time copy of
#: an older ``api-users.db`` (engines starting at once)
_SCHEMA_LOCK = 0x76706C61757468  # "vplauth"
#: what the one-time copy carries, table by table, in this column order
COPIED = {"users": ("name", "hash", "created", "updated", "id", "domain", "external_id",
                    "failures", "locked_until", "last_login"),
          "groups": ("id", "name", "domain", "external_id"),
          "members": ("user_id", "group_id"),
          "roles": ("id", "name", "description", "administrative"),
          "role_actions": ("role_id", "action"),
          "permissions": ("id", "principal_id", "principal_kind", "role_id", "object_kind",
                          "object_id")}


class Backend:
    """What :class:`AuthzStore` needs from a database (see the module doc)."""

    #: True when several engines share the tables (then sessions live there too)
    shared: ClassVar[bool] = False
    begin: ClassVar[str] = "BEGIN"
    for_update: ClassVar[str] = ""
    unique: type[Exception] = Exception
    tables: ClassVar[dict[str, str]] = _SQLITE_TABLES

    def __init__(self) -> None:
        self._sql: dict[str, str] = {}

    def sql(self, statement: str) -> str:
        """``statement`` (``?`` parameters, ``{table}`` names) in this dialect."""
        found = self._sql.get(statement)
        if found is None:
            found = self._sql[statement] = self._translate(statement.format_map(self.tables))
        return found

    def _translate(self, statement: str) -> str:
        return statement

    @property
    def name(self) -> str:
        raise NotImplementedError

    def connect(self) -> Any:
        raise NotImplementedError

    def version(self, conn: Any) -> int:
        raise NotImplementedError

    def bump(self, conn: Any) -> None:
        """Mark a write (inside its transaction) for the other connections to see."""

    def failed(self, exc: BaseException) -> BaseException | None:
        """The clear error to raise for a driver failure, or None to let it through."""
        return None

    def executemany(self, conn: Any, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        conn.executemany(self.sql(statement), list(rows))


class SqliteBackend(Backend):
    """``api-users.db``: one file per engine (what a single engine needs)."""

    begin = "BEGIN IMMEDIATE"
    unique = sqlite3.IntegrityError

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)

    @property
    def name(self) -> str:
        return str(self.path)

    def connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False,
                               isolation_level=None)
        conn.execute("PRAGMA busy_timeout=10000")
        for statement in _SQLITE_SCHEMA:
            conn.execute(statement)
        have = {row[1] for row in conn.execute("PRAGMA table_info(users)")}
        for column, decl in _USER_COLUMNS.items():
            if column not in have:
                conn.execute(f"ALTER TABLE users ADD COLUMN {column} {decl}")
        for (name,) in conn.execute("SELECT name FROM users WHERE id IS NULL").fetchall():
            conn.execute("UPDATE users SET id=? WHERE name=?", (str(uuid.uuid4()), name))
        return conn

    def version(self, conn: Any) -> int:
        return int(conn.execute("PRAGMA data_version").fetchone()[0])


class PostgresBackend(Backend):
    """The state store's PostgreSQL database, shared by every engine and CLI.

    :param url: the state location (``postgresql://...``, with its password: it is
        never shown, messages name :func:`virtplane.state.redact`'s form).
    :param legacy: an ``api-users.db`` this installation used before; its contents
        are copied in once, when the database has no user yet.
    """

    shared = True
    for_update = " FOR UPDATE"
    tables = _PG_TABLES

    def __init__(self, url: str, legacy: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        scheme, sep, rest = url.partition("://")
        self._conninfo = "postgresql://" + rest if sep else url  # drop a +driver suffix
        self.url = redact(url)
        self.legacy = Path(legacy) if legacy is not None else None
        self.unique = _psycopg().errors.UniqueViolation

    @property
    def name(self) -> str:
        return f"state store {self.url}"

    def _translate(self, statement: str) -> str:
        return statement.replace("%", "%%").replace("?", "%s")

    def connect(self) -> Any:
        psycopg = _psycopg()
        try:
            timeout = {} if "connect_timeout=" in self._conninfo else {"connect_timeout": 3}
            conn = psycopg.connect(self._conninfo, autocommit=True, prepare_threshold=None,
                                   **timeout)
        except psycopg.Error as exc:
            raise (self.failed(exc) or exc) from None
        try:
            # the tables are made once (engines starting at once wait for each other);
            # afterwards a connection only looks (a CLI command opens one each time)
            done = conn.execute(f"SELECT to_regclass('{_PG_LAST}')").fetchone()[0]
            if done is None or (self.legacy is not None and self.legacy.is_file()):
                conn.execute("BEGIN")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _PG_SCHEMA:
                    conn.execute(statement)
                self._copy_legacy(conn)
                conn.execute("COMMIT")
        except psycopg.Error as exc:
            conn.close()
            raise (self.failed(exc) or exc) from None
        return conn

    def version(self, conn: Any) -> int:
        return int(conn.execute("SELECT version FROM authz_meta WHERE id=1").fetchone()[0])

    def bump(self, conn: Any) -> None:
        conn.execute("UPDATE authz_meta SET version=version+1 WHERE id=1")

    def executemany(self, conn: Any, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        values = list(rows)
        if values:
            with conn.cursor() as cur:
                cur.executemany(self.sql(statement), values)

    def failed(self, exc: BaseException) -> BaseException | None:
        psycopg = _psycopg()
        if isinstance(exc, self.unique) or not isinstance(exc, psycopg.Error):
            return None
        text = str(exc).strip()
        message = text.splitlines()[0] if text else type(exc).__name__
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return StateUnavailable(
                f"{self.name} is unreachable ({message}): the API's users, permissions and "
                "sessions live there; nothing was written, retry when the database is back")
        return StateError(f"{self.name} failed on the API's users and permissions: "
                          f"{message}")

    def _copy_legacy(self, conn: Any) -> None:
        """Copy an older ``api-users.db`` in, once: when the database has no user yet."""
        legacy = self.legacy
        if legacy is None or not legacy.is_file():
            return
        if conn.execute("SELECT 1 FROM authz_users LIMIT 1").fetchone() is not None:
            return
        source = SqliteBackend(legacy).connect()
        try:
            counts = []
            for table, columns in COPIED.items():
                rows = source.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
                marks = ", ".join(["%s"] * len(columns))
                if rows:
                    with conn.cursor() as cur:
                        cur.executemany(f"INSERT INTO authz_{table}({', '.join(columns)}) "
                                        f"VALUES ({marks}) ON CONFLICT DO NOTHING", rows)
                counts.append(f"{len(rows)} {table}")
        finally:
            source.close()
        self.bump(conn)
        log.warning("%s had no API users: copied %s from %s (that file is no longer read)",
                    self.name, ", ".join(counts), legacy)


class Tx:
    """A connection that speaks the store's SQL (``?``, ``{table}``) in its backend's."""

    __slots__ = ("backend", "conn")

    def __init__(self, conn: Any, backend: Backend) -> None:
        self.conn = conn
        self.backend = backend

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self.backend.sql(statement), params)

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        self.backend.executemany(self.conn, statement, rows)


class Connected:
    """One connection to a backend, behind a lock, with its failures made clear: a
    dropped connection is replaced (once per call, where that is safe)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._lock = threading.RLock()
        self._conn: Any = None

    @property
    def shared(self) -> bool:
        """Whether several engines share these tables (PostgreSQL)."""
        return self.backend.shared

    def _db(self) -> Any:
        if self._conn is None:
            self._conn = self.backend.connect()
        return self._conn

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Driver failures as clear errors (:meth:`_failure`)."""
        try:
            yield
        except Exception as exc:
            err = self._failure(exc)
            if err is exc:
                raise
            raise err from None

    def _failure(self, exc: Exception) -> BaseException:
        """What to raise for ``exc``: a driver failure as a clear error (a connection
        that failed is dropped, so the next call connects again: the server may be
        back), anything else as it is."""
        err = self.backend.failed(exc)
        if err is None:
            return exc
        if isinstance(err, StateUnavailable):
            self._drop()
        return err

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close
                log.debug("closing a failed connection of %s", self.backend.name)

    def _again(self, exc: Exception, fn: Callable[[Any], T]) -> T:
        """After ``exc``: raise it as a clear error; but when the server dropped the
        connection (a restart while it was idle), run ``fn`` once more on a new one."""
        err = self._failure(exc)
        if err is exc:
            raise exc
        if not isinstance(err, StateUnavailable):
            raise err from None
        with self._guard():
            return fn(self._db())

    def _begin(self, conn: Any) -> Any:
        conn.execute(self.backend.begin)
        return conn

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement outside a transaction (``?`` parameters, ``{table}`` names);
        its rows (none for a statement that returns none). Only for statements that
        may run twice (a read, a delete, an insert of a new key): after a dropped
        connection it runs once more on a new one."""
        def run(conn: Any) -> list[tuple[Any, ...]]:
            cur = Tx(conn, self.backend).execute(statement, params)
            return list(cur.fetchall()) if cur.description else []

        with self._lock:
            try:
                return run(self._db())
            except Exception as exc:  # noqa: BLE001 - _again raises it, or runs anew
                return self._again(exc, run)

    def close(self) -> None:
        with self._lock:
            self._drop()


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # the PostgreSQL state plugin depends on it
        raise StateError(f"the API's users on PostgreSQL need psycopg 3 ({exc}): install "
                         "virtplane-state-postgresql") from None
    return psycopg
