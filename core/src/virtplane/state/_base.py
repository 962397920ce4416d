"""The state store's interface, and the SQL every backend shares.

:class:`StateStore` is what services, the CLI and the engine call. Calling
``StateStore(location)`` picks the backend from the location (see
:mod:`virtplane.state._location`): a plain path or ``sqlite:///path`` is the
embedded SQLite file, ``postgresql://...`` the backend a plugin registers under
that scheme. Backends subclass it and supply the primitives of
:class:`~virtplane.state._core.StoreCore`; the objects' operations are here, jobs,
events and leases in :mod:`virtplane.state._records`.

Compare-and-set is done by the write itself (``UPDATE ... WHERE version = :read``),
not by a read before it, so it holds on PostgreSQL's row locks as well as under
SQLite's single writer: of two writers that read the same version, exactly one
changes the row.
"""

from __future__ import annotations

import builtins
import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Self, TypeVar

from virtplane import model
from virtplane.errors import AlreadyExists, Conflict, NotFound
from virtplane.state._core import (
    _IMAGE,
    _KINDS,
    _SNAPSHOT,
    MODIFY_ATTEMPTS,
    OWNED_CLASSES,
    SCHEMA_VERSION,
    Params,
    Row,
    UnreadableRow,
    _cluster_of,
    _name_of,
    _owner_of,
    kind_of,
    log,
    stored_classes,
    valid_version,
)
from virtplane.state._location import backend_class
from virtplane.state._records import _EVENT_INSERT, _EVENT_VALUES, RecordsMixin

__all__ = ["MODIFY_ATTEMPTS", "SCHEMA_VERSION", "_KINDS", "Params", "Row", "StateStore",
           "kind_of", "log", "stored_classes"]

T = TypeVar("T")

#: :meth:`StateStore.update`'s usual write: version, name and cluster unchanged (the
#: cluster compared as SQL wants a NULL compared); for the kinds that have an owner
#: (images, snapshots, which have no cluster) the owner instead of the cluster: each
#: kind compares the one indexed column it has, as cheap as before there were two
_SAME_KEYS_CAS = ("UPDATE objects SET data=:data, updated=:updated, version=version+1 "
                  "WHERE id=:id AND kind=:kind AND version=:read AND name=:name AND "
                  "cluster_id=:cluster_id RETURNING version")
_SAME_KEYS_CAS_NULL = _SAME_KEYS_CAS.replace("cluster_id=:cluster_id", "cluster_id IS NULL")
_SAME_OWNER_CAS = _SAME_KEYS_CAS.replace("cluster_id=:cluster_id", "owner_id=:owner_id")
_SAME_OWNER_CAS_NULL = _SAME_KEYS_CAS.replace("cluster_id=:cluster_id", "owner_id IS NULL")


#: the kinds whose removal first checks that no damaged row mentions them
_CONTAINERS = frozenset({"datacenter", "cluster", "host", "storage_domain"})


