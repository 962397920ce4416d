"""The state store on PostgreSQL: SQLAlchemy 2's engine and pool, psycopg 3, Alembic.

Every operation is the core's (:class:`virtplane.state.StateStore`); this module
and :mod:`~virtplane_state_postgresql.pool` (the connections, a base class of the
store) supply the rest:

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
import os
import threading
import weakref
from typing import Any, ClassVar

from sqlalchemy import exc as sa_exc

from virtplane.errors import StateError
from virtplane.state import SCHEMA_VERSION, StateStore, redact
from virtplane_state_postgresql.pool import CONNECT_TIMEOUT as CONNECT_TIMEOUT
from virtplane_state_postgresql.pool import POOL_SIZE as POOL_SIZE
from virtplane_state_postgresql.pool import PooledStatements, _release, log
from virtplane_state_postgresql.pool import engine_url as engine_url
from virtplane_state_postgresql.pool import make_engine as make_engine

#: objects a store adds before it runs ANALYZE (then: as many as the table holds)
ANALYZE_GROWTH = 1000


class PostgresStore(PooledStatements, StateStore):
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
