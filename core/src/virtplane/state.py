"""The embedded state store: model objects in one SQLite file.

Each object is stored as its cattrs JSON in one row, keyed by its UUID, with
its kind and name indexed. Writes happen in transactions
(``BEGIN IMMEDIATE``; WAL journal; ``synchronous=NORMAL``, which in WAL mode survives a killed process; only a power loss can drop the last commits, never corrupt the file), so a process killed
in the middle of an operation leaves the previous consistent state behind:
either all objects of an operation are there, or none.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from virtplane import model
from virtplane.errors import AlreadyExists, NotFound, StateError

T = TypeVar("T")

SCHEMA_VERSION = 1

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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS objects_kind_name ON objects(kind, name);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    object_id TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_object ON events(object_id);
"""


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
    """SQLite-backed store of model objects.

    :param path: the database file; its folder is created if needed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        try:
            conn = self._conn()
            with conn:
                conn.executescript(_SCHEMA)
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)",
                    (str(SCHEMA_VERSION),),
                )
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state store {self.path} is unreadable: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            self._local.depth = 0
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StateStore]:
        """Group writes: all of them land, or (on an exception or a kill) none.

        Transactions nest; only the outermost one commits.
        """
        conn = self._conn()
        depth = self._local.depth
        if depth == 0:
            conn.execute("BEGIN IMMEDIATE")
        self._local.depth = depth + 1
        try:
            yield self
        except BaseException:
            self._local.depth = depth
            if depth == 0:
                conn.execute("ROLLBACK")
            raise
        self._local.depth = depth
        if depth == 0:
            conn.execute("COMMIT")

    # ------------------------------------------------------------------ objects

    def add(self, obj: Any) -> None:
        """Store a new object; its name must be unique for its kind."""
        kind = kind_of(type(obj))
        try:
            with self.transaction():
                self._conn().execute(
                    "INSERT INTO objects(id, kind, name, data, updated) VALUES (?,?,?,?,?)",
                    (obj.id, kind, _name_of(obj), model.to_json(obj), time.time()),
                )
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"a {kind} named {_name_of(obj)!r} already exists") from None

    def update(self, obj: Any) -> None:
        """Replace a stored object (matched by id)."""
        kind = kind_of(type(obj))
        with self.transaction():
            try:
                cur = self._conn().execute(
                    "UPDATE objects SET name=?, data=?, updated=? WHERE id=? AND kind=?",
                    (_name_of(obj), model.to_json(obj), time.time(), obj.id, kind),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(
                    f"a {kind} named {_name_of(obj)!r} already exists"
                ) from None
            if cur.rowcount != 1:
                raise NotFound(f"no {kind} with id {obj.id}")

    def remove(self, cls: type[Any], obj_id: str) -> None:
        """Delete an object by id (its events are kept)."""
        kind = kind_of(cls)
        with self.transaction():
            cur = self._conn().execute(
                "DELETE FROM objects WHERE id=? AND kind=?", (obj_id, kind)
            )
            if cur.rowcount != 1:
                raise NotFound(f"no {kind} with id {obj_id}")

    def get(self, cls: type[T], obj_id: str) -> T:
        kind = kind_of(cls)
        row = self._conn().execute(
            "SELECT data FROM objects WHERE id=? AND kind=?", (obj_id, kind)
        ).fetchone()
        if row is None:
            raise NotFound(f"no {kind} with id {obj_id}")
        return model.from_json(row[0], cls)

    def find(self, cls: type[T], name_or_id: str) -> T:
        """Look an object up by name, else by id; NotFound names what exists."""
        kind = kind_of(cls)
        row = self._conn().execute(
            "SELECT data FROM objects WHERE kind=? AND (name=? OR id=?)",
            (kind, name_or_id, name_or_id),
        ).fetchone()
        if row is None:
            names = [r[0] for r in self._conn().execute(
                "SELECT name FROM objects WHERE kind=? ORDER BY name LIMIT 20", (kind,)
            )]
            known = ", ".join(names) if names else "none"
            raise NotFound(f"no {kind} named {name_or_id!r} (known: {known})")
        return model.from_json(row[0], cls)

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
        kind = kind_of(cls)
        rows = self._conn().execute(
            "SELECT data FROM objects WHERE kind=? ORDER BY name", (kind,)
        ).fetchall()
        return [model.from_json(r[0], cls) for r in rows]

    # ------------------------------------------------------------------- events

    def add_event(self, object_id: str, message: str, level: str = "info") -> None:
        """Append to an object's event log (e.g. a hook script's stderr)."""
        with self.transaction():
            self._conn().execute(
                "INSERT INTO events(ts, object_id, level, message) VALUES (?,?,?,?)",
                (time.time(), object_id, level, message),
            )

    def events(self, object_id: str) -> builtins.list[tuple[float, str, str]]:
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
        by_kind = {v: k for k, v in _KINDS.items()}
        for obj_id, kind, data in self._conn().execute(
            "SELECT id, kind, data FROM objects"
        ):
            try:
                model.from_json(data, by_kind[kind])
            except Exception as exc:  # noqa: BLE001 - report every unreadable row
                problems.append(f"{kind} {obj_id}: {exc}")
        return problems
