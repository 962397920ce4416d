"""``/roles`` and their ``permits``: list, add, get, update (no renaming) and remove
roles; a role's permits can be read, not changed."""

from __future__ import annotations

from virtplane.errors import InvalidInput, NotFound
from virtplane_api_ovirt import parse
from virtplane_api_ovirt.authz import codes
from virtplane_api_ovirt.authz.model import ActionGroup, Role
from virtplane_api_ovirt.base import Call, Reply, Route, collection, entity, removed
from virtplane_api_ovirt.resources.aaa_nodes import permit_node, role_node


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


ROUTES: list[Route] = [
    ("GET", "/roles", list_roles),
    ("POST", "/roles", add_role),
    ("GET", "/roles/{id}", get_role),
    ("PUT", "/roles/{id}", update_role),
    ("DELETE", "/roles/{id}", remove_role),
    ("GET", "/roles/{id}/permits", list_permits),
    ("POST", "/roles/{id}/permits", _no_role_change),
    ("GET", "/roles/{id}/permits/{permit}", get_permit),
    ("DELETE", "/roles/{id}/permits/{permit}", _no_role_change),
]
