"""Plugin kinds and their entry-point groups: the one list the whole core reads.

Discovery indexes these groups, the registry loads them, ``plugins doctor``
flags a ``virtplane.*`` group that is not here, and the scaffold writes them
into new projects. It lives in a leaf module (it imports nothing of the core)
so that each of those can import it without importing the others.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

#: Plugin kind -> the entry-point group its plugins are declared in.
KIND_GROUPS: Final = MappingProxyType({
    "architecture": "virtplane.architectures",
    "storage": "virtplane.storage",
    "hypervisor": "virtplane.hypervisors",
    "hooks": "virtplane.hooks",
})

#: Entry-point group -> plugin kind.
GROUP_KINDS: Final = MappingProxyType({group: kind for kind, group in KIND_GROUPS.items()})

#: The entry-point groups virtplane reads, in a fixed order.
GROUPS: Final = tuple(KIND_GROUPS.values())

#: ``virtplane.*`` groups read by other parts of the core, not plugin kinds: command
#: groups for the CLI (``virtplane.cli.COMMAND_GROUP``, read by the CLI itself).
OTHER_GROUPS: Final = (
    "virtplane.commands",               # CLI command groups (the engine's `engine`, `job` ...)
    "virtplane.state",                  # state backends by URL scheme (PostgreSQL)
    "virtplane.frontends",              # frontends the engine serves (the oVirt REST API)
    "virtplane.policy_units.filters",   # scheduling: filters, weights, balancers,
    "virtplane.policy_units.weights",   # cluster policies and fence agents
    "virtplane.policy_units.balancers",
    "virtplane.cluster_policies",
    "virtplane.fence_agents",
    "virtplane.authz",                  # directory kinds for users and groups (LDAP ...)
)

#: Attribute every entry-point object carries: the plugin-API range it supports.
API_ATTR: Final = "VIRTPLANE_PLUGIN_API"
#: Optional attribute: the attrs class (or ``"module:Class"``) validating ``[plugin.<name>]``.
SETTINGS_ATTR: Final = "VIRTPLANE_SETTINGS"
