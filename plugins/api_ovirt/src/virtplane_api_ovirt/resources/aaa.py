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

One module per resource: ``users``, ``groups``, ``roles`` (with their permits),
``domains`` (the directories) and ``permissions``; the shapes they share are in
``aaa_nodes``. :data:`ROUTES` puts their routes together, in this order; the handlers
and node builders can still be imported from here.
"""

from __future__ import annotations

from virtplane_api_ovirt.base import Route
from virtplane_api_ovirt.resources import domains, groups, permissions, roles, users
from virtplane_api_ovirt.resources.aaa_nodes import (
    domain_id,
    domain_label,
    group_node,
    permission_node,
    permit_node,
    role_node,
    user_node,
)
from virtplane_api_ovirt.resources.domains import (
    domain_groups,
    domain_users,
    get_domain,
    list_domains,
)
from virtplane_api_ovirt.resources.groups import add_group, get_group, list_groups, remove_group
from virtplane_api_ovirt.resources.permissions import object_permissions
from virtplane_api_ovirt.resources.roles import (
    add_role,
    get_permit,
    get_role,
    list_permits,
    list_roles,
    remove_role,
    update_role,
)
from virtplane_api_ovirt.resources.users import (
    add_user,
    get_user,
    list_users,
    remove_user,
    user_groups,
)

__all__ = [
    "ROUTES", "add_group", "add_role", "add_user", "domain_groups", "domain_id",
    "domain_label", "domain_users", "get_domain", "get_group", "get_permit", "get_role",
    "get_user", "group_node", "list_domains", "list_groups", "list_permits", "list_roles",
    "list_users", "object_permissions", "permission_node", "permit_node", "remove_group",
    "remove_role", "remove_user", "role_node", "update_role", "user_groups", "user_node",
]

ROUTES: list[Route] = [
    *users.ROUTES, *groups.ROUTES, *roles.ROUTES, *domains.ROUTES, *permissions.ROUTES,
]
