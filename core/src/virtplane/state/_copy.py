"""Copy a whole store into another one (SQLite into PostgreSQL), proving nothing was lost.

Every row of every table is copied as it is: ids, names, JSON, revisions, event
sequence numbers, job states and lease epochs (a new engine must not reuse an
epoch an old one held). The copy runs in one transaction on the destination; before
it commits, every group of rows (each object kind, jobs, events, leases) is counted
and checksummed on both sides, and any difference rolls the whole copy back.

A checksum is SHA-256 over the group's rows in key order, each row as JSON of its
column values, so the two backends agree exactly when the values do (REAL and
DOUBLE PRECISION both hold the same IEEE doubles).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from virtplane.errors import StateError
from virtplane.state._base import SCHEMA_VERSION, Row, StateStore

#: table -> (key column, columns); the key orders pages and checksums
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "objects": ("id", ("id", "kind", "name", "data", "updated", "version", "cluster_id",
                        "owner_id")),
    "jobs": ("id", ("id", "correlation_id", "kind", "object_id", "status", "data", "version",
                    "created", "updated", "engine")),
    "events": ("seq", ("seq", "ts", "object_id", "level", "message", "code",
                       "correlation_id")),
    "leases": ("resource", ("resource", "holder", "epoch", "expires", "acquired")),
}

PAGE = 2000


@dataclasses.dataclass(frozen=True)
class GroupSum:
    """One group of rows on one side: how many, and their checksum."""

    count: int
    digest: str


@dataclasses.dataclass(frozen=True)
class CopyLine:
    """One group of the copy report."""

    group: str
    source: GroupSum
    copied: GroupSum

    @property
    def ok(self) -> bool:
        return self.source == self.copied


def _pages(store: StateStore, table: str) -> Iterator[list[Row]]:
    """The table's rows in key order, a page at a time (bounded memory)."""
    key, columns = TABLES[table]
    cols = ", ".join(columns)
    last: Any = None
    while True:
        where = "" if last is None else f" WHERE {key} > :last"
        rows = store._rows(f"SELECT {cols} FROM {table}{where} ORDER BY {key} LIMIT :page",
                           {"last": last, "page": PAGE})
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _group_of(table: str, row: Row) -> str:
    if table == "objects":
        return str(row[1])
    return {"jobs": "job", "events": "event", "leases": "lease"}[table]


def _bytes_as_text(value: Any) -> Any:
    """What a row's bytes count as (only a hand-edited SQLite file holds any: the
    store writes text): their hex digits."""
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    raise TypeError(f"a {type(value).__name__} in a row")


def checksums(store: StateStore) -> dict[str, GroupSum]:
    """group -> (count, SHA-256) over every row of the store (see the module doc)."""
    hashes: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for table in TABLES:
        for page in _pages(store, table):
            for row in page:
                group = _group_of(table, row)
                h = hashes.get(group)
                if h is None:
                    h = hashes[group] = hashlib.sha256()
                    counts[group] = 0
                h.update(json.dumps(list(row), separators=(",", ":"),
                                    default=_bytes_as_text).encode())
                h.update(b"\n")
                counts[group] += 1
    return {g: GroupSum(counts[g], hashes[g].hexdigest()) for g in sorted(hashes)}


def row_counts(store: StateStore) -> dict[str, int]:
    """table -> number of rows."""
    return {t: int(store._rows(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in TABLES}


def copy(source: StateStore, dest: StateStore) -> list[CopyLine]:
    """Copy every row of ``source`` into the empty ``dest`` and compare both sides.

    :raises StateError: a store is not at this virtplane's schema version, ``dest``
        is not empty, or the checksums differ (then nothing was written).
    """
    for store, role in ((source, "source"), (dest, "destination")):
        version = store.schema_version()
        if version != SCHEMA_VERSION:
            raise StateError(f"the {role} state store {store.location} has schema version "
                             f"{version}, not {SCHEMA_VERSION}: run 'virtplane state migrate "
                             f"{store.location}' first")
    filled = {t: n for t, n in row_counts(dest).items() if n}
    if filled:
        what = ", ".join(f"{n} {t}" for t, n in filled.items())
        raise StateError(f"the destination state store {dest.location} is not empty ({what}); "
                         "copy only into an empty store, so that nothing is merged or "
                         "overwritten")
    # the source is read in one transaction where it can be: a consistent snapshot,
    # and no writer changes it half-way (SQLite: writers wait for the copy)
    snapshot = source.transaction() if not source.readonly else _nothing()
    with snapshot, dest.transaction():
        for table, (_key, columns) in TABLES.items():
            sql = (f"INSERT INTO {table}({', '.join(columns)}) "
                   f"VALUES ({', '.join(':' + c for c in columns)})")
            for page in _pages(source, table):
                dest._many(sql, [dict(zip(columns, row, strict=True)) for row in page])
        dest._after_copy()
        before = checksums(source)
        after = checksums(dest)
        lines = [CopyLine(g, before.get(g, GroupSum(0, "")), after.get(g, GroupSum(0, "")))
                 for g in sorted(set(before) | set(after))]
        bad = [line.group for line in lines if not line.ok]
        if bad:
            raise StateError(f"copy into {dest.location} rolled back: {', '.join(bad)} "
                             "differ after copying (counts or checksums); nothing was written")
    return lines


class _nothing:
    """A context manager that does nothing (a read-only source has no write lock)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
