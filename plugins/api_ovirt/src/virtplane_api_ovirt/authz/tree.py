"""The object tree permissions are inherited down.

    System ─ data center ─ cluster ─ host
                     │           └── VM ── its disks
                     └── storage domain ── disk
    System ─ template ── its disks
    System ─ data center ─ network

Networks are not stored objects (the API derives them from data centers and
NICs): the API gives the tree a resolver for them (:meth:`StoreTree.derive`).

A permission on an object holds on the object and everything below it. A VM's
disk has two parents (the VM and the storage domain), so a UserVmManager of
the VM and a StorageAdmin of the domain both reach it. Parents are read from
the state store through its public API; :class:`StoreTree` remembers what it
read, and one is made per request (a request sees one tree).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from virtplane import model
from virtplane.errors import NotFound
from virtplane_api_ovirt.authz.model import SYSTEM, Kind, ObjectRef

_CLASSES: dict[Kind, type[Any]] = {
    Kind.DATACENTER: model.DataCenter, Kind.CLUSTER: model.Cluster, Kind.HOST: model.Host,
    Kind.VM: model.Vm, Kind.STORAGEDOMAIN: model.StorageDomain, Kind.DISK: model.Image,
    Kind.TEMPLATE: model.Template,
}


class Tree(Protocol):
    """Where an object sits: its parents (none for System)."""

    def parents(self, obj: ObjectRef) -> list[ObjectRef]: ...

    def resolve(self, kind: Kind, name_or_id: str) -> ObjectRef: ...


class StoreTree:
    """The tree as the state store has it; objects read once per instance."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._seen: dict[tuple[Kind, str], Any] = {}
        self._derived: dict[Kind, Callable[[str], Any]] = {}

    def derive(self, kind: Kind, by_id: Callable[[str], Any]) -> None:
        """Objects of ``kind`` that are not stored: ``by_id`` finds one (None: none)."""
        self._derived[kind] = by_id

    def get(self, kind: Kind, obj_id: str) -> Any:
        """The stored object, or None when it is gone."""
        key = (kind, obj_id)
        if key not in self._seen:
            if kind in self._derived:
                self._seen[key] = self._derived[kind](obj_id)
                return self._seen[key]
            if kind not in _CLASSES:
                return None
            try:
                self._seen[key] = self.store.get(_CLASSES[kind], obj_id)
            except NotFound:
                self._seen[key] = None
        return self._seen[key]

    def remember(self, kind: Kind, obj: Any) -> None:
        """Give the tree an object the caller has already read (a list's members)."""
        self._seen[(kind, obj.id)] = obj

    def resolve(self, kind: Kind, name_or_id: str) -> ObjectRef:
        """An object by name or id (named as the caller named it in messages)."""
        if kind == Kind.SYSTEM:
            return SYSTEM
        obj = self.get(kind, name_or_id)
        if obj is None:
            if kind not in _CLASSES:
                raise NotFound(f"no {kind.value.replace('_', ' ')} with id {name_or_id!r}")
            if kind == Kind.DISK:
                obj = next((i for i in self.store.list(model.Image)
                            if i.alias == name_or_id), None)
                if obj is None:
                    raise NotFound(f"no disk {name_or_id!r}")
            else:
                obj = self.store.find(_CLASSES[kind], name_or_id)
            self._seen[(kind, obj.id)] = obj
        return ObjectRef(kind, obj.id, _name(kind, obj))

    def parents(self, obj: ObjectRef) -> list[ObjectRef]:
        if obj.kind == Kind.SYSTEM:
            return []
        found = self.get(obj.kind, obj.id)
        if found is None:
            return [SYSTEM]
        return [self.ref(kind, oid) for kind, oid in parents_of(obj.kind, found)]

    def ref(self, kind: Kind, obj_id: str) -> ObjectRef:
        if kind == Kind.SYSTEM:
            return SYSTEM
        found = self.get(kind, obj_id)
        return ObjectRef(kind, obj_id, _name(kind, found) if found is not None else "")


def parents_of(kind: Kind, obj: Any) -> list[tuple[Kind, str]]:
    """The parents of a stored object, from its own fields (no store read)."""
    if kind in (Kind.VM, Kind.HOST):
        return [(Kind.CLUSTER, obj.cluster_id)]
    if kind == Kind.CLUSTER:
        return [(Kind.DATACENTER, obj.datacenter_id)]
    if kind == Kind.NETWORK and obj.dc_id:
        return [(Kind.DATACENTER, obj.dc_id)]
    if kind == Kind.STORAGEDOMAIN and obj.datacenter_id:
        return [(Kind.DATACENTER, obj.datacenter_id)]
    if kind == Kind.DISK:
        out = [(Kind.STORAGEDOMAIN, str(obj.domain_id))]
        owner_kind, _, owner_id = str(obj.owner).partition(":")
        if owner_kind == "vm" and owner_id:
            out.append((Kind.VM, owner_id))
        elif owner_kind == "template" and owner_id:
            out.append((Kind.TEMPLATE, owner_id))
        return out
    return [(Kind.SYSTEM, SYSTEM.id)]


def _name(kind: Kind, obj: Any) -> str:
    if kind == Kind.DISK:
        return str(obj.alias or obj.id)
    return str(obj.name)
