"""One statement, straight through libpq: named prepared statements, text values.

The store's statements are a fixed set written once in the core, each run many
times. psycopg's cursor layer (adapters, row makers, prepare bookkeeping, the
generator protocol) costs about as much Python per statement as the loopback
round trip itself; this module keeps what the store needs of it and nothing more:

- each statement is converted once from ``:name`` parameters to ``$n`` and
  prepared once per connection (``PQprepare``), with its parameter types left to
  the server, which infers each from where it is used, as it does for a literal;
- values go as text (``str``, ``int``, ``float``, ``bool``, ``None``), results
  come back as text and are decoded by their column type: integers, floats and
  booleans as Python numbers and booleans, everything else as ``str`` (UTF-8), by
  psycopg's compiled loaders, a whole result at a time (:data:`_LOADERS`);
- errors are psycopg's own exception classes (:func:`psycopg.errors.error_from_result`),
  so callers handle them as they handle psycopg's;
- the answer is awaited by polling the socket for up to :data:`SPIN` seconds, giving
  other threads their turn between polls, and only then in ``select``
  (:func:`_await`). A thread that sleeps in the kernel for the answer of a
  statement that takes the server tens of microseconds waits as long again to be
  woken, on a virtual machine more: on a 2-vCPU VM a ``SELECT 1`` round trip
  took 70-80 us that way and 28-30 us polled, for less CPU time, not more (the
  sleep and the wake-up cost the client 30-38 us of CPU; the polls 28).

Bulk copies (``executemany``) and DDL keep the ordinary psycopg path.
"""

from __future__ import annotations

import logging
import os
import re
import select
import threading
from collections.abc import Mapping, Sequence
from time import perf_counter
from typing import Any, NamedTuple

from psycopg import OperationalError, errors, pq
from psycopg.adapt import AdaptersMap, Transformer
from psycopg.types.bool import BoolLoader
from psycopg.types.numeric import FloatLoader, IntLoader
from psycopg.types.string import TextLoader

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

#: result column type OID -> psycopg loader of its text form (OID 0: every other type)
_DECODE: dict[int, type[Any]] = {
    0: TextLoader,  # text, varchar, name, and the text form of any other type
    16: BoolLoader,
    20: IntLoader, 21: IntLoader, 23: IntLoader,  # int8, int2, int4
    700: FloatLoader, 701: FloatLoader, 1700: FloatLoader,  # float4, float8, numeric
}


class _Context:
    """What a psycopg Transformer loads with: only :data:`_DECODE`'s loaders (the C
    ones of psycopg's binary package when installed), and no connection, so text is
    UTF-8 whatever the session's ``client_encoding``."""

    adapters = AdaptersMap()
    connection = None


for _oid, _loader in _DECODE.items():
    _Context.adapters.register_loader(_oid, _loader)
_LOADERS = _Context()

log = logging.getLogger("virtplane.state.postgresql")
_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
_TUPLES = pq.ExecStatus.TUPLES_OK
_FATAL = pq.ExecStatus.FATAL_ERROR
_SYNC = pq.ExecStatus.PIPELINE_SYNC
#: SQLSTATE invalid_sql_statement_name: no prepared statement of that name
_GONE = b"26000"


#: statements with more parameters than this are built per call (``IN (...)`` lists of
#: any length) and not prepared, and no more than this many distinct ones are
_MAX_PARAMS = 16
_MAX_PREPARED = 256

#: seconds an answer is polled for before the thread sleeps in ``select`` for it: about
#: three loopback round trips of a small statement; a statement the server works on
#: longer (a list of every VM, a wait for a row lock) costs this much CPU more, once
SPIN = 100e-6


class Statement(NamedTuple):
    """A core statement as libpq takes it (``name`` empty: run it unprepared)."""

    name: bytes
    query: bytes
    params: tuple[str, ...]


_statements: dict[str, Statement] = {}
_lock = threading.Lock()


def statement(sql: str) -> Statement:
    """``sql`` with ``$n`` parameters, named once for the whole process."""
    found = _statements.get(sql)
    if found is not None:
        return found
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    query = _NAMED.sub(number, sql).encode()
    if len(names) > _MAX_PARAMS:
        return Statement(b"", query, tuple(names))
    with _lock:
        found = _statements.get(sql)
        if found is None:
            name = f"vp_{len(_statements)}".encode() if len(_statements) < _MAX_PREPARED \
                else b""
            found = _statements[sql] = Statement(name, query, tuple(names))
    return found


def _text(value: Any) -> bytes | None:
    if type(value) is str:  # the common case first: names, ids, JSON
        return value.encode()
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


def _check(conn: Any, res: Any) -> Any:
    if res is None:
        message = conn.pgconn.error_message.decode(errors="replace").strip()
        raise OperationalError(message or "the connection to the server was lost")
    if res.status in _OK:
        return res
    if conn.pgconn.status == pq.ConnStatus.BAD:
        message = conn.pgconn.error_message.decode(errors="replace").strip()
        raise OperationalError(message or "the connection to the server was lost")
    raise errors.error_from_result(res, encoding=conn.info.encoding)


def command(conn: Any, sql: bytes) -> None:
    """Run a statement without parameters or rows (``BEGIN``, ``COMMIT``) on psycopg
    connection ``conn`` (psycopg's ``execute`` costs about 40 us of Python more).

    :raises psycopg.Error: as psycopg would raise it.
    """
    pgconn = conn.pgconn
    pgconn.send_query(sql)
    _check(conn, _result(pgconn))


