"""What users, groups, roles and their permits, and permissions look like in the API
(``user_node``, ``group_node``, ``role_node``, ``permit_node``, ``permission_node``),
and the names of directories (``domain_label``, ``domain_id``): shared by the
resources of :mod:`virtplane_api_ovirt.resources.aaa`.
"""

from __future__ import annotations

from virtplane.errors import NotFound
from virtplane_api_ovirt.authz.model import ActionGroup, Kind, Permission, Role
from virtplane_api_ovirt.authz.store import INTERNAL, Group, User
from virtplane_api_ovirt.base import BASE, Call, derived_id, links, ref
from virtplane_api_ovirt.guard import OBJECT_TAGS, PERMISSION_PARENTS
from virtplane_api_ovirt.render import Node

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
