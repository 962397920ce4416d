"""The machinery under :class:`~virtplane.state.StateStore`: backend primitives,
transactions and compare-and-set bookkeeping, shared by every backend.

Backends implement five primitives (run a statement and fetch its rows, run one and
count the rows it touched, run one for many parameter sets, begin/commit/rollback the
outermost transaction); :mod:`virtplane.state._base` (objects) and
:mod:`virtplane.state._records` (jobs, events, leases) write every operation once, in
the SQL both SQLite (3.35 or newer) and PostgreSQL accept, with ``:name`` parameters.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Self, TypeVar

from virtplane import model
from virtplane.errors import Conflict, NotFound, StateError

T = TypeVar("T")

log = logging.getLogger("virtplane.state")

#: the schema this virtplane writes; older stores are migrated (SQLite: on open)
SCHEMA_VERSION = 7

#: how often :meth:`StateStore.modify` re-reads and retries after a Conflict
MODIFY_ATTEMPTS = 5

Row = Sequence[Any]
Params = Mapping[str, Any]

_KINDS: dict[type[Any], str] = {
    model.DataCenter: "datacenter",
    model.Cluster: "cluster",
    model.Host: "host",
    model.StorageDomain: "storage_domain",
    model.Image: "image",
    model.Template: "template",
    model.Vm: "vm",
    model.Snapshot: "snapshot",
    #: values frontends keep about objects (the oVirt API's descriptions, tags ...)
    model.Annotation: "annotation",
}


#: how :class:`UnreadableRow` tells a reader to find every bad row
CHECK_HINT = "run `virtplane state check` to list every unreadable row"


def _one_line(text: object, limit: int = 200) -> str:
    """``text`` on one line, at most ``limit`` characters (a tampered row's values may
    be megabytes long or hold newlines; an error message must stay one line)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


class UnreadableRow(StateError):
    """A row of the store cannot be used as what its table says it holds: its JSON
    does not parse as its kind, names another object, or its version (a lease's epoch
    or expiry) is not a number the store writes.

    Several writers share a store (an older or newer virtplane, other machines) and an
    administrator may edit or restore it, so a row is untrusted input. Reading the bad
    row itself (get, find, modify) raises this; listings leave it out and log a warning
    (see :meth:`StateStore.list`); nothing is written over it.
    """

    def __init__(self, location: str, kind: str, row_id: str, name: str | None,
                 reason: str, *, context: str = "") -> None:
        label = f"{kind} {row_id}" if name is None or name == row_id else \
            f"{kind} {_one_line(repr(name), 60)} (id {row_id})"
        prefix = f"{context}: " if context else ""
        super().__init__(f"{prefix}state store {location}: the {_one_line(label, 140)} is "
                         f"unreadable ({_one_line(reason)}); {CHECK_HINT}")
        self.location = location
        self.kind = kind
        self.row_id = row_id
        self.name = name
        self.reason = reason


def valid_version(value: Any) -> bool:
    """Whether a version column holds what the store writes: a whole number >= 1."""
    return type(value) is int and value >= 1


def kind_of(cls: type[Any]) -> str:
    """The store's kind name for a model class."""
    try:
        return _KINDS[cls]
    except KeyError:
        raise TypeError(f"{cls.__name__} is not a stored model class") from None


def stored_classes() -> dict[str, type[Any]]:
    """kind name -> model class, for every kind the store keeps (jobs included)."""
    out: dict[str, type[Any]] = {v: k for k, v in _KINDS.items()}
    out["job"] = model.Job
    return out


def _name_of(obj: Any) -> str:
    if isinstance(obj, model.Vm):
        return obj.spec.name
    if isinstance(obj, model.Image):
        return obj.alias or obj.id
    if isinstance(obj, model.Snapshot):
        return f"{obj.vm_id}/{obj.name}"
    name: str = obj.name
    return name


def _cluster_of(obj: Any) -> str | None:
    """What the ``cluster_id`` column of ``obj``'s row holds: its ``cluster_id``
    attribute (VMs, hosts), None for kinds without one.

    A column of its own rather than an index on the JSON: an expression index must be
    re-evaluated on every write of ``data``, which on PostgreSQL also rules out HOT
    updates; the column only changes when the cluster does.
    """
    value = getattr(obj, "cluster_id", None)
    return value if isinstance(value, str) else None


#: the owner kinds of :attr:`virtplane.model.Image.owner` whose id the column holds
_OWNER_KINDS = ("vm", "template")

#: the model classes whose rows have an ``owner_id`` (what :meth:`StateStore.owned` lists)
OWNED_CLASSES: tuple[type[Any], ...] = (model.Image, model.Snapshot)
_IMAGE, _SNAPSHOT = OWNED_CLASSES


