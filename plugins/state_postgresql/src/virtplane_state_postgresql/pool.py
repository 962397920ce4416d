"""How the PostgreSQL store reaches the server: SQLAlchemy's pool, psycopg, one
statement at a time or a transaction's worth (see :mod:`virtplane_state_postgresql.store`
for the design).

:class:`PooledStatements` supplies the primitives the core's
:class:`~virtplane.state.StateStore` runs on (``_rows``, ``_count``, ``_many``,
``_begin``, ``_rollback``, ``_end``; ``close``, ``dispose``) and turns driver
failures into clear errors; the store class adds its schema handling on top.
"""

from __future__ import annotations

import builtins
import logging
import os
import re
import threading
from collections.abc import Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from virtplane.errors import StateError, StateUnavailable
from virtplane.state import Params, Row, redact
from virtplane_state_postgresql import fastpath

log = logging.getLogger("virtplane.state.postgresql")


#: seconds a connection attempt may take before the store reports the server down
CONNECT_TIMEOUT = 3

#: connections the pool keeps (SQLAlchemy's ``pool_size``), and as many again that a
#: store keeps checked out, idle, for its next statements (:meth:`PostgresStore._borrow`)
POOL_SIZE = 8


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


class PooledStatements:
    """The connection handling of :class:`~virtplane_state_postgresql.store.PostgresStore`
    (a base class of it; it sets these attributes)."""

    location: str
    _local: threading.local
    _engine: sa.Engine
    _idle: builtins.list[Any]

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
