"""``/users``, ``/groups``, ``/roles``, ``/domains`` and the ``permissions``
sub-collection of every object (``/permissions`` is System's).

Shapes follow the SDK's readers: a user has ``user_name`` (``alice@internal-authz``
for the built-in directory, as oVirt spells it), ``principal``, ``namespace``,
``domain`` and ``domain_entry_id``; a permission has ``role`` and ``user`` or
``group`` references and one object reference (none for System); a role has
``permits`` (action groups by oVirt's ids). Adding a user that exists already
answers it again (201): a local user is created with its password by
``virtplane user add``, which is oVirt's ``ovirt-aaa-jdbc-tool user add``, and
the SDK then "adds" it to the engine as on oVirt.
"""

from __future__ import annotations

from typing import Any

from virtplane.errors import InvalidInput, NotFound
from virtplane_api_ovirt import parse
from virtplane_api_ovirt.authz import ADMIN, Forbidden, codes
from virtplane_api_ovirt.authz.model import (
    SYSTEM,
    ActionGroup,
    Kind,
    ObjectRef,
    Permission,
    Role,
)
from virtplane_api_ovirt.authz.store import INTERNAL, Group, User, split_name
from virtplane_api_ovirt.authz.tree import StoreTree
from virtplane_api_ovirt.base import (
    BASE,
    Call,
    Reply,
    Route,
    collection,
    derived_id,
    entity,
    links,
    ref,
    removed,
)
from virtplane_api_ovirt.guard import OBJECT_TAGS, PERMISSION_PARENTS, body_object
from virtplane_api_ovirt.render import Node
from virtplane_api_ovirt.search import Searcher

_COLLECTION_OF = {kind: coll for coll, kind in PERMISSION_PARENTS.items()}
_TAG_OF = {kind: tag for tag, kind in OBJECT_TAGS.items()}


def domain_label(domain: str) -> str:
    """oVirt calls the built-in directory ``internal-authz``."""
    return "internal-authz" if domain == INTERNAL else domain


def domain_id(domain: str) -> str:
    return derived_id("domain", domain)


def _domain_of(call: Call, key: str) -> str:
    for name in call.api.authz.domains():
        if key in (name, domain_id(name), domain_label(name)):
            return name
    raise NotFound(f"no directory {key!r}; configured: {', '.join(call.api.authz.domains())}")


def user_node(user: User) -> Node:
    path = f"{BASE}/users/{user.id}"
    label = domain_label(user.domain)
    return {"href": path, "id": user.id, "name": user.principal,
            "user_name": f"{user.principal}@{label}", "principal": user.principal,
            "namespace": "*" if user.domain == INTERNAL else user.external_id,
            "domain_entry_id": user.external_id or user.id,
            "domain": {"href": f"{BASE}/domains/{domain_id(user.domain)}",
                       "id": domain_id(user.domain), "name": label},
            "link": links(path, "groups", "permissions", "roles", "sshpublickeys", "tags")}


def group_node(group: Group) -> Node:
    path = f"{BASE}/groups/{group.id}"
    return {"href": path, "id": group.id, "name": group.name,
            "namespace": "*" if group.domain == INTERNAL else group.external_id,
            "domain_entry_id": group.external_id or group.id,
            "domain": {"href": f"{BASE}/domains/{domain_id(group.domain)}",
                       "id": domain_id(group.domain), "name": domain_label(group.domain)},
            "link": links(path, "permissions", "roles", "tags")}


def permit_node(role: Role, group: ActionGroup) -> Node:
    return {"href": f"{BASE}/roles/{role.id}/permits/{group.id}", "id": str(group.id),
            "name": group.label, "administrative": group.administrative,
            "role": ref("roles", role.id)}


def role_node(role: Role) -> Node:
    path = f"{BASE}/roles/{role.id}"
    return {"href": path, "id": role.id, "name": role.name, "description": role.description,
            "administrative": role.administrative, "mutable": role.mutable,
            "link": links(path, "permits")}


