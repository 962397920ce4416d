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
  booleans as Python numbers and booleans, everything else as ``str``;
- errors are psycopg's own exception classes (:func:`psycopg.errors.error_from_result`),
  so callers handle them as they handle psycopg's.

Bulk copies (``executemany``) and DDL keep the ordinary psycopg path.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from psycopg import OperationalError, errors, pq

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

#: result column type OID -> decoder of its text form (others: str)
_DECODE: dict[int, Callable[[bytes], Any]] = {
    16: lambda v: v == b"t",  # bool
    20: int, 21: int, 23: int,  # int8, int2, int4
    700: float, 701: float, 1700: float,  # float4, float8, numeric
}

_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
#: SQLSTATE invalid_sql_statement_name: no prepared statement of that name
_GONE = b"26000"


#: statements with more parameters than this are built per call (``IN (...)`` lists of
#: any length) and not prepared, and no more than this many distinct ones are
_MAX_PARAMS = 16
_MAX_PREPARED = 256


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
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


def _check(conn: Any, res: Any) -> Any:
    if res.status in _OK:
        return res
    if conn.pgconn.status == pq.ConnStatus.BAD:
        message = conn.pgconn.error_message.decode(errors="replace").strip()
        raise OperationalError(message or "the connection to the server was lost")
    raise errors.error_from_result(res, encoding=conn.info.encoding)


def execute(conn: Any, sql: str,
            params: Mapping[str, Any]) -> tuple[list[Sequence[Any]], int]:
    """Run ``sql`` on psycopg connection ``conn``: (rows, rows changed).

    :raises psycopg.Error: as psycopg would raise it.
    """
    stmt = statement(sql)
    prepared: set[bytes] | None = getattr(conn, "_virtplane_prepared", None)
    if prepared is None:
        prepared = conn._virtplane_prepared = set()
    pgconn = conn.pgconn
    values = [_text(params[n]) for n in stmt.params]
    if not stmt.name:
        return _rows(_check(conn, pgconn.exec_params(stmt.query, values)))
    if stmt.name not in prepared:
        _check(conn, pgconn.prepare(stmt.name, stmt.query))
        prepared.add(stmt.name)
    res = pgconn.exec_prepared(stmt.name, values)
    if res.error_field(pq.DiagnosticField.SQLSTATE) == _GONE and \
            pgconn.transaction_status == pq.TransactionStatus.IDLE:
        # dropped on the server (DEALLOCATE ALL, a pooler's other server connection):
        # outside a transaction nothing ran, so prepare it again and run it
        _check(conn, pgconn.prepare(stmt.name, stmt.query))
        res = pgconn.exec_prepared(stmt.name, values)
    return _rows(_check(conn, res))


def _rows(res: Any) -> tuple[list[Sequence[Any]], int]:
    """(decoded rows, rows changed) of a successful result."""
    count = int(res.command_tuples or 0)
    if res.status != pq.ExecStatus.TUPLES_OK:
        return [], count
    decode = [_DECODE.get(res.ftype(i)) for i in range(res.nfields)]
    rows: list[Sequence[Any]] = []
    for r in range(res.ntuples):
        row = []
        for i, fn in enumerate(decode):
            value = res.get_value(r, i)
            row.append(None if value is None else fn(value) if fn else value.decode())
        rows.append(tuple(row))
    return rows, count
