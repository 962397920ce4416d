"""The state store on PostgreSQL: SQLAlchemy 2's engine and pool, psycopg 3, Alembic.

Every operation is the core's (:class:`virtplane.state.StateStore`); this module
supplies the connection handling:

- Connections come from SQLAlchemy's pool in autocommit mode; statements go to
  libpq through psycopg, prepared once per connection
  (:mod:`~virtplane_state_postgresql.fastpath`; see :meth:`PostgresStore._run` for
  why). A statement outside a transaction borrows a connection for that statement
  only; :meth:`transaction` borrows one for its whole length and sends
  ``BEGIN``/``COMMIT`` itself. So no connection sits idle inside a transaction, and
  nothing depends on session state but the prepared statements: no advisory locks,
  no ``SET``. Behind a transaction-mode pooler, PgBouncer 1.21 or newer with
  ``max_prepared_statements`` set keeps protocol-level prepared statements apart
  per client; a statement the server no longer knows is prepared again (outside a
  transaction).
- Writes are compare-and-set on each row; :meth:`modify` reads with
  ``FOR UPDATE`` and :meth:`fenced` reads its lease row ``FOR SHARE``.
- Failures to reach the server become :class:`~virtplane.errors.StateUnavailable`
  within the connect timeout (3 s unless the URL says ``connect_timeout``); a
  connection that died while the server was away is replaced on the next call, so
  the store recovers on its own when the server is back.
- The schema is Alembic's (``migrations/``): an empty database gets it when first
  opened; an older one is refused until ``virtplane state migrate`` upgrades it,
  because several engines of different versions may share the database.
"""

from __future__ import annotations

import builtins
import logging
import os
import re
import threading
import weakref
from collections.abc import Sequence
from typing import Any, ClassVar

import psycopg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from virtplane.errors import StateError, StateUnavailable
from virtplane.state import SCHEMA_VERSION, Params, Row, StateStore, redact
from virtplane_state_postgresql import fastpath

log = logging.getLogger("virtplane.state.postgresql")


#: seconds a connection attempt may take before the store reports the server down
CONNECT_TIMEOUT = 3

#: connections the pool keeps (SQLAlchemy's ``pool_size``), and as many again that a
#: store keeps checked out, idle, for its next statements (:meth:`PostgresStore._borrow`)
POOL_SIZE = 8

#: objects a store adds before it runs ANALYZE (then: as many as the table holds)
ANALYZE_GROWTH = 1000

_PYFORMAT: dict[str, str] = {}
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def _pyformat(sql: str) -> str:
    """The core's ``:name`` statement in psycopg's ``%(name)s`` style (converted once)."""
    query = _PYFORMAT.get(sql)
    if query is None:
        query = _PYFORMAT[sql] = _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))
    return query


def engine_url(location: str | os.PathLike[str]) -> sa.URL:
    """The SQLAlchemy URL for a ``postgresql://`` location, on the psycopg 3 driver."""
    try:
        url = sa.make_url(os.fspath(location))
    except sa_exc.ArgumentError as exc:
        raise StateError(f"state URL {redact(location)!r} is not valid: {exc}") from None
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise StateError(f"state URL {redact(location)!r} is not a postgresql:// URL")
    return url.set(drivername="postgresql+psycopg")


def make_engine(location: str | os.PathLike[str], **kwargs: Any) -> sa.Engine:
    """An engine with a bounded connect timeout and autocommit connections."""
    url = engine_url(location)
    # the store prepares its statements itself (fastpath); psycopg's own automatic
    # preparing would DEALLOCATE ALL of them on every ROLLBACK it sends
    connect_args: dict[str, Any] = {"prepare_threshold": None}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT",
                               "pool_reset_on_return": None, "pool_size": POOL_SIZE,
                               "max_overflow": 24, "pool_timeout": 10,
                               "pool_use_lifo": True, "connect_args": connect_args}
    options.update(kwargs)
    return sa.create_engine(url, **options)