def execute(conn: Any, sql: str, params: Mapping[str, Any],
            begin: bool = False) -> tuple[list[Sequence[Any]], int]:
    """Run ``sql`` on psycopg connection ``conn``: (rows, rows changed).

    :param begin: send ``BEGIN`` first, in the same round trip (:func:`_pipelined`).
    :raises psycopg.Error: as psycopg would raise it.
    """
    stmt = _statements.get(sql) or statement(sql)
    pgconn = conn.pgconn
    values = [_text(params[n]) for n in stmt.params]
    if stmt.name:
        prepared: set[bytes] | None = getattr(conn, "_virtplane_prepared", None)
        if prepared is None:
            prepared = conn._virtplane_prepared = set()
        if stmt.name not in prepared:
            _check(conn, pgconn.prepare(stmt.name, stmt.query))
            prepared.add(stmt.name)
    if begin:
        res = _pipelined(conn, stmt, values)
        if res.status == _FATAL and res.error_field(pq.DiagnosticField.SQLSTATE) == _GONE:
            # dropped on the server (see below): nothing but BEGIN ran, so roll that
            # back, prepare the statement again and start over
            command(conn, b"ROLLBACK")
            _check(conn, pgconn.prepare(stmt.name, stmt.query))
            res = _pipelined(conn, stmt, values)
        return _rows(_check(conn, res))
    if not stmt.name:
        pgconn.send_query_params(stmt.query, values)
        return _rows(_check(conn, _result(pgconn)))
    pgconn.send_query_prepared(stmt.name, values)
    res = _result(pgconn)
    if res is not None and res.status == _FATAL and \
            res.error_field(pq.DiagnosticField.SQLSTATE) == _GONE and \
            pgconn.transaction_status == pq.TransactionStatus.IDLE:
        # dropped on the server (DEALLOCATE ALL, a pooler's other server connection):
        # outside a transaction nothing ran, so prepare it again and run it
        _check(conn, pgconn.prepare(stmt.name, stmt.query))
        pgconn.send_query_prepared(stmt.name, values)
        res = _result(pgconn)
    return _rows(_check(conn, res))


def _await(pgconn: Any) -> None:
    """Wait until libpq holds a whole result (or knows the connection broke).

    First by polling for up to :data:`SPIN` seconds, yielding the processor (and
    Python's lock) between polls, then in ``select``. Never in ``PQgetResult``:
    that would wait holding Python's lock, and a thread waiting so for a row lock
    would keep its holder from ever committing.
    """
    if not pgconn.is_busy():
        return
    end = perf_counter() + SPIN
    while perf_counter() < end:
        os.sched_yield()
        pgconn.consume_input()
        if not pgconn.is_busy():
            return
    while pgconn.is_busy():
        select.select([pgconn.socket], [], [])
        pgconn.consume_input()


def _next_result(pgconn: Any) -> Any:
    """The next result of what was sent (None: no more), awaited by :func:`_await`."""
    _await(pgconn)
    return pgconn.get_result()


def _result(pgconn: Any) -> Any:
    """What ``PQexec`` returns for the one statement sent: its result (the error if
    one came), or None when the connection broke before any."""
    last = None
    while True:
        res = _next_result(pgconn)
        if res is None:
            return last
        if last is None or last.status != _FATAL:
            last = res


def _pipelined(conn: Any, stmt: Statement, values: list[bytes | None]) -> Any:
    """``BEGIN`` and the statement in one round trip (libpq's pipeline mode): the
    statement's result, or the error that stopped the pair.

    A transaction's first statement would otherwise wait for ``BEGIN``'s answer
    first: a whole round trip to the server, for a reply known in advance.
    """
    pgconn = conn.pgconn
    pgconn.enter_pipeline_mode()
    try:
        pgconn.send_query_params(b"BEGIN", None)
        if stmt.name:
            pgconn.send_query_prepared(stmt.name, values)
        else:
            pgconn.send_query_params(stmt.query, values)
        pgconn.pipeline_sync()
        # each statement's result is followed by None; the sync by nothing
        results: list[Any] = []
        empty = 0
        while True:
            res = _next_result(pgconn)
            if res is None:
                empty += 1
                if empty > 1:  # a connection that broke answers nothing more
                    break
                continue
            empty = 0
            if res.status == _SYNC:
                break
            results.append(res)
    finally:
        if pgconn.pipeline_status != pq.PipelineStatus.OFF and \
                pgconn.status != pq.ConnStatus.BAD:
            try:
                pgconn.exit_pipeline_mode()
            except OperationalError as exc:  # results left unread: the error below says why
                log.debug("leaving pipeline mode: %s", exc)
    if not results:
        raise OperationalError(pgconn.error_message.decode(errors="replace").strip()
                               or "the connection to the server was lost")
    begun = results[0]
    if begun.status != pq.ExecStatus.COMMAND_OK or len(results) < 2:
        return begun
    return results[1]


def _rows(res: Any) -> tuple[list[Sequence[Any]], int]:
    """(decoded rows, rows changed) of a successful result."""
    tuples = res.command_tuples
    count = tuples if tuples else 0
    if res.status != _TUPLES:
        return [], count
    ntuples = res.ntuples
    if not ntuples:
        return [], count
    loader = Transformer(_LOADERS)  # holds the result: one per call, for threads
    loader.set_pgresult(res)
    rows: list[Sequence[Any]] = loader.load_rows(0, ntuples, tuple)
    return rows, count