def _owner_of(obj: Any) -> str | None:
    """What the ``owner_id`` column of ``obj``'s row holds: the id of the object it
    belongs to, None for kinds without an owner (and for images without one).

    - an Image: the VM or template id of its :attr:`~virtplane.model.Image.owner`
      (``vm:<id>``, ``template:<id>``); None for a standalone disk, and for
      :data:`~virtplane.model.TEMPLATE_OWNER_UNKNOWN` (a template image stored before
      owners were recorded, whose template only the templates' ``image_ids`` name);
    - a Snapshot: its ``vm_id``.

    Listing what an object owns (:meth:`StateStore.owned`) follows the column's index;
    like ``cluster_id`` it only changes when the owner does, so an update that keeps
    the owner leaves the index alone.
    """
    cls = type(obj)  # exact classes, as kind_of takes them (it runs on every write)
    if cls is _IMAGE:
        kind, _, owner_id = obj.owner.partition(":")
        return owner_id if owner_id and kind in _OWNER_KINDS else None
    if cls is _SNAPSHOT:
        return obj.vm_id or None
    return None


def _event_ok(row: Row) -> bool:
    """(seq, ts, object_id, level, message, code, correlation_id) as the store writes."""
    _, ts, object_id, level, message, code, correlation_id = row
    return (type(ts) in (float, int) and type(object_id) is str and type(level) is str
            and type(message) is str and (code is None or type(code) is int)
            and (correlation_id is None or type(correlation_id) is str))


def _fields(row: Row) -> str:
    names = ("time", "object id", "level", "message", "code", "correlation id")
    return ", ".join(f"{n} {v!r:.30}" for n, v in zip(names, row[1:], strict=True))