class PostgresStore(StateStore):
    """The state store in a PostgreSQL database; see the module doc.

    :param location: ``postgresql://user[:password]@host[:port]/database[?options]``
        (libpq options such as ``connect_timeout``, ``sslmode`` or
        ``options=-csearch_path=...`` go in the query string).
    :param readonly: refuse every write (reads work).
    :raises StateUnavailable: the server cannot be reached.
    :raises StateError: the database holds a schema this virtplane cannot use.
    """

    backend: ClassVar[str] = "postgresql"
    _NOW: ClassVar[str] = "CAST(EXTRACT(EPOCH FROM statement_timestamp()) AS DOUBLE PRECISION)"
    _FOR_UPDATE: ClassVar[str] = " FOR UPDATE"
    _FOR_SHARE: ClassVar[str] = " FOR SHARE"
    #: a state change and its event in one statement, one round trip (a
    #: data-modifying ``WITH``), instead of a transaction's three
    _EVENT_WITH_UPDATE: ClassVar[bool] = True
    #: objects added since this store's last ANALYZE, and how many call for the next
    _grown: int = 0
    _analyze_after: int = ANALYZE_GROWTH
    #: :meth:`data_version`: the snapshot the last call saw, and how often it changed
    _watch_marker: str = ""
    _watch_ticks: int = 0

    def __init__(self, location: str | os.PathLike[str], *, readonly: bool | None = None,
                 strict: bool = True) -> None:
        self.location = redact(location)
        self.readonly = bool(readonly)
        self.strict = strict
        self._local = threading.local()
        self._watch_lock = threading.Lock()
        self._engine = make_engine(location)
        self._idle: builtins.list[Any] = []
        weakref.finalize(self, _release, self._idle)
        try:
            version = self.schema_version()
            if version == 0 and not self.readonly:
                self._upgrade_schema()
                version = self.schema_version()
            self._check_version(version)
        except BaseException:
            self._engine.dispose()
            raise

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StateError(
                f"state store {self.location} has schema version {version}, written by a "
                f"newer virtplane; this virtplane understands up to version "
                f"{SCHEMA_VERSION}: upgrade virtplane")
        if version < SCHEMA_VERSION:
            raise StateError(
                f"state store {self.location} has schema version {version} and needs "
                f"migrating to {SCHEMA_VERSION}: stop the engines of the old version and run "
                f"'virtplane state migrate {self.location}'")

    # ----------------------------------------------------------------------- schema

    def schema_version(self) -> int:
        """0 for a database without virtplane's tables."""
        rows = self._rows("SELECT to_regclass('meta') IS NOT NULL")
        if not rows[0][0]:
            return 0
        return super().schema_version()

    def _upgrade_schema(self) -> tuple[int, int]:
        from virtplane_state_postgresql import migrations

        before = self.schema_version()
        try:
            with self._engine.connect() as conn:
                tx_conn = conn.execution_options(isolation_level="READ COMMITTED")
                migrations.upgrade(tx_conn)
        except sa_exc.DBAPIError as exc:
            raise self._failed(exc) from None
        after = self.schema_version()
        if before != after:
            log.info("state store %s: schema version %d -> %d", self.location, before, after)
        return before, after

    def migrate(self) -> tuple[int, int]:
        return self._upgrade_schema()

    @classmethod
    def upgrade(cls, location: str | os.PathLike[str]) -> tuple[int, int]:
        """Alembic upgrade to head without opening the store (which refuses old schemas)."""
        store = cls.__new__(cls, location)
        store.location = redact(location)
        store.readonly = False
        store.strict = True
        store._local = threading.local()
        store._engine = make_engine(location)
        store._idle = []
        try:
            before, after = store._upgrade_schema()
            store._check_version(after)
            return before, after
        finally:
            store._engine.dispose()

    # ------------------------------------------------------------------ change watch

    def data_version(self) -> int:
        """A number that changes whenever a write may have been committed since the
        previous call, so a cache can skip re-reading an unchanged store (as the SQLite
        store's ``data_version``, ``PRAGMA data_version``, does); one small statement,
        whatever the store holds.

        It is the server's current snapshot (``pg_current_snapshot()``: the oldest
        transaction still running, the next transaction id, the ones running in
        between), counted each time it differs from the one the previous call saw. A
        transaction that writes gets an id; when it commits (or rolls back) it leaves
        the running ones, or moves the next id on if it began after the snapshot was
        taken: either way no later snapshot equals the earlier one. So an unchanged
        number means that no transaction that wrote ended between the two calls:
        every commit is seen, a delete's too, whichever engine, CLI or connection
        made it, this store's included. Read-only transactions get no id and move
        nothing.

        It may change without a change to what a caller reads: the snapshot is the
        server's, so another database's writes, lease renewals and event rows move it
        too. Then the caller reads what it watches (nothing is missed; the cost is what
        it was before). Inside a transaction of this thread it reads that transaction's
        snapshot (at READ COMMITTED, the statement's: current).
        """
        marker = self._rows("SELECT CAST(pg_current_snapshot() AS text)")[0][0]
        with self._watch_lock:
            if marker != self._watch_marker:
                self._watch_marker = marker
                self._watch_ticks += 1
            return self._watch_ticks

    def _clock(self) -> dict[str, Any]:
        """Nothing: the server's clock is in the SQL (:data:`_NOW`)."""
        return {}

    def _after_copy(self) -> None:
        self._rows("SELECT setval(pg_get_serial_sequence('events', 'seq'), "
                   "GREATEST(COALESCE(MAX(seq), 0), 1), MAX(seq) IS NOT NULL) FROM events")
        # the tables were empty a moment ago: plans made on those statistics scan them
        self._count("ANALYZE objects, jobs, events, leases")

    # ------------------------------------------------------------------- statistics

    def add(self, obj: Any) -> None:
        """As :meth:`StateStore.add`; and once this store has added as many objects as
        the table had at its last ANALYZE (at least :data:`ANALYZE_GROWTH`), it runs
        ANALYZE itself (see :meth:`_analyze`)."""
        super().add(obj)
        self._grown += 1
        if self._grown >= self._analyze_after and not self.in_transaction():
            self._analyze()

    def _commit(self) -> None:
        self._end(b"COMMIT")
        if self._grown >= self._analyze_after:
            self._analyze()

    def _analyze(self) -> None:
        """ANALYZE ``objects`` after it (at least) doubled through this store.

        PostgreSQL plans a prepared statement once per connection, on the table's
        statistics then, and keeps the plan until they change. Statistics of a table
        that was (nearly) empty give plans that scan it: the row-locking lookup of
        :meth:`~virtplane.state.StateStore.modify` read every row of the kind through
        the ``(kind, cluster_id)`` index once 10,000 VMs had been added to an empty
        store, until autovacuum's ANALYZE (up to a minute after the growth, when its
        naptime comes round). ANALYZE of 10,000 objects takes tens of ms; it happens
        at 1,000, 2,000, 4,000 ... added objects, and never fails the write that
        triggered it.
        """
        self._grown = 0
        try:
            self._count("ANALYZE objects")
            rows = self._rows("SELECT reltuples FROM pg_class WHERE oid = "
                              "to_regclass('objects')")
        except StateError as exc:
            log.debug("state store %s: ANALYZE objects failed: %s", self.location, exc)
            return
        size = int(rows[0][0]) if rows and rows[0][0] is not None else 0
        self._analyze_after = max(ANALYZE_GROWTH, size)

    # ------------------------------------------------------------------- primitives

    def _failed(self, exc: BaseException) -> StateError:
        """A clear error for a driver failure (psycopg's, or SQLAlchemy's wrapping one
        when the pool could not connect), never a traceback."""
        orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
        message = str(orig).strip().splitlines()[0] if str(orig).strip() else repr(orig)
        dead = isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
        if dead or isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError):
            return StateUnavailable(
                f"state store {self.location} is unreachable ({message}); nothing was "
                "written: retry when the database is back")
        sqlstate = getattr(orig, "sqlstate", None) or ""
        if sqlstate.startswith("40"):
            err = StateError(f"state store {self.location} aborted the transaction "
                             f"({message}): retry the operation")
            err.exit_code = 75
            return err
        return StateError(f"state store {self.location} failed: {message}")

    def _borrow(self) -> Any:
        """A pooled DBAPI connection (SQLAlchemy's proxy around a psycopg connection).

        The last ones given back are kept checked out, idle, and taken first
        (:meth:`_give_back`): SQLAlchemy's checkout and checkin (events, a weakref,
        its queue's lock) cost about 7 us per statement, a tenth of a lookup.
        """
        if self._idle:
            try:
                return self._idle.pop()
            except IndexError:  # another thread took the last idle one meanwhile
                log.debug("state store %s: no idle connection left", self.location)
        try:
            return self._engine.raw_connection()
        except (sa_exc.DBAPIError, psycopg.Error) as exc:
            raise self._failed(exc) from None

    def _give_back(self, proxy: Any) -> None:
        """A borrowed connection, healthy and outside a transaction, is free again."""
        idle = self._idle
        if len(idle) < POOL_SIZE:
            idle.append(proxy)
        else:
            proxy.close()

    def _discard(self, proxy: Any) -> None:
        """Drop a dead connection, and the idle ones pooled with it: a server that went
        away took them all, and each would otherwise fail once more."""
        proxy.invalidate()
        _release(self._idle, invalidate=True)
        self._engine.dispose(close=False)

    def _run(self, sql: str, params: Any, many: bool = False) -> tuple[builtins.list[Row], int]:
        """Run one statement: (its rows, how many rows it changed); inside this thread's
        transaction, else on a borrowed connection.

        Statements go to libpq through psycopg (:mod:`~virtplane_state_postgresql.fastpath`:
        prepared once per connection; SQLAlchemy's execution layer and psycopg's cursor
        layer each cost more per statement than the loopback round trip itself; the
        pool, URLs and Alembic are SQLAlchemy's); a bulk copy goes through psycopg's
        ``executemany``. A borrowed connection that turns out dead (the server
        restarted) is replaced and the statement retried once. Outside a transaction
        a statement is a read or a write that is a whole transaction by itself; a dead
        pooled connection fails when the statement is sent, before the server saw it,
        so the retry does not write twice (a connection that broke while the server
        was answering could have committed: then the retry's own compare-and-set
        reports AlreadyExists or Conflict; it never writes twice).
        """
        proxy = getattr(self._local, "conn", None)
        if proxy is not None:
            if not self._local.begun:
                return self._first(sql, params, many)
            try:
                if many:
                    proxy.driver_connection.cursor().executemany(_pyformat(sql), params)
                    return [], 0
                return fastpath.execute(proxy.driver_connection, sql, params)
            except psycopg.Error as exc:
                raise self._failed(exc) from None
        for attempt in (1, 2):
            proxy = self._borrow()
            conn = proxy.driver_connection
            try:
                if many:
                    conn.cursor().executemany(_pyformat(sql), params)
                    result: tuple[builtins.list[Row], int] = ([], 0)
                else:
                    result = fastpath.execute(conn, sql, params)
            except psycopg.Error as exc:
                broken = conn.broken
                if broken:
                    self._discard(proxy)
                else:
                    self._settle(proxy)
                if attempt == 2 or not broken:
                    raise self._failed(exc) from None
                log.info("state store %s: a pooled connection was dead; retrying once",
                         self.location)
                continue
            if conn.pgconn.transaction_status == _IDLE:
                self._give_back(proxy)
            else:  # the statement was BEGIN (tests do that): nothing may share it
                self._settle(proxy)
            return result
        raise AssertionError("unreachable")

    def _settle(self, proxy: Any) -> None:
        """Give back a connection a statement failed on, or left inside a transaction:
        rolled back first if it is in one, dropped if even that fails."""
        conn = proxy.driver_connection
        if conn.pgconn.transaction_status != _IDLE:
            try:
                fastpath.command(conn, b"ROLLBACK")
            except psycopg.Error:
                self._discard(proxy)
                return
        self._give_back(proxy)

    def _rows(self, sql: str, params: Params | None = None) -> builtins.list[Row]:
        return self._run(sql, params or {})[0]

    def _count(self, sql: str, params: Params | None = None) -> int:
        return self._run(sql, params or {})[1]

    def _many(self, sql: str, params: Sequence[Params]) -> None:
        if params:
            self._run(sql, builtins.list(params), many=True)

    def _begin(self) -> None:
        """Borrow the transaction's connection; ``BEGIN`` goes with its first statement,
        in the same round trip (:meth:`_first`), and a transaction without statements
        sends nothing at all."""
        self._local.conn = self._borrow()
        self._local.begun = False

    def _first(self, sql: str, params: Any, many: bool) -> tuple[builtins.list[Row], int]:
        """The transaction's first statement, with its ``BEGIN``. A connection found
        dead is replaced and both sent again, once: a transaction that was cut off
        never committed."""
        for attempt in (1, 2):
            proxy = self._local.conn
            if proxy is _LOST:
                raise StateUnavailable(
                    f"state store {self.location} is unreachable (its connection was "
                    "lost and no new one could be made); nothing was written: retry when "
                    "the database is back")
            conn = proxy.driver_connection
            try:
                if many:
                    fastpath.command(conn, b"BEGIN")
                    self._local.begun = True
                    conn.cursor().executemany(_pyformat(sql), params)
                    return [], 0
                result = fastpath.execute(conn, sql, params, begin=True)
                self._local.begun = True
                return result
            except psycopg.Error as exc:
                if conn.broken and attempt == 1:
                    self._local.conn = _LOST  # until another is borrowed, if one can be
                    self._discard(proxy)
                    self._local.conn = self._borrow()
                    self._local.begun = False
                    log.info("state store %s: a pooled connection was dead; retrying once",
                             self.location)
                    continue
                self._local.begun = conn.broken or \
                    conn.pgconn.transaction_status != _IDLE
                raise self._failed(exc) from None
        raise AssertionError("unreachable")

    def _end(self, statement: bytes) -> None:
        proxy = self._local.conn
        self._local.conn = None
        if not self._local.begun:  # nothing was sent: nothing to end
            if proxy is not _LOST:
                self._settle(proxy)
            return
        try:
            fastpath.command(proxy.driver_connection, statement)
        except psycopg.Error as exc:
            self._discard(proxy)
            if statement == b"COMMIT":
                raise self._failed(exc) from None
            # a rollback on a dead connection: the server dropped the transaction
            log.info("state store %s: rollback failed (%s); the connection is discarded",
                     self.location, exc)
            return
        if proxy.driver_connection.pgconn.transaction_status == _IDLE:
            self._give_back(proxy)
        else:
            self._settle(proxy)

    def _rollback(self) -> None:
        self._end(b"ROLLBACK")

    def close(self) -> None:
        """Return this thread's connection and close the pool's idle ones (a closed
        Manager must not keep server connections until it is garbage collected: the
        server's ``max_connections`` is shared by every client). The store stays usable;
        it reconnects."""
        proxy = getattr(self._local, "conn", None)
        if proxy is not None:
            if proxy is not _LOST:
                proxy.close()
            self._local.conn = None
        _release(self._idle)
        self._engine.dispose()

    def dispose(self) -> None:
        """Close every pooled connection (the store stays usable; it reconnects)."""
        _release(self._idle)
        self._engine.dispose()


_IDLE = psycopg.pq.TransactionStatus.IDLE

#: a transaction's connection when it died and no other could be had
_LOST: Any = object()


def _release(idle: builtins.list[Any], *, invalidate: bool = False) -> None:
    """Hand a store's idle connections back to its pool (or drop them: ``invalidate``);
    also what a store that is garbage collected unclosed does."""
    while idle:
        try:
            proxy = idle.pop()
        except IndexError:
            return
        try:
            if invalidate:
                proxy.invalidate()
            else:
                proxy.close()
        except Exception as exc:  # noqa: BLE001 - a connection that fails to close is gone
            log.debug("closing an idle connection failed: %s", exc)
