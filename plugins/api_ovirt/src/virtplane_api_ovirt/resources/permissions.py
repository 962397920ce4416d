"""The ``permissions`` sub-collection of every object (``/permissions`` is System's) and
of users and groups (``/users/{id}/permissions``, ``/groups/{id}/permissions``): list,
grant, get and revoke."""

from __future__ import annotations

from typing import Any

from virtplane.errors import InvalidInput, NotFound
from virtplane_api_ovirt import parse
from virtplane_api_ovirt.authz import ADMIN, Forbidden
from virtplane_api_ovirt.authz.model import SYSTEM, ActionGroup, Kind, ObjectRef, Permission
from virtplane_api_ovirt.authz.tree import StoreTree
from virtplane_api_ovirt.base import Call, Reply, Route, collection, entity, removed
from virtplane_api_ovirt.guard import PERMISSION_PARENTS, body_object
from virtplane_api_ovirt.render import Node
from virtplane_api_ovirt.resources.aaa_nodes import permission_node


def _object_of(call: Call, coll: str | None) -> ObjectRef:
    tree = call.tree or StoreTree(call.m.store)
    if coll is None:
        return SYSTEM
    return tree.resolve(PERMISSION_PARENTS[coll], call.params["id"])


def _list_on(call: Call, obj: ObjectRef) -> Reply:
    ix = call.api.authz.store.index()
    perms = sorted(ix.by_object.get(obj.id, ()), key=lambda p: p.id)
    return collection("permissions", "permission", [permission_node(call, p) for p in perms])


def _principal(call: Call, body: Node) -> tuple[str, bool]:
    user = parse.child(body, "user")
    group = parse.child(body, "group")
    if user is not None:
        key = parse.text(user, "id") or parse.text(user, "user_name") or \
            parse.text(user, "name")
        if key:
            return key, False
    if group is not None:
        key = parse.text(group, "id") or parse.text(group, "name")
        if key:
            return key, True
    raise InvalidInput("a permission needs a <user> or a <group> (by id or name)")


def _grant(call: Call, obj: ObjectRef, principal: str, group: bool, body: Node) -> Reply:
    authz = call.api.authz
    role_key = parse.ref(body, "role")
    if not role_key:
        raise InvalidInput("a permission needs a <role> (by id or name)")
    role = authz.store.index().role(role_key)
    tree = call.tree or StoreTree(call.m.store)
    if call.user != ADMIN:
        # nobody hands out more than they have: every action of the role, here
        missing = [a.name for a in sorted(role.actions, key=lambda a: a.id)
                   if not authz.check(call.user, a, obj, tree).granted]
        if missing:
            raise Forbidden(f"{call.user} cannot give role {role.name} on {obj}: it lacks "
                            f"{', '.join(missing)} there itself")
    perm = authz.grant(principal, role.id, obj, by=call.user, group=group)
    return entity("permission", permission_node(call, perm), status=201)


def object_permissions(coll: str | None) -> tuple[Any, Any, Any, Any]:
    """list, add, get, remove handlers of ``/{coll}/{id}/permissions`` (System's for None)."""

    def list_(call: Call) -> Reply:
        return _list_on(call, _object_of(call, coll))

    def add(call: Call) -> Reply:
        body = call.need_body("permission")
        principal, group = _principal(call, body)
        return _grant(call, _object_of(call, coll), principal, group, body)

    def get(call: Call) -> Reply:
        obj = _object_of(call, coll)
        perm = call.api.authz.store.index().permissions.get(call.params["perm"])
        if perm is None or perm.object_id != obj.id:
            raise NotFound(f"no permission {call.params['perm']!r} on {obj}")
        return entity("permission", permission_node(call, perm))

    def remove(call: Call) -> Reply:
        obj = _object_of(call, coll)
        perm = call.api.authz.store.index().permissions.get(call.params["perm"])
        if perm is None or perm.object_id != obj.id:
            raise NotFound(f"no permission {call.params['perm']!r} on {obj}")
        call.api.authz.revoke(perm.id, by=call.user)
        return removed()

    return list_, add, get, remove


def _principal_permissions(group: bool) -> tuple[Any, Any, Any, Any]:
    """``/users/{id}/permissions`` and ``/groups/{id}/permissions``."""

    def owner(call: Call) -> str:
        ix = call.api.authz.store.index()
        return ix.group(call.params["id"]).id if group else ix.user(call.params["id"]).id

    def list_(call: Call) -> Reply:
        ix = call.api.authz.store.index()
        perms = ix.by_principal.get(owner(call), ())
        return collection("permissions", "permission",
                          [permission_node(call, p) for p in sorted(perms, key=lambda p: p.id)])

    def add(call: Call) -> Reply:
        body = call.need_body("permission")
        tree = call.tree or StoreTree(call.m.store)
        return _grant(call, body_object(call, tree), owner(call), group, body)

    def find(call: Call) -> Permission:
        perm = call.api.authz.store.index().permissions.get(call.params["perm"])
        if perm is None or perm.principal_id != owner(call):
            raise NotFound(f"no permission {call.params['perm']!r} of this "
                           f"{'group' if group else 'user'}")
        return perm

    def get(call: Call) -> Reply:
        return entity("permission", permission_node(call, find(call)))

    def remove(call: Call) -> Reply:
        perm = find(call)
        tree = call.tree or StoreTree(call.m.store)
        obj = SYSTEM if perm.object_kind == Kind.SYSTEM else \
            tree.resolve(perm.object_kind, perm.object_id)
        call.api.authz.require(call.user, ActionGroup.MANIPULATE_PERMISSIONS, obj, tree)
        call.api.authz.revoke(perm.id, by=call.user)
        return removed()

    return list_, add, get, remove


def _routes() -> list[Route]:
    out: list[Route] = []
    for coll in [None, *PERMISSION_PARENTS]:
        base = "" if coll is None else f"/{coll}/{{id}}"
        list_, add, get, remove = object_permissions(coll)
        out += [("GET", f"{base}/permissions", list_), ("POST", f"{base}/permissions", add),
                ("GET", f"{base}/permissions/{{perm}}", get),
                ("DELETE", f"{base}/permissions/{{perm}}", remove)]
    for prefix, group in (("/users", False), ("/groups", True)):
        list_, add, get, remove = _principal_permissions(group)
        out += [("GET", f"{prefix}/{{id}}/permissions", list_),
                ("POST", f"{prefix}/{{id}}/permissions", add),
                ("GET", f"{prefix}/{{id}}/permissions/{{perm}}", get),
                ("DELETE", f"{prefix}/{{id}}/permissions/{{perm}}", remove)]
    return out


ROUTES: list[Route] = _routes()
