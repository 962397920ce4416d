"""oVirt's authorization model: action groups, roles, object kinds, permissions.

A *role* is a set of *action groups* (what may be done: start a VM, create a
host ...). A *permission* gives a role to a user or a group on one object, and
it holds on that object and everything below it in the object tree
(:mod:`.tree`): a ClusterAdmin of cluster A may start any VM of cluster A and
nothing of cluster B. The names and ids of action groups are oVirt's
(``ActionGroup.java``), so that a role made through the SDK with
``types.Permit(id='1')`` means "create VM" here as there; the predefined roles
carry oVirt's names and, as far as virtplane has the actions, their contents.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

#: oVirt's id of the System object ("Everything"): a permission on it holds everywhere
SYSTEM_ID = "aaa00000-0000-0000-0000-123456789aaa"
_NS = uuid.UUID("0b6c1a8e-34b2-4d0c-9a77-7d1d8f0c2a11")


class Kind(enum.StrEnum):
    """The kinds of object a permission can be given on (the API's element names)."""

    SYSTEM = "system"
    DATACENTER = "data_center"
    CLUSTER = "cluster"
    HOST = "host"
    VM = "vm"
    STORAGEDOMAIN = "storage_domain"
    DISK = "disk"
    TEMPLATE = "template"
    NETWORK = "network"


#: CLI spellings of kinds (``vm:web1``, ``dc:dc1`` ...)
KIND_ALIASES = {"system": Kind.SYSTEM, "dc": Kind.DATACENTER, "datacenter": Kind.DATACENTER,
                "data_center": Kind.DATACENTER, "cluster": Kind.CLUSTER, "host": Kind.HOST,
                "vm": Kind.VM, "storage": Kind.STORAGEDOMAIN, "sd": Kind.STORAGEDOMAIN,
                "storage_domain": Kind.STORAGEDOMAIN, "disk": Kind.DISK,
                "template": Kind.TEMPLATE, "network": Kind.NETWORK, "net": Kind.NETWORK}


class ActionGroup(enum.Enum):
    """What may be done, with oVirt's id and whether it is an administrator's action."""

    # VMs
    CREATE_VM = (1, False)
    DELETE_VM = (2, False)
    EDIT_VM_PROPERTIES = (3, False)
    VM_BASIC_OPERATIONS = (4, False)
    CHANGE_VM_CD = (5, False)
    MIGRATE_VM = (6, True)
    CONNECT_TO_VM = (7, False)
    IMPORT_EXPORT_VM = (8, True)
    CONFIGURE_VM_NETWORK = (9, False)
    CONFIGURE_VM_STORAGE = (10, False)
    MOVE_VM = (11, True)
    MANIPULATE_VM_SNAPSHOTS = (12, False)
    # hosts
    CREATE_HOST = (100, True)
    EDIT_HOST_CONFIGURATION = (101, True)
    DELETE_HOST = (102, True)
    MANIPULATE_HOST = (103, True)
    CONFIGURE_HOST_NETWORK = (104, True)
    # templates
    CREATE_TEMPLATE = (200, False)
    EDIT_TEMPLATE_PROPERTIES = (201, False)
    DELETE_TEMPLATE = (202, False)
    COPY_TEMPLATE = (203, True)
    CONFIGURE_TEMPLATE_NETWORK = (204, False)
    # clusters
    CREATE_CLUSTER = (400, True)
    EDIT_CLUSTER_CONFIGURATION = (401, True)
    DELETE_CLUSTER = (402, True)
    CONFIGURE_CLUSTER_NETWORK = (403, True)
    # users, roles, permissions
    MANIPULATE_USERS = (500, True)
    MANIPULATE_ROLES = (501, True)
    MANIPULATE_PERMISSIONS = (502, False)
    ADD_USERS_AND_GROUPS_FROM_DIRECTORY = (503, True)
    # storage domains
    CREATE_STORAGE_DOMAIN = (600, True)
    EDIT_STORAGE_DOMAIN_CONFIGURATION = (601, True)
    DELETE_STORAGE_DOMAIN = (602, True)
    MANIPULATE_STORAGE_DOMAIN = (603, True)
    # data centers (oVirt's storage pools)
    CREATE_STORAGE_POOL = (700, True)
    DELETE_STORAGE_POOL = (701, True)
    EDIT_STORAGE_POOL_CONFIGURATION = (702, True)
    CONFIGURE_STORAGE_POOL_NETWORK = (703, True)
    CREATE_STORAGE_POOL_NETWORK = (704, True)
    DELETE_STORAGE_POOL_NETWORK = (705, True)
    # the installation itself
    CONFIGURE_ENGINE = (800, True)
    # Gluster volumes (kept for roles made through oVirt's API; virtplane has no
    # Gluster volume management of its own)
    CREATE_GLUSTER_VOLUME = (1000, True)
    MANIPULATE_GLUSTER_VOLUME = (1001, True)
    DELETE_GLUSTER_VOLUME = (1002, True)
    MANIPULATE_GLUSTER_HOOK = (1003, True)
    MANIPULATE_GLUSTER_SERVICE = (1004, True)
    # disks
    CREATE_DISK = (1100, False)
    ATTACH_DISK = (1101, False)
    EDIT_DISK_PROPERTIES = (1102, False)
    CONFIGURE_DISK_STORAGE = (1103, False)
    DELETE_DISK = (1104, False)
    # everyone's
    LOGIN = (1300, False)
    INJECT_EXTERNAL_EVENTS = (1400, True)

    @property
    def id(self) -> int:
        return int(self.value[0])

    @property
    def administrative(self) -> bool:
        return bool(self.value[1])

    @property
    def label(self) -> str:
        """The lowercase name the API uses (``<permit><name>create_vm``)."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> ActionGroup:
        """An action group by name (any case) or oVirt id."""
        from virtplane.errors import InvalidInput

        key = text.strip()
        if key.isdigit():
            for group in cls:
                if group.id == int(key):
                    return group
        else:
            found = cls.__members__.get(key.upper().replace("-", "_"))
            if found is not None:
                return found
        raise InvalidInput(f"no action group {text!r}; known: "
                           f"{', '.join(g.label for g in cls)}")


A = ActionGroup
_VM_USER = {A.VM_BASIC_OPERATIONS, A.CHANGE_VM_CD, A.CONNECT_TO_VM, A.LOGIN}
_VM_MANAGER = _VM_USER | {A.DELETE_VM, A.EDIT_VM_PROPERTIES, A.CONFIGURE_VM_NETWORK,
                          A.CONFIGURE_VM_STORAGE, A.MANIPULATE_VM_SNAPSHOTS,
                          A.MANIPULATE_PERMISSIONS}
_DISK_OPS = {A.CREATE_DISK, A.ATTACH_DISK, A.EDIT_DISK_PROPERTIES, A.CONFIGURE_DISK_STORAGE,
             A.DELETE_DISK}
_TEMPLATE_OPS = {A.CREATE_TEMPLATE, A.EDIT_TEMPLATE_PROPERTIES, A.DELETE_TEMPLATE,
                 A.COPY_TEMPLATE, A.CONFIGURE_TEMPLATE_NETWORK}
_HOST_OPS = {A.CREATE_HOST, A.EDIT_HOST_CONFIGURATION, A.DELETE_HOST, A.MANIPULATE_HOST,
             A.CONFIGURE_HOST_NETWORK}
_STORAGE_OPS = {A.CREATE_STORAGE_DOMAIN, A.EDIT_STORAGE_DOMAIN_CONFIGURATION,
                A.DELETE_STORAGE_DOMAIN, A.MANIPULATE_STORAGE_DOMAIN}
_CLUSTER_ADMIN = (_VM_MANAGER | _HOST_OPS | _DISK_OPS | _TEMPLATE_OPS
                  | {A.CREATE_VM, A.MIGRATE_VM, A.MOVE_VM, A.IMPORT_EXPORT_VM,
                     A.EDIT_CLUSTER_CONFIGURATION, A.DELETE_CLUSTER,
                     A.CONFIGURE_CLUSTER_NETWORK})


@dataclass(frozen=True)
class Role:
    """A named set of action groups; ``mutable`` is False for the predefined ones."""

    id: str
    name: str
    description: str
    actions: frozenset[ActionGroup]
    administrative: bool
    mutable: bool = True


def role_id(name: str) -> str:
    """The id of a predefined role: stable across installations (derived from its name)."""
    return str(uuid.uuid5(_NS, "role/" + name))


def _role(name: str, description: str, actions: set[ActionGroup],
          administrative: bool | None = None) -> Role:
    if administrative is None:
        administrative = any(a.administrative for a in actions)
    return Role(role_id(name), name, description, frozenset(actions | {A.LOGIN}),
                administrative, mutable=False)


#: oVirt's predefined roles (the ones whose actions virtplane has)
PREDEFINED: tuple[Role, ...] = (
    _role("SuperUser", "Roles management administrator: everything, everywhere",
          set(ActionGroup)),
    _role("DataCenterAdmin", "Administrator of a data center: its clusters, hosts, storage, "
          "VMs, templates and disks", _CLUSTER_ADMIN | _STORAGE_OPS
          | {A.CREATE_CLUSTER, A.EDIT_STORAGE_POOL_CONFIGURATION, A.DELETE_STORAGE_POOL,
             A.CONFIGURE_STORAGE_POOL_NETWORK, A.CREATE_STORAGE_POOL_NETWORK,
             A.DELETE_STORAGE_POOL_NETWORK}),
    _role("ClusterAdmin", "Administrator of a cluster: its hosts, VMs and their disks",
          _CLUSTER_ADMIN),
    _role("HostAdmin", "Administrator of hosts", _HOST_OPS),
    _role("StorageAdmin", "Administrator of storage domains and their disks",
          _STORAGE_OPS | _DISK_OPS),
    _role("NetworkAdmin", "Administrator of networks",
          {A.CONFIGURE_HOST_NETWORK, A.CONFIGURE_CLUSTER_NETWORK,
           A.CONFIGURE_STORAGE_POOL_NETWORK, A.CREATE_STORAGE_POOL_NETWORK,
           A.DELETE_STORAGE_POOL_NETWORK, A.CONFIGURE_VM_NETWORK,
           A.CONFIGURE_TEMPLATE_NETWORK}),
    _role("GlusterAdmin", "Administrator of Gluster volumes",
          {A.CREATE_GLUSTER_VOLUME, A.MANIPULATE_GLUSTER_VOLUME, A.DELETE_GLUSTER_VOLUME,
           A.MANIPULATE_GLUSTER_HOOK, A.MANIPULATE_GLUSTER_SERVICE}),
    _role("TemplateAdmin", "Administrator of templates", _TEMPLATE_OPS),
    _role("UserRole", "User: run, stop and use a VM", _VM_USER, administrative=False),
    _role("UserVmManager", "User: manage a VM (edit, devices, snapshots, remove, "
          "give permissions on it)", _VM_MANAGER, administrative=False),
    _role("PowerUserRole", "User: create and manage VMs, disks and templates",
          _VM_MANAGER | {A.CREATE_VM, A.CREATE_TEMPLATE} | _DISK_OPS, administrative=False),
    _role("VmCreator", "User: create VMs", {A.CREATE_VM}, administrative=False),
    _role("DiskCreator", "User: create disks", {A.CREATE_DISK}, administrative=False),
    _role("DiskOperator", "User: use and change disks", _DISK_OPS - {A.CREATE_DISK},
          administrative=False),
    _role("TemplateCreator", "User: create templates", {A.CREATE_TEMPLATE},
          administrative=False),
)
SUPERUSER = PREDEFINED[0]


@dataclass(frozen=True)
class ObjectRef:
    """One object of the tree: its kind and id (``name`` for messages)."""

    kind: Kind
    id: str
    name: str = ""

    def __str__(self) -> str:
        if self.kind == Kind.SYSTEM:
            return "System"
        return f"{self.kind.value.replace('_', ' ')} {self.name or self.id!r}"


SYSTEM = ObjectRef(Kind.SYSTEM, SYSTEM_ID, "System")


@dataclass(frozen=True)
class Permission:
    """A role given to a user or a group on an object."""

    id: str
    principal_id: str
    principal_kind: str  # "user" or "group"
    role_id: str
    object_kind: Kind
    object_id: str