def permission_node(call: Call, perm: Permission) -> Node:
    path = f"{BASE}/permissions/{perm.id}"
    if perm.object_kind != Kind.SYSTEM:
        path = f"{BASE}/{_COLLECTION_OF[perm.object_kind]}/{perm.object_id}/permissions/{perm.id}"
    node: Node = {"href": path, "id": perm.id, "role": ref("roles", perm.role_id)}
    if perm.principal_kind == "group":
        node["group"] = ref("groups", perm.principal_id)
    else:
        node["user"] = ref("users", perm.principal_id)
    if perm.object_kind != Kind.SYSTEM:
        node[_TAG_OF[perm.object_kind]] = ref(_COLLECTION_OF[perm.object_kind], perm.object_id)
    return node


# ------------------------------------------------------------------ users


def _login_names(user: User) -> list[str]:
    """What ``usrname=`` matches: the name, NAME@DIRECTORY, and oVirt's
    NAME@PROVIDER spelling (``alice@internal-authz``, ``bob@corp-authz``)."""
    provider = domain_label(user.domain)
    if not provider.endswith("-authz"):
        provider += "-authz"
    return [user.name, user.principal, f"{user.principal}@{provider}"]


def _users_searcher() -> Searcher[User]:
    return Searcher("user", {
        "name": lambda u: [u.principal], "usrname": _login_names,
        "user_name": lambda u: [u.name], "id": lambda u: [u.id],
        "domain": lambda u: [u.domain, domain_label(u.domain)],
    }, lambda u: u.name)


def list_users(call: Call) -> Reply:
    authz = call.api.authz
    ix = authz.store.index()
    users = sorted(ix.users.values(), key=lambda u: u.name)
    if call.tree is not None and not authz.check(call.user, ActionGroup.MANIPULATE_USERS,
                                                 SYSTEM, call.tree).granted:
        users = [u for u in users if u.name == call.user]
    found = call.search(_users_searcher(), users)
    return collection("users", "user", [user_node(u) for u in found])


def _user(call: Call) -> User:
    return call.api.authz.store.index().user(call.params["id"])


def get_user(call: Call) -> Reply:
    return entity("user", user_node(_user(call)))


def add_user(call: Call) -> Reply:
    """``users_service().add(types.User(user_name='alice@corp', domain=...))``."""
    body = call.need_body("user")
    login = parse.text(body, "user_name") or parse.text(body, "principal") or \
        parse.text(body, "name")
    if not login:
        raise InvalidInput("a user needs a <user_name> (NAME@DIRECTORY)")
    domain = parse.text(body, "domain", "name") or parse.text(body, "domain", "id")
    name, user_domain = split_name(login)
    if "@" not in login and domain:
        user_domain = _domain_of(call, domain)
    full = f"{name}@{user_domain}"
    authz = call.api.authz
    existing = authz.store.index().users.get(full)
    if existing is not None:
        return entity("user", user_node(existing), status=201)
    if user_domain == INTERNAL:
        raise NotFound(f"there is no local user {name!r}: create it first with "
                       f"`virtplane user add {name}` (it sets the password)")
    user = authz.add_user(full, by=call.user)
    return entity("user", user_node(user), status=201)


def remove_user(call: Call) -> Reply:
    user = _user(call)
    call.api.authz.remove_user(user.id, by=call.user)
    for key_id, _ in call.api.extras.ssh_keys(user.id):  # its SSH keys go with it
        call.api.extras.drop_ssh_key(key_id)
    return removed()


def user_groups(call: Call) -> Reply:
    ix = call.api.authz.store.index()
    user = _user(call)
    groups = [ix.groups[g] for g in ix.member_of.get(user.id, ()) if g in ix.groups]
    return collection("groups", "group", [group_node(g) for g in groups])


# ----------------------------------------------------------------- groups