def _like_escaped(text: str) -> str:
    """``text`` as a LIKE pattern that matches it literally (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class StateStore(RecordsMixin):
    """Model objects, jobs, events and leases, safe for several writers.

    ``StateStore(location, readonly=None, strict=True)`` opens the backend the
    location names (a path for SQLite, a URL otherwise; see :func:`open_location`).

    :param strict: when False, an update of a stale copy is logged as a warning and
        written anyway (last writer wins) instead of raising Conflict. Only for code
        not yet converted to re-read before writing.
    :ivar location: where the store is, printable (a URL's password is hidden).
    :ivar backend: the backend's scheme (``sqlite``, ``postgresql``).
    """

    def __new__(cls, location: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Self:
        """Pick the backend class for ``location`` when called on StateStore itself."""
        if cls is StateStore:
            chosen: type[Any] = backend_class(location)
            return super().__new__(chosen)  # type: ignore[no-any-return]
        return super().__new__(cls)

    def __init__(self, location: str | os.PathLike[str], *, readonly: bool | None = None,
                 strict: bool = True) -> None:
        raise TypeError("StateStore is the interface; open a store with StateStore(location)")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location}>"

    @classmethod
    def upgrade(cls, location: str | os.PathLike[str]) -> tuple[int, int]:
        """Migrate the store at ``location`` (``virtplane state migrate``): (before, after).

        A classmethod because a backend may refuse to open an outdated store at all.
        """
        store = cls(location, readonly=False)
        try:
            return store.migrate()
        finally:
            store.close()

    # ---------------------------------------------------------------------- objects

    def add(self, obj: Any) -> None:
        """Store a new object (at revision 1); its name must be unique for its kind."""
        kind = kind_of(type(obj))
        rows = self._write_one(
            "INSERT INTO objects(id, kind, name, data, updated, version, cluster_id, "
            "owner_id) VALUES (:id, :kind, :name, :data, :updated, 1, :cluster_id, "
            ":owner_id) ON CONFLICT DO NOTHING RETURNING version",
            {"id": obj.id, "kind": kind, "name": _name_of(obj),
             "data": model.to_json(obj), "updated": time.time(),
             "cluster_id": _cluster_of(obj), "owner_id": _owner_of(obj)})
        if not rows:
            raise AlreadyExists(f"a {kind} named {_name_of(obj)!r} already exists")
        self._set_revision(obj, 1)

    def update(self, obj: Any) -> None:
        """Replace a stored object (matched by id) if nobody changed it since it was read.

        On success ``obj.revision`` is the new version, so the same copy can be updated
        again.

        :raises Conflict: the row's version is no longer ``obj.revision`` (another
            writer changed it), or ``obj`` never came from the store.
        :raises NotFound: the object is not stored (any more).
        :raises AlreadyExists: its new name is taken.
        """
        same, params = self._same_keys_write(obj)
        kind, name = params["kind"], params["name"]
        # the common path is one statement, a whole transaction by itself: the data of a
        # row whose version, name and cluster or owner are the copy's (a statement that
        # leaves the indexed columns alone spares SQLite rewriting their index entries);
        # a rename, a move to another cluster or owner, or a refused write takes the
        # path below, which writes both columns
        rows = self._write_one(same, params)
        if not rows:
            free = ("NOT EXISTS (SELECT 1 FROM objects AS other WHERE other.kind=:kind AND "
                    "other.name=:name AND other.id<>:id)")
            cas = ("UPDATE objects SET name=:name, data=:data, updated=:updated, "
                   "cluster_id=:cluster_id, owner_id=:owner_id, version=version+1 "
                   f"WHERE id=:id AND kind=:kind AND version=:read AND {free} "
                   "RETURNING version")
            with self.transaction():
                rows = self._rows(cas, params)
                if not rows:
                    if not self._rows(f"SELECT {free}", params)[0][0]:
                        raise AlreadyExists(f"a {kind} named {name!r} already exists")
                    rows = self._overwrite_stale("objects", "id=:id AND kind=:kind", params,
                                                 kind, name, "name=:name, data=:data, "
                                                 "updated=:updated, cluster_id=:cluster_id, "
                                                 "owner_id=:owner_id, ")
                self._set_revision(obj, int(rows[0][0]))
            return
        self._set_revision(obj, int(rows[0][0]))

    @staticmethod
    def _same_keys_write(obj: Any) -> tuple[str, dict[str, Any]]:
        """:meth:`update`'s common statement for ``obj`` (its name and indexed column
        unchanged, see :data:`_SAME_KEYS_CAS`) and its parameters."""
        cls = type(obj)
        if cls is _IMAGE or cls is _SNAPSHOT:  # an owner, never a cluster
            cluster_id, owner_id = None, _owner_of(obj)
            same = _SAME_OWNER_CAS if owner_id is not None else _SAME_OWNER_CAS_NULL
        else:  # perhaps a cluster, never an owner
            cluster_id, owner_id = _cluster_of(obj), None
            same = _SAME_KEYS_CAS if cluster_id is not None else _SAME_KEYS_CAS_NULL
        return same, {"id": obj.id, "kind": kind_of(cls), "name": _name_of(obj),
                      "data": model.to_json(obj), "updated": time.time(),
                      "read": obj.revision, "cluster_id": cluster_id, "owner_id": owner_id}

    #: whether one statement can update a row and add its event (a data-modifying
    #: ``WITH``, which PostgreSQL has; SQLite's ``WITH`` cannot hold an ``UPDATE``, and
    #: there both go in one transaction, whose commit is the only costly part anyway)
    _EVENT_WITH_UPDATE: ClassVar[bool] = False

    def update_with_event(self, obj: Any, message: str, level: str = "info", *,
                          code: int | None = None, correlation_id: str | None = None
                          ) -> None:
        """:meth:`update` ``obj`` and :meth:`add_event` ``message`` to its event log, both
        or neither: a state change is never kept without the event that says it
        happened, even when the process is killed between the two.

        On PostgreSQL the usual case (name and cluster or owner unchanged) is one
        statement, one round trip; otherwise, and on SQLite, one transaction. The
        arguments and errors are :meth:`update`'s and :meth:`add_event`'s; on a
        ``Conflict`` nothing is written, the event neither.
        """
        if self._EVENT_WITH_UPDATE:
            same, params = self._same_keys_write(obj)
            params.update(self._event_params(obj.id, message, level, code, correlation_id))
            # the event row is inserted from the update's RETURNING: no updated row, no
            # event; the row's new version is the one read plus one (the CAS's own rule)
            rows = self._write_one(f"WITH u AS ({same}) {_EVENT_INSERT} SELECT "
                                   f"{_EVENT_VALUES} FROM u RETURNING 1", params)
            if rows:
                self._set_revision(obj, int(params["read"]) + 1)
                return
            # refused (a conflict, a rename ...): the general path says why, or writes it
        with self.transaction():
            self.update(obj)
            self.add_event(obj.id, message, level, code=code, correlation_id=correlation_id)

    def remove(self, cls: type[Any], obj_id: str, *, revision: int | None = None) -> None:
        """Delete an object by id (its events are kept).

        :param revision: when given, delete only if the row is still at this revision
            (the ``revision`` of the copy the decision to delete was based on).
        :raises Conflict: ``revision`` is given and the row changed since.
        """
        kind = kind_of(cls)
        params = {"id": obj_id, "kind": kind, "read": revision}
        if kind in _CONTAINERS:
            self._refuse_unreadable_members(kind, obj_id)
        if revision is None and self._write_one(
                "DELETE FROM objects WHERE id=:id AND kind=:kind RETURNING 1", params):
            return  # the common case: one statement, atomic by itself
        with self.transaction():
            if revision is not None and self._count(
                    "DELETE FROM objects WHERE id=:id AND kind=:kind AND version=:read",
                    params):
                return
            row = self._rows("SELECT version, name FROM objects WHERE id=:id AND kind=:kind",
                             params)
            if not row:
                raise NotFound(f"no {kind} with id {obj_id}")
            if revision is not None:
                if not valid_version(row[0][0]):  # never deleted on a stale copy's say
                    raise self._bad_row(kind, obj_id, "its version column holds "
                                        f"{row[0][0]!r:.40}, not a whole number from 1 on")
                self._stale(kind, row[0][1], revision, row[0][0])
            self._count("DELETE FROM objects WHERE id=:id AND kind=:kind", params)

    def get(self, cls: type[T], obj_id: str) -> T:
        """The object of ``cls`` with this id, at its current revision."""
        kind = kind_of(cls)
        rows = self._rows("SELECT data, version FROM objects WHERE id=:id AND kind=:kind",
                          {"id": obj_id, "kind": kind})
        if not rows:
            raise NotFound(f"no {kind} with id {obj_id}")
        return self._row(cls, rows[0][0], rows[0][1], obj_id)

    def refresh(self, obj: T) -> T:
        """A fresh copy of ``obj`` as stored now (for a retry after a Conflict)."""
        return self.get(type(obj), obj.id)  # type: ignore[attr-defined]

    def find(self, cls: type[T], name_or_id: str) -> T:
        """Look an object up by name, else by id; NotFound names what exists."""
        return self._find(cls, name_or_id, "")

    def _find(self, cls: type[T], name_or_id: str, lock: str) -> T:
        kind = kind_of(cls)
        params = {"kind": kind, "key": name_or_id}
        if lock:  # one statement: the row it locks is the row it returns
            rows = self._rows("SELECT data, version, id FROM objects WHERE kind=:kind AND "
                              "(name=:key OR id=:key) ORDER BY name=:key DESC LIMIT 1" + lock,
                              params)
        else:  # by name (a probe of the unique index), else by id: the common case is
            # one cheap statement instead of a scan of both indexes and a sort
            rows = (self._rows("SELECT data, version, id FROM objects WHERE kind=:kind AND "
                               "name=:key", params)
                    or self._rows("SELECT data, version, id FROM objects WHERE kind=:kind AND "
                                  "id=:key", params))
        if not rows:
            names = [r[0] for r in self._rows(
                "SELECT name FROM objects WHERE kind=:kind ORDER BY name LIMIT 20", params)]
            known = ", ".join(names) if names else "none"
            raise NotFound(f"no {kind} named {name_or_id!r} (known: {known})")
        return self._row(cls, rows[0][0], rows[0][1], rows[0][2])

    def modify(self, cls: type[T], name_or_id: str, fn: Callable[[T], T | None], *,
               attempts: int = MODIFY_ATTEMPTS) -> T:
        """Read the current object, let ``fn`` change it and write it back, atomically.

        ``fn`` gets the current copy and either changes it in place (returning None) or
        returns the new object (e.g. ``attrs.evolve(obj, ...)``). Read and write happen
        in one transaction, with the row locked from the read on (PostgreSQL); should
        the write still conflict (``fn`` itself wrote the object through another copy),
        the transaction is rolled back and everything is retried, up to ``attempts``
        times, so ``fn`` must only change the object it is given. Returns the object
        as written.

        :raises Conflict: still conflicting after ``attempts`` tries.
        :raises NotFound: there is no such object.
        """
        kind = kind_of(cls)
        last: Conflict | None = None
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction():
                    current = self._find(cls, name_or_id, self._FOR_UPDATE)
                    changed = fn(current)
                    new = current if changed is None else changed
                    if new.id != current.id:  # type: ignore[attr-defined]
                        raise ValueError(f"modify({cls.__name__}, {name_or_id!r}): fn "
                                         "returned a different object")
                    self.update(new)
                return new
            except Conflict as exc:
                last = exc
                log.debug("modify %s %r: attempt %d of %d conflicted: %s",
                          kind, name_or_id, attempt, attempts, exc)
        assert last is not None, "attempts must be at least 1"
        raise Conflict(last.kind, last.name, last.read_revision, last.current_revision,
                       attempts=attempts)

    def has(self, cls: type[Any], obj_id: str) -> bool:
        """Whether an object of ``cls`` with this id is stored."""
        return bool(self._rows("SELECT 1 FROM objects WHERE kind=:kind AND id=:id",
                               {"kind": kind_of(cls), "id": obj_id}))

    def exists(self, cls: type[Any], name: str) -> bool:
        """Whether an object of ``cls`` has this name."""
        return bool(self._rows("SELECT 1 FROM objects WHERE kind=:kind AND name=:name",
                               {"kind": kind_of(cls), "name": name}))

    def require_free(self, cls: type[Any], name: str, what: str | None = None) -> None:
        """Raise AlreadyExists when ``name`` is taken for ``cls``."""
        if self.exists(cls, name):
            raise AlreadyExists(f"a {what or kind_of(cls).replace('_', ' ')} named {name!r} "
                                "already exists")

    def list(self, cls: type[T]) -> builtins.list[T]:
        """Every object of ``cls`` that can be read, by name.

        A row that cannot (see :class:`UnreadableRow`) is left out and logged as a
        warning naming it (once per row and version), so that one damaged row does not
        make every listing, the CLI's and an engine's loop, unusable; reading that
        object itself (:meth:`get`, :meth:`find`, :meth:`modify`) raises, and removing a
        data center, cluster, host or storage domain a damaged row mentions is refused.
        ``virtplane state check`` lists every such row.
        """
        rows = self._rows("SELECT data, version, id FROM objects WHERE kind=:kind "
                          "ORDER BY name", {"kind": kind_of(cls)})
        try:
            return [self._row(cls, r[0], r[1], r[2]) for r in rows]
        except UnreadableRow:
            return self._readable(cls, rows)

    def owned(self, cls: type[T], owner_id: str) -> builtins.list[T]:
        """The objects of ``cls`` that belong to the object with id ``owner_id``, by name.

        What belongs to what is the ``owner_id`` column the store writes with every row,
        and the lookup follows its index, so the cost follows the answer, not the store:

        - ``owned(model.Image, vm.id)``: the images made for a VM (``image.owner ==
          "vm:<id>"``); ``owned(model.Image, template.id)``: a template's base images
          (``"template:<id>"``; images stored before owners were recorded, owned by
          :data:`~virtplane.model.TEMPLATE_OWNER_UNKNOWN`, are not among them: the
          template's ``image_ids`` name those). Standalone disks belong to nobody.
        - ``owned(model.Snapshot, vm.id)``: a VM's snapshots.

        :raises TypeError: objects of ``cls`` have no owner (only Image and Snapshot do).
        :raises ValueError: ``owner_id`` is empty or not a string.
        """
        if cls not in OWNED_CLASSES:
            names = " and ".join(c.__name__ for c in OWNED_CLASSES)
            raise TypeError(f"{cls.__name__} objects have no owner in the store; only "
                            f"{names} objects do")
        if not owner_id or not isinstance(owner_id, str):
            raise ValueError(f"owned({cls.__name__}, ...): the owner id must be a non-empty "
                             f"string, not {owner_id!r}")
        # sorted here, not by the statement: ORDER BY name would tempt the planner into
        # walking the kind's (kind, name) index past every object of the kind
        rows = sorted(self._rows("SELECT name, data, version, id FROM objects WHERE "
                                 "kind=:kind AND owner_id=:owner_id",
                                 {"kind": kind_of(cls), "owner_id": owner_id}),
                      key=lambda r: str(r[0]))
        return [self._row(cls, r[1], r[2], r[3]) for r in rows]

    def mentioning(self, cls: type[T], values: Iterable[str], *,
                   exclude_id: str | None = None) -> builtins.list[T]:
        """The objects of ``cls`` whose stored JSON holds one of ``values`` as a string
        (anywhere: any field, at any depth), by name: the candidates for a question
        such as "which VMs have a disk on one of these images", which the caller
        answers by checking the field it means on each.

        No index answers such a question; the statement reads the kind's rows in the
        database and only the rows that match are parsed (parsing is where listing
        every VM spends its time: about 25 times the cost of the scan).

        :param exclude_id: leave out the object with this id.
        :raises ValueError: a value is empty or not a string.
        """
        wanted = builtins.list(values)
        for value in wanted:
            if not value or not isinstance(value, str):
                raise ValueError(f"mentioning({cls.__name__}, ...): every value must be a "
                                 f"non-empty string, not {value!r}")
        wanted = sorted(set(wanted))
        if not wanted:
            return []
        params: dict[str, Any] = {"kind": kind_of(cls), "exclude": exclude_id or ""}
        terms = []
        for i, value in enumerate(wanted):
            # the JSON text of the string, quotes included: a whole value, not a part
            params[f"p{i}"] = "%" + _like_escaped(json.dumps(value)) + "%"
            terms.append(f"data LIKE :p{i} ESCAPE '\\'")
        rows = self._rows("SELECT data, version, id FROM objects WHERE kind=:kind AND "
                          f"id<>:exclude AND ({' OR '.join(terms)}) ORDER BY name", params)
        return [self._row(cls, r[0], r[1], r[2]) for r in rows]

    def versions(self, cls: type[Any], *, ids: Iterable[str] | None = None,
                 cluster_ids: Iterable[str] | None = None) -> dict[str, int]:
        """id -> current revision of the objects of ``cls`` (cheap: nothing is parsed),
        so a cache re-reads only the rows that moved.

        :param ids: only these objects (those that exist); by primary key.
        :param cluster_ids: only objects whose ``cluster_id`` is one of these (VMs and
            hosts); by the ``cluster_id`` column and its index, so the cost follows the
            answer, not the store.
        Both given: objects that match both.
        """
        sql = "SELECT id, version FROM objects WHERE kind=:kind"
        params: dict[str, Any] = {"kind": kind_of(cls)}
        for column, values in (("id", ids), ("cluster_id", cluster_ids)):
            if values is None:
                continue
            wanted = sorted(set(values))
            if not wanted:
                return {}
            names = [f"v{len(params) + i}" for i in range(len(wanted))]
            params.update(zip(names, wanted, strict=True))
            sql += f" AND {column} IN ({', '.join(':' + n for n in names)})"
        rows = self._rows(sql, params)
        out = {r[0]: r[1] for r in rows if type(r[1]) is int and r[1] >= 1}
        if len(out) < len(rows):  # a damaged version: left out, as list() leaves it
            for r in rows:
                if r[0] not in out:
                    self._left_out(self._bad_row(
                        kind_of(cls), r[0], f"its version column holds {r[1]!r:.40}, not a "
                        "whole number from 1 on"), r[1])
        return out

    def _refuse_unreadable_members(self, kind: str, obj_id: str) -> None:
        """Before a data center, cluster, host or storage domain is removed: refuse when
        a row that mentions its id cannot be read (a VM of a cluster, say, which the
        caller's check of what is still inside could not see, its listing having left
        it out). Removing such objects is rare; the rows read are those naming it."""
        rows = self._rows("SELECT data, version, id, kind FROM objects WHERE id<>:id AND "
                          "data LIKE :p ESCAPE '\\'",
                          {"id": obj_id, "p": "%" + _like_escaped(json.dumps(obj_id)) + "%"})
        by_kind = stored_classes()
        for data, version, row_id, row_kind in rows:
            cls = by_kind.get(row_kind)
            try:
                if cls is None:
                    raise self._bad_row(str(row_kind), row_id, "unknown kind")
                self._row(cls, data, version, row_id)
            except UnreadableRow as exc:
                raise UnreadableRow(exc.location, exc.kind, exc.row_id, exc.name, exc.reason,
                                    context=f"the {kind.replace('_', ' ')} {obj_id} is not "
                                    "removed: a row that mentions it") from None