class StoreCore:
    """Primitives, transactions and revisions (see the module doc)."""

    backend: ClassVar[str] = ""
    #: SQL for "now" on the store's clock, in seconds since the epoch (leases use it)
    _NOW: ClassVar[str] = ":now"
    #: appended to a SELECT that must lock the row it reads until the transaction ends
    _FOR_UPDATE: ClassVar[str] = ""
    _FOR_SHARE: ClassVar[str] = ""

    location: str
    readonly: bool
    strict: bool
    #: per-thread connection and transaction state (backends create it)
    _local: threading.local

    # ---------------------------------------------------------- backend primitives

    def _rows(self, sql: str, params: Params | None = None) -> builtins.list[Row]:
        """Run one statement and return all its rows."""
        raise NotImplementedError

    def _count(self, sql: str, params: Params | None = None) -> int:
        """Run one statement and return how many rows it changed."""
        raise NotImplementedError

    def _many(self, sql: str, params: Sequence[Params]) -> None:
        """Run one statement for each parameter set (bulk copy)."""
        raise NotImplementedError

    def _begin(self) -> None:
        """Start the outermost transaction, taking whatever lock makes it safe."""
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _clock(self) -> dict[str, Any]:
        """Parameters :data:`_NOW` needs (SQLite: this machine's clock)."""
        return {"now": time.time()}

    def close(self) -> None:
        """Release this thread's connection (other threads release their own)."""

    def schema_version(self) -> int:
        """The schema version the store has now."""
        rows = self._rows("SELECT value FROM meta WHERE key='schema'")
        if not rows:
            return 0
        try:
            version = int(rows[0][0])
        except (TypeError, ValueError):
            version = -1
        if version < 1:
            raise StateError(f"state store {self.location} has no valid schema version "
                             f"(found {_one_line(repr(rows[0][0]), 40)}): restore it from "
                             "a backup")
        return version

    def migrate(self) -> tuple[int, int]:
        """Bring the store to :data:`SCHEMA_VERSION`; returns (before, after)."""
        raise NotImplementedError

    def _after_copy(self) -> None:
        """Rows were copied in with their own keys (PostgreSQL moves its sequences)."""

    def check(self) -> builtins.list[str]:
        """Integrity problems found (an empty list when there are none)."""
        return self._check_rows()

    def _check_rows(self) -> builtins.list[str]:
        """Every object and job row parses as its kind, names its own id and has a
        valid version; each object's ``cluster_id`` and ``owner_id`` columns say what
        its JSON says; every lease has a whole-number epoch and a numeric expiry."""
        problems: builtins.list[str] = []
        by_kind = stored_classes()
        rows = [(r[1], r[0], r[2], r[3], r[4], r[5]) for r in self._rows(
            "SELECT id, kind, data, cluster_id, owner_id, version FROM objects")]
        rows += [("job", r[0], r[1], None, None, r[2])
                 for r in self._rows("SELECT id, data, version FROM jobs")]
        for kind, obj_id, data, cluster_id, owner_id, version in rows:
            cls = by_kind.get(kind)
            if cls is None:
                problems.append(f"{_one_line(kind, 60)} {obj_id}: unknown kind")
                continue
            try:
                obj = self._parse(cls, data, version, obj_id)
            except UnreadableRow as exc:
                problems.append(f"{kind} {obj_id}: {_one_line(exc.reason)}")
                continue
            if kind != "job" and cluster_id != _cluster_of(obj):
                problems.append(f"{kind} {obj_id}: its cluster_id column is "
                                f"{_one_line(repr(cluster_id), 80)}, "
                                f"its data says {_cluster_of(obj)!r} (written around the "
                                "store; listing by cluster misses or wrongly includes it)")
            if kind != "job" and owner_id != _owner_of(obj):
                problems.append(f"{kind} {obj_id}: its owner_id column is "
                                f"{_one_line(repr(owner_id), 80)}, "
                                f"its data says {_owner_of(obj)!r} (written around the "
                                "store; listing by owner misses or wrongly includes it)")
        for row in self._rows("SELECT seq, ts, object_id, level, message, code, "
                              "correlation_id FROM events ORDER BY seq"):
            if not _event_ok(row):
                problems.append(f"event {row[0]}: its fields are {_one_line(_fields(row))} "
                                "(an event has a time, text and a whole-number code)")
        for resource, epoch, expires in self._rows(
                "SELECT resource, epoch, expires FROM leases ORDER BY resource"):
            if not valid_version(epoch) or not isinstance(expires, (int, float)):
                problems.append(f"lease {_one_line(repr(resource), 80)}: its epoch is "
                                f"{_one_line(repr(epoch), 40)} and its expiry "
                                f"{_one_line(repr(expires), 40)} (an epoch is a whole "
                                "number from 1 on, an expiry a time in seconds)")
        return problems

    # ----------------------------------------------------------------- transactions

    def _tls(self) -> threading.local:
        local: threading.local = self._local
        if not hasattr(local, "depth"):
            local.depth = 0
            local.undo = []
        return local

    def _refuse_readonly(self) -> None:
        raise StateError(f"state store {self.location} is read-only (opened without write "
                         "access): this command needs to change it; run it as a user "
                         "who can write the file")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Self]:
        """Group writes: all of them land, or (on an exception or a kill) none.

        Transactions nest; only the outermost one commits. On SQLite it takes the
        write lock at once (``BEGIN IMMEDIATE``), so what is read inside stays current
        until it ends. On PostgreSQL other writers go on; each write checks the row's
        version (compare-and-set) and :meth:`modify` locks the row it reads. On a
        rollback the ``revision`` of every object written in it goes back to what it
        was, so the caller's copies stay usable for a retry.

        :raises StateError: the store is read-only.
        :raises StateUnavailable: the database server cannot be reached.
        """
        if self.readonly:
            self._refuse_readonly()
        local = self._tls()
        depth: int = local.depth
        if depth == 0:
            self._begin()
        local.depth = depth + 1
        try:
            yield self
        except BaseException:
            local.depth = depth
            if depth == 0:
                try:
                    self._rollback()
                finally:
                    undo: builtins.list[tuple[Any, int]] = local.undo
                    for obj, revision in reversed(undo):
                        obj.revision = revision
                    undo.clear()
            raise
        local.depth = depth
        if depth == 0:
            try:
                self._commit()
            except BaseException:
                for obj, revision in reversed(local.undo):
                    obj.revision = revision
                local.undo.clear()
                raise
            local.undo.clear()

    def in_transaction(self) -> bool:
        """Whether this thread is inside :meth:`transaction`."""
        return bool(self._tls().depth)

    def _set_revision(self, obj: Any, revision: int) -> None:
        """Give ``obj`` the revision just written, undone if the transaction rolls back."""
        local = self._tls()
        if local.depth:
            local.undo.append((obj, obj.revision))
        obj.revision = revision

    def _write_one(self, sql: str, params: Params) -> builtins.list[Row]:
        """Run a write that is one statement: in this thread's transaction when there is
        one, else on its own, which the database makes atomic by itself (one round trip
        to PostgreSQL instead of BEGIN, the statement and COMMIT).

        :raises StateError: the store is read-only.
        """
        if self.readonly:
            self._refuse_readonly()
        return self._rows(sql, params)

    def _overwrite_stale(self, table: str, where: str, params: dict[str, Any], kind: str,
                         label: str, assignments: str) -> builtins.list[Row]:
        """The compare-and-set write matched no row: say why, or (lenient) write anyway."""
        current = self._rows(f"SELECT version FROM {table} WHERE {where}", params)
        if not current:
            if kind == "job":
                raise NotFound(f"no job with id {params['id']}")
            raise NotFound(f"no {kind} named {label!r} (id {params['id']})")
        version = current[0][0]
        if not valid_version(version):  # never written over: the row is not the store's
            raise self._bad_row(kind, str(params["id"]), f"its version column holds "
                                f"{_one_line(repr(version), 40)}, not a whole number "
                                "from 1 on")
        self._stale(kind, label, params["read"], version)
        return self._rows(f"UPDATE {table} SET {assignments}version=version+1 "
                          f"WHERE {where} RETURNING version", params)

    def _stale(self, kind: str, name: str, read: int, current: int) -> None:
        """A stale copy is being written: refuse (strict) or warn and let it win."""
        if self.strict:
            raise Conflict(kind, name, read, current)
        log.warning("state store %s: %s %r written from a stale copy (read at revision "
                    "%d, now %d); the other writer's change is overwritten",
                    self.location, kind, name, read, current)

    def _load(self, cls: type[T], data: str, version: int) -> T:
        """Parse a row's JSON as ``cls``, at the row's version (unchecked: see :meth:`_row`).

        :raises UnreadableRow: it does not parse (the caller names the row).
        """
        try:
            obj = model.from_json(data, cls)
        except Exception as exc:  # noqa: BLE001 - untrusted text: every failure is the row's
            raise UnreadableRow(self.location, "job" if cls is model.Job else kind_of(cls),
                                "?", None, str(exc)) from None
        obj.revision = version  # type: ignore[attr-defined]
        return obj

    def _row(self, cls: type[T], data: str, version: int, row_id: str) -> T:
        """The object a row holds, at the row's version: what every read returns.

        :raises UnreadableRow: the row does not hold a valid object of ``cls`` with the
            row's id, or its version is not one the store writes.
        """
        try:
            obj = self._load(cls, data, version)
        except UnreadableRow as exc:
            raise self._bad_row(exc.kind, row_id, exc.reason) from None
        bad_id: bool = obj.id != row_id  # type: ignore[attr-defined]
        if bad_id or type(version) is not int or version < 1:
            self._parse(cls, data, version, row_id)  # raises, saying which
        return obj

    def _parse(self, cls: type[T], data: str, version: Any, row_id: str) -> T:
        """:meth:`_load`, step by step, each step's failure named (the slow path)."""
        kind = "job" if cls is model.Job else kind_of(cls)
        try:
            obj = model.from_json(data, cls)
        except Exception as exc:  # noqa: BLE001 - untrusted text: every failure is the row's
            raise self._bad_row(kind, row_id, str(exc)) from None
        if obj.id != row_id:  # type: ignore[attr-defined]
            raise self._bad_row(kind, row_id, "its data is another object's (id "
                                f"{_one_line(obj.id, 60)})")  # type: ignore[attr-defined]
        if not valid_version(version):
            raise self._bad_row(kind, row_id, "its version column holds "
                                f"{_one_line(repr(version), 40)}, not a whole number "
                                "from 1 on")
        obj.revision = version  # type: ignore[attr-defined]
        return obj

    def _bad_row(self, kind: str, row_id: str, reason: str, *,
                 context: str = "") -> UnreadableRow:
        """The error for a bad row, named by its name column when it has one."""
        name: str | None = None
        if kind != "job":
            try:
                rows = self._rows("SELECT name FROM objects WHERE id=:id", {"id": row_id})
                name = str(rows[0][0]) if rows else None
            except StateError:
                name = None
        return UnreadableRow(self.location, kind, _one_line(row_id, 60), name, reason,
                             context=context)

    def _readable(self, cls: type[T], rows: builtins.list[Row]) -> builtins.list[T]:
        """The objects of ``rows`` (data, version, id) that can be read; each row that
        cannot is left out and logged, as a warning the first time (at this version)."""
        out: builtins.list[T] = []
        for r in rows:
            try:
                out.append(self._row(cls, r[0], r[1], r[2]))
            except UnreadableRow as exc:
                self._left_out(exc, r[1])
        return out

    def _left_out(self, exc: UnreadableRow, version: Any) -> None:
        seen: set[tuple[str, str, str]] = self.__dict__.setdefault("_warned", set())
        key = (exc.kind, exc.row_id, repr(version))
        level = logging.DEBUG if key in seen else logging.WARNING
        seen.add(key)
        log.log(level, "%s; left out of the list", exc)