def list_groups(call: Call) -> Reply:
    ix = call.api.authz.store.index()
    found = call.search(Searcher("group", {
        "name": lambda g: [g.name], "id": lambda g: [g.id],
        "domain": lambda g: [g.domain, domain_label(g.domain)],
    }, lambda g: g.full), sorted(ix.groups.values(), key=lambda g: g.full))
    return collection("groups", "group", [group_node(g) for g in found])


def get_group(call: Call) -> Reply:
    return entity("group", group_node(call.api.authz.store.index().group(call.params["id"])))


def add_group(call: Call) -> Reply:
    """``groups_service().add(types.Group(name='ops', domain=types.Domain(name='corp')))``."""
    body = call.need_body("group")
    name = parse.text(body, "name")
    if not name:
        raise InvalidInput("a group needs a <name>")
    domain = parse.text(body, "domain", "name") or parse.text(body, "domain", "id")
    short, group_domain = split_name(name)
    if "@" not in name and domain:
        group_domain = _domain_of(call, domain)
    existing = next((g for g in call.api.authz.store.index().groups.values()
                     if g.name == short and g.domain == group_domain), None)
    if existing is not None:
        return entity("group", group_node(existing), status=201)
    group = call.api.authz.add_group(f"{short}@{group_domain}", by=call.user)
    return entity("group", group_node(group), status=201)


def remove_group(call: Call) -> Reply:
    call.api.authz.store.remove_group(call.params["id"])
    return removed()


# ------------------------------------------------------------------ roles


def list_roles(call: Call) -> Reply:
    roles = sorted(call.api.authz.store.index().roles.values(), key=lambda r: r.name)
    return collection("roles", "role", [role_node(r) for r in roles])


def _role(call: Call) -> Role:
    return call.api.authz.store.index().role(call.params["id"])


def get_role(call: Call) -> Reply:
    return entity("role", role_node(_role(call)))


def add_role(call: Call) -> Reply:
    """``roles_service().add(types.Role(name=..., permits=[types.Permit(id='1')]))``."""
    body = call.need_body("role")
    name = parse.text(body, "name")
    if not name:
        raise InvalidInput("a role needs a <name>")
    groups = []
    for permit in parse.items(body, "permits"):
        key = parse.text(permit, "id") or parse.text(permit, "name") \
            if isinstance(permit, dict) else None
        if not key:
            raise InvalidInput("each <permit> needs an id or a name")
        groups.append(ActionGroup.parse(key))
    if not groups:
        raise InvalidInput("a role needs <permits> (action groups by id or name)")
    authz = call.api.authz
    role = authz.store.add_role(name, groups, parse.text(body, "description") or "",
                                parse.boolean(body, "administrative"))
    authz.audit(role.id, f"Role {role.name} was added by {call.user}.", code=codes.ROLE_ADD)
    return entity("role", role_node(role), status=201)


def update_role(call: Call) -> Reply:
    role = _role(call)
    body = call.need_body("role")
    if parse.text(body, "name") not in (None, role.name) or \
            parse.text(body, "description") not in (None, role.description):
        raise call.not_supported("renaming a role or changing its description")
    return entity("role", role_node(role))


def remove_role(call: Call) -> Reply:
    role = call.api.authz.store.remove_role(call.params["id"])
    call.api.authz.audit(role.id, f"Role {role.name} was removed by {call.user}.",
                         code=codes.ROLE_REMOVE)
    return removed()


def list_permits(call: Call) -> Reply:
    role = _role(call)
    groups = sorted(role.actions, key=lambda g: g.id)
    return collection("permits", "permit", [permit_node(role, g) for g in groups])


def get_permit(call: Call) -> Reply:
    role = _role(call)
    group = ActionGroup.parse(call.params["permit"])
    if group not in role.actions:
        raise NotFound(f"role {role.name} has no permit {group.label}")
    return entity("permit", permit_node(role, group))


