"""Cheap reads of the state file the store does not offer (yet).

The monitor compares 1,000 VMs with what hosts report every cycle; parsing
every VM row each time costs ten times the hosts' bulk-stats calls. SQLite's
``PRAGMA data_version`` changes exactly when *another* connection committed, so
an idle engine re-reads nothing, and after a change only the rows whose
version moved are parsed again. ``events --follow`` needs every object's
events after a sequence number.

This reads the store's tables over its own read-only connection. It belongs in
:class:`virtplane.state.StateStore` (``data_version()``, ``versions(cls)``,
``events_since(seq)``); until the store has them, this is the only module of
the engine that knows the table layout.
"""

from __future__ import annotations

import sqlite3
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from virtplane import model
from virtplane.errors import NotFound, StateError
from virtplane.state import StateStore, kind_of


class Event(NamedTuple):
    """One row of the event log."""

    seq: int
    ts: float
    object_id: str
    level: str
    message: str
    code: int | None
    correlation_id: str | None


class StoreWatch:
    """A read-only side connection to the state file (thread safe)."""

    def __init__(self, path: Path) -> None:
        uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
        try:
            self._conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None,
                                         check_same_thread=False)
        except sqlite3.Error as exc:
            raise StateError(f"cannot read state store {path}: {exc}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def data_version(self) -> int:
        """Changes whenever any other connection committed to the file."""
        with self._lock:
            row = self._conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def versions(self, cls: type[Any]) -> dict[str, int]:
        """id -> row version for every object of ``cls``."""
        with self._lock:
            rows = self._conn.execute("SELECT id, version FROM objects WHERE kind=?",
                                      (kind_of(cls),)).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def names(self) -> dict[str, str]:
        """Object id -> name, for every stored object (to show events by name)."""
        with self._lock:
            rows = self._conn.execute("SELECT id, kind, name FROM objects").fetchall()
        return {r[0]: f"{r[1].replace('_', ' ')} {r[2]}" for r in rows}

    def last_seq(self) -> int:
        """The newest event's sequence number (0: none)."""
        with self._lock:
            row = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(row[0])

    def events_since(self, seq: int, limit: int = 1000) -> list[Event]:
        """Events after ``seq``, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, ts, object_id, level, message, code, correlation_id FROM events "
                "WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)).fetchall()
        return [Event(*r) for r in rows]


class ServerWatch:
    """What :class:`VmCache` needs, on a server store (PostgreSQL).

    An idle poll costs one small statement: the store's ``data_version()`` (on
    PostgreSQL a number that moves whenever a transaction that wrote ended on the
    server, whoever ran it: see ``PostgresStore.data_version``), and the row versions
    (one query of ids and versions, nothing parsed) are compared only when it moved;
    then only rows that moved are read and parsed again, as with :class:`StoreWatch`.
    A store without ``data_version()`` has its versions compared at every snapshot.
    """

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._probe: Callable[[], int] | None = getattr(store, "data_version", None) \
            if store.backend != "sqlite" else None  # SQLite's misses its own connection's
        self._ticks = 0
        self._lock = threading.Lock()

    def data_version(self) -> int:
        """Moves whenever a write may have been committed since the previous call (a
        store that cannot tell: at every call)."""
        if self._probe is not None:
            return self._probe()
        with self._lock:
            self._ticks += 1
            return self._ticks

    def versions(self, cls: type[Any]) -> dict[str, int]:
        return self._store.versions(cls)

    def close(self) -> None:
        """Nothing of its own to close (it reads through the store)."""


class VmSnapshot(NamedTuple):
    """The store's VMs at one moment, indexed; shared between readers: never changed
    (writes go through the store, which bumps the row version, which makes a new one)."""

    vms: tuple[model.Vm, ...]
    by_name: dict[str, model.Vm]
    by_host: dict[str, tuple[model.Vm, ...]]


class VmCache:
    """The store's VMs, re-parsed only when their row changed (see the module doc)."""

    def __init__(self, store: StateStore, watch: StoreWatch | ServerWatch) -> None:
        self._store = store
        self._watch = watch
        self._vms: dict[str, model.Vm] = {}
        self._seen_version = -1
        self._snapshot = VmSnapshot((), {}, {})
        self._lock = threading.Lock()

    def snapshot(self) -> VmSnapshot:
        """Every VM as stored now (read-only objects, see :class:`VmSnapshot`)."""
        with self._lock:
            current = self._watch.data_version()
            if current != self._seen_version:
                if self._reload():
                    vms = tuple(self._vms.values())
                    by_host: dict[str, list[model.Vm]] = {}
                    for vm in vms:
                        if vm.host_id is not None:
                            by_host.setdefault(vm.host_id, []).append(vm)
                    self._snapshot = VmSnapshot(vms, {v.name: v for v in vms},
                                                {h: tuple(v) for h, v in by_host.items()})
                self._seen_version = current
            return self._snapshot

    def vms(self) -> tuple[model.Vm, ...]:
        return self.snapshot().vms

    def invalidate(self) -> None:
        """Check every row's version again at the next :meth:`snapshot`."""
        with self._lock:
            self._seen_version = -1

    def _reload(self) -> bool:
        """Re-read changed rows; whether anything changed."""
        versions = self._watch.versions(model.Vm)
        changed = False
        for gone in set(self._vms) - set(versions):
            del self._vms[gone]
            changed = True
        for vm_id, version in versions.items():
            known = self._vms.get(vm_id)
            if known is None or known.revision != version:
                changed = True
                try:
                    self._vms[vm_id] = self._store.get(model.Vm, vm_id)
                except NotFound:  # removed between the two reads
                    self._vms.pop(vm_id, None)
        return changed or not self._snapshot.vms
