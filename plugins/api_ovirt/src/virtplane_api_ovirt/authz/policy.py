"""Deciding: may this user do that action on this object?

A permission grants when it is given to the user or to one of its groups, on
the object or on one of its ancestors (:mod:`.tree`), with a role holding the
action group. The walk up the tree is a handful of dictionary lookups in the
store's in-memory index, whatever the number of permissions; the answer says
which permission granted, or why none did, so a refusal can name what is
missing (a 403 fault, a CLI error, ``virtplane permission explain``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from virtplane.errors import VirtplaneError
from virtplane_api_ovirt.authz.model import (
    SYSTEM_ID,
    ActionGroup,
    Kind,
    ObjectRef,
    Permission,
    Role,
)
from virtplane_api_ovirt.authz.store import AuthzStore, Index, User
from virtplane_api_ovirt.authz.tree import StoreTree, Tree, parents_of


class Forbidden(VirtplaneError):
    """The user lacks a permission (HTTP 403; the CLI's exit status 77, EX_NOPERM)."""

    exit_code = 77


@dataclass(frozen=True)
class Decision:
    """The answer to one check, with its reason."""

    granted: bool
    user: str
    action: ActionGroup | None
    target: ObjectRef
    permission: Permission | None = None
    role: Role | None = None
    via: ObjectRef | None = None
    reason: str = ""

    def message(self) -> str:
        """One line for a fault, an error or an audit record."""
        what = self.action.name if self.action else "any permission"
        if self.granted and self.role is not None and self.via is not None:
            return (f"{self.user} may {what} on {self.target}: role {self.role.name} on "
                    f"{self.via} (permission {self.permission.id if self.permission else '?'})")
        return (f"{self.user} lacks permission {what} on {self.target}"
                + (f": {self.reason}" if self.reason else ""))


class Authorizer:
    """Checks against one :class:`AuthzStore`."""

    def __init__(self, store: AuthzStore) -> None:
        self.store = store

    def ancestors(self, obj: ObjectRef, tree: Tree) -> list[ObjectRef]:
        """The object and everything above it, nearest first (System last)."""
        out: list[ObjectRef] = []
        seen: set[str] = set()
        todo = [obj]
        while todo:
            here = todo.pop(0)
            if here.id in seen:
                continue
            seen.add(here.id)
            out.append(here)
            todo.extend(tree.parents(here))
        return out

    def check(self, user: str | User, action: ActionGroup | None, obj: ObjectRef,
              tree: Tree, ix: Index | None = None) -> Decision:
        """May ``user`` do ``action`` on ``obj``? ``action`` None: does it hold any role
        there (what seeing an object needs)."""
        ix = ix or self.store.index()
        record = user if isinstance(user, User) else ix.users.get(user)
        name = record.name if record is not None else str(user)
        if record is None:
            return Decision(False, name, action, obj, reason="the user is not known "
                            "(removed, or never added)")
        principals = ix.principals(record)
        chain = self.ancestors(obj, tree)
        for here in chain:
            for perm in ix.by_object.get(here.id, ()):
                if perm.principal_id not in principals:
                    continue
                role = ix.roles.get(perm.role_id)
                if role is None:
                    continue
                if action is None or action in role.actions:
                    return Decision(True, name, action, obj, perm, role, here)
        return Decision(False, name, action, obj,
                        reason=self._why_not(ix, record, principals, action, chain))

    def require(self, user: str | User, action: ActionGroup | None, obj: ObjectRef,
                tree: Tree) -> Decision:
        """:meth:`check`, raising :class:`Forbidden` with the reason when refused."""
        decision = self.check(user, action, obj, tree)
        if not decision.granted:
            raise Forbidden(decision.message())
        return decision

    @staticmethod
    def _why_not(ix: Index, user: User, principals: frozenset[str],
                 action: ActionGroup | None, chain: list[ObjectRef]) -> str:
        """Which of the user's roles come near, so the refusal says what to change."""
        where = " → ".join(str(o) for o in chain)
        near = []
        for here in chain:
            for perm in ix.by_object.get(here.id, ()):
                if perm.principal_id in principals:
                    role = ix.roles.get(perm.role_id)
                    near.append(f"{role.name if role else perm.role_id} on {here}")
        groups = [ix.groups[g].full for g in ix.member_of.get(user.id, ()) if g in ix.groups]
        held = f"it holds {', '.join(near)}, whose roles lack it" if near else \
            "it holds no role there"
        via = f" (as itself or through groups {', '.join(groups)})" if groups else ""
        need = f"a role with {action.name}" if action else "any role"
        return f"{held}{via}; needs {need} on one of: {where}"


class Visibility:
    """Which objects one user may see (any role on them or above), for filtering lists.

    Built once per request from the ids the user's permissions name; each object is
    then judged from its own fields and memoized answers for its parents, so a list
    of 10,000 VMs costs two set lookups per VM, not a walk of the tree.
    """

    def __init__(self, ix: Index, user: User | None, tree: StoreTree, everything: bool = False):
        self.tree = tree
        self.everything = everything
        self.ids: frozenset[str] = frozenset()
        self.user_id = user.id if user is not None else ""
        #: the objects the user's permissions name, by kind
        self.by_kind: dict[Kind, set[str]] = {}
        if user is not None and not everything:
            for principal in ix.principals(user):
                for p in ix.by_principal.get(principal, ()):
                    self.by_kind.setdefault(p.object_kind, set()).add(p.object_id)
            self.ids = frozenset(i for ids in self.by_kind.values() for i in ids)
            self.everything = SYSTEM_ID in self.ids
        self._memo: dict[str, bool] = {}

    def vm_scope(self) -> tuple[frozenset[str], frozenset[str]] | None:
        """Where the visible VMs are: (VM ids, cluster ids whose VMs are all visible),
        so a list reads those and no others; None when the user sees everything.

        A VM is visible through a permission on itself, its cluster or its cluster's
        data center (the tree in :mod:`.tree`); a data center's clusters are read from
        the store once per request.
        """
        if self.everything:
            return None
        clusters = set(self.by_kind.get(Kind.CLUSTER, ()))
        dcs = self.by_kind.get(Kind.DATACENTER, set())
        if dcs:
            from virtplane import model

            clusters.update(c.id for c in self.tree.store.list(model.Cluster)
                            if c.datacenter_id in dcs)
        return frozenset(self.by_kind.get(Kind.VM, ())), frozenset(clusters)

    def sees(self, kind: Kind, obj: Any) -> bool:
        """Whether the object (a stored model object of ``kind``) is visible."""
        if self.everything or obj.id in self.ids:
            return True
        return any(self._ref_visible(k, oid) for k, oid in parents_of(kind, obj))

    def sees_id(self, kind: Kind, obj_id: str) -> bool:
        """:meth:`sees` for an id (read through the tree once)."""
        if self.everything or obj_id in self.ids:
            return True
        return self._ref_visible(kind, obj_id)

    def _ref_visible(self, kind: Kind, obj_id: str) -> bool:
        if kind == Kind.SYSTEM:
            return False
        hit = self._memo.get(obj_id)
        if hit is None:
            self._memo[obj_id] = False  # a cycle (never in a sane store) ends here
            if obj_id in self.ids:
                hit = True
            else:
                ref = ObjectRef(kind, obj_id)
                hit = any(self._ref_visible(p.kind, p.id) for p in self.tree.parents(ref))
            self._memo[obj_id] = hit
        return hit

    def sees_any(self, obj_id: str | None) -> bool:
        """For a record about an object of any kind (an event, a job): visible when
        that object is, whatever its kind; records about nothing are SuperUser's."""
        if self.everything:
            return True
        if obj_id is None:
            return False
        if obj_id in self.ids or obj_id == self.user_id:
            return True
        hit = self._memo.get("any:" + obj_id)
        if hit is None:
            hit = False
            for kind in (Kind.VM, Kind.HOST, Kind.CLUSTER, Kind.STORAGEDOMAIN,
                         Kind.DATACENTER, Kind.TEMPLATE, Kind.DISK):
                found = self.tree.get(kind, obj_id)
                if found is not None:
                    hit = self.sees(kind, found)
                    break
            self._memo["any:" + obj_id] = hit
        return hit

    def only(self, kind: Kind, objects: list[Any]) -> list[Any]:
        if self.everything:
            return objects
        return [o for o in objects if self.sees(kind, o)]