def _no_role_change(call: Call) -> Reply:
    role = _role(call)
    raise call.not_supported(f"changing the permits of role {role.name} (add a new role)")


# -------------------------------------------------------------- directories


def _domain_node(name: str) -> Node:
    path = f"{BASE}/domains/{domain_id(name)}"
    return {"href": path, "id": domain_id(name), "name": domain_label(name),
            "link": links(path, "users", "groups")}


def list_domains(call: Call) -> Reply:
    return collection("domains", "domain", [_domain_node(d) for d in call.api.authz.domains()])


def get_domain(call: Call) -> Reply:
    return entity("domain", _domain_node(_domain_of(call, call.params["id"])))


def _pattern(call: Call) -> str:
    """``search=name=al*`` or ``search=al*`` -> ``al*``."""
    text = (call.query.get("search") or "*").strip()
    for key in ("usrname=", "name=", "user_name="):
        if text.lower().startswith(key):
            text = text[len(key):]
    return text.strip('"') or "*"


def domain_users(call: Call) -> Reply:
    domain = _domain_of(call, call.params["id"])
    authz = call.api.authz
    if domain == INTERNAL:
        import fnmatch

        pattern = _pattern(call)
        users = [u for u in authz.store.index().users.values()
                 if u.domain == INTERNAL and fnmatch.fnmatchcase(u.principal, pattern)]
        nodes = [user_node(u) for u in sorted(users, key=lambda u: u.name)]
    else:
        entries = authz.directory(domain).search("users", _pattern(call))
        nodes = [_entry_node(domain, "users", e.name, e.dn) for e in entries]
    return collection("users", "user", nodes)


def domain_groups(call: Call) -> Reply:
    domain = _domain_of(call, call.params["id"])
    authz = call.api.authz
    if domain == INTERNAL:
        groups = [g for g in authz.store.index().groups.values() if g.domain == INTERNAL]
        return collection("groups", "group", [group_node(g) for g in groups])
    entries = authz.directory(domain).search("groups", _pattern(call))
    return collection("groups", "group",
                      [_entry_node(domain, "groups", e.name, e.dn) for e in entries])


def _entry_node(domain: str, what: str, name: str, dn: str) -> Node:
    entry_id = derived_id("entry", domain, dn)
    node: Node = {"href": f"{BASE}/domains/{domain_id(domain)}/{what}/{entry_id}",
                  "id": entry_id, "name": name, "namespace": dn, "domain_entry_id": dn,
                  "domain": ref("domains", domain_id(domain))}
    if what == "users":
        node.update({"user_name": f"{name}@{domain}", "principal": name})
    return node


# ------------------------------------------------------------- permissions


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


ROUTES: list[Route] = [
    ("GET", "/users", list_users),
    ("POST", "/users", add_user),
    ("GET", "/users/{id}", get_user),
    ("DELETE", "/users/{id}", remove_user),
    ("GET", "/users/{id}/groups", user_groups),
    ("GET", "/groups", list_groups),
    ("POST", "/groups", add_group),
    ("GET", "/groups/{id}", get_group),
    ("DELETE", "/groups/{id}", remove_group),
    ("GET", "/roles", list_roles),
    ("POST", "/roles", add_role),
    ("GET", "/roles/{id}", get_role),
    ("PUT", "/roles/{id}", update_role),
    ("DELETE", "/roles/{id}", remove_role),
    ("GET", "/roles/{id}/permits", list_permits),
    ("POST", "/roles/{id}/permits", _no_role_change),
    ("GET", "/roles/{id}/permits/{permit}", get_permit),
    ("DELETE", "/roles/{id}/permits/{permit}", _no_role_change),
    ("GET", "/domains", list_domains),
    ("GET", "/domains/{id}", get_domain),
    ("GET", "/domains/{id}/users", domain_users),
    ("GET", "/domains/{id}/groups", domain_groups),
    *_routes(),
]
