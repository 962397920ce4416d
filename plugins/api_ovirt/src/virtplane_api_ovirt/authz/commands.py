"""Checking ``virtplane`` commands that run inside an engine, for the calling OS user.

The engine finds :func:`check_command` through the entry-point group
``virtplane.authz`` and calls it before running a client's command line. The
caller is the OS user owning the client's socket (the engine reads it from
the kernel, not from the client): root, and the user the engine itself runs
as (who can write the state store directly anyway), are ``admin@internal``;
any other OS user NAME is the local user ``NAME@internal``, which must have
been added (``virtplane user add NAME``) and given permissions.

:data:`RULES` maps each (group, subcommand) to the action group and the
object the command line names; listings and ``show``-style reads need any
role on their object, ``list`` commands only a known user (they are not
filtered, unlike the API's collections); a command without a rule needs
SuperUser. Every command that is not a read is an event naming the user.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from virtplane.errors import NotFound, VirtplaneError
from virtplane_api_ovirt.authz import ADMIN, Authz, codes
from virtplane_api_ovirt.authz.model import SYSTEM, ActionGroup, Kind, ObjectRef
from virtplane_api_ovirt.authz.tree import StoreTree

A = ActionGroup
#: (group, subcommand) -> (action group or None for any role, kind, attribute naming it)
Rule = tuple["ActionGroup | None", Kind, "str | None"]
_VM_OPS = ("start", "destroy", "pause", "continue", "reboot", "hibernate", "restore",
           "shutdown")
RULES: dict[tuple[str, str], Rule] = {
    **{("vm", op): (A.VM_BASIC_OPERATIONS, Kind.VM, "name") for op in _VM_OPS},
    ("vm", "cd"): (A.CHANGE_VM_CD, Kind.VM, "name"),
    ("vm", "ticket"): (A.CONNECT_TO_VM, Kind.VM, "name"),
    ("vm", "create"): (A.CREATE_VM, Kind.CLUSTER, "cluster"),
    ("vm", "remove"): (A.DELETE_VM, Kind.VM, "name"),
    ("vm", "update"): (A.EDIT_VM_PROPERTIES, Kind.VM, "name"),
    ("vm", "vcpus"): (A.EDIT_VM_PROPERTIES, Kind.VM, "name"),
    ("vm", "memory"): (A.EDIT_VM_PROPERTIES, Kind.VM, "name"),
    ("vm", "migrate"): (A.MIGRATE_VM, Kind.VM, "name"),
    ("vm", "snapshot"): (A.MANIPULATE_VM_SNAPSHOTS, Kind.VM, "name"),
    ("vm", "revert"): (A.MANIPULATE_VM_SNAPSHOTS, Kind.VM, "name"),
    ("vm", "snapshot-delete"): (A.MANIPULATE_VM_SNAPSHOTS, Kind.VM, "name"),
    ("vm", "plug"): (A.CONFIGURE_VM_STORAGE, Kind.VM, "name"),
    ("vm", "unplug"): (A.CONFIGURE_VM_STORAGE, Kind.VM, "name"),
    ("vm", "show"): (None, Kind.VM, "name"),
    ("vm", "stats"): (None, Kind.VM, "name"),
    ("vm", "events"): (None, Kind.VM, "name"),
    ("vm", "snapshots"): (None, Kind.VM, "name"),
    ("dc", "add"): (A.CREATE_STORAGE_POOL, Kind.SYSTEM, None),
    ("dc", "remove"): (A.DELETE_STORAGE_POOL, Kind.DATACENTER, "name"),
    ("cluster", "add"): (A.CREATE_CLUSTER, Kind.DATACENTER, "dc"),
    ("cluster", "remove"): (A.DELETE_CLUSTER, Kind.CLUSTER, "name"),
    ("host", "add"): (A.CREATE_HOST, Kind.CLUSTER, "cluster"),
    ("host", "remove"): (A.DELETE_HOST, Kind.HOST, "name"),
    ("host", "maintenance"): (A.MANIPULATE_HOST, Kind.HOST, "name"),
    ("host", "check"): (A.MANIPULATE_HOST, Kind.HOST, "name"),
    ("host", "setup"): (A.EDIT_HOST_CONFIGURATION, Kind.HOST, "name"),
    ("host", "show"): (None, Kind.HOST, "name"),
    ("host", "stats"): (None, Kind.HOST, "name"),
    ("storage", "add"): (A.CREATE_STORAGE_DOMAIN, Kind.SYSTEM, None),
    ("storage", "remove"): (A.DELETE_STORAGE_DOMAIN, Kind.STORAGEDOMAIN, "name"),
    ("storage", "detach"): (A.DELETE_STORAGE_DOMAIN, Kind.STORAGEDOMAIN, "name"),
    ("storage", "attach"): (A.CREATE_STORAGE_DOMAIN, Kind.SYSTEM, None),
    **{("storage", op): (A.MANIPULATE_STORAGE_DOMAIN, Kind.STORAGEDOMAIN, "name")
       for op in ("activate", "deactivate", "refresh", "repair", "verify")},
    ("storage", "show"): (None, Kind.STORAGEDOMAIN, "name"),
    ("disk", "create"): (A.CREATE_DISK, Kind.STORAGEDOMAIN, "domain"),
    ("disk", "import"): (A.CREATE_DISK, Kind.STORAGEDOMAIN, "domain"),
    ("disk", "remove"): (A.DELETE_DISK, Kind.DISK, "name"),
    **{("disk", op): (A.CONFIGURE_DISK_STORAGE, Kind.DISK, "name")
       for op in ("snapshot", "merge", "clone", "extend")},
    ("template", "create"): (A.CREATE_TEMPLATE, Kind.VM, "vm"),
    ("template", "remove"): (A.DELETE_TEMPLATE, Kind.TEMPLATE, "name"),
    ("template", "vm"): (A.CREATE_VM, Kind.CLUSTER, "cluster"),
    ("user", "add"): (A.ADD_USERS_AND_GROUPS_FROM_DIRECTORY, Kind.SYSTEM, None),
    ("user", "remove"): (A.MANIPULATE_USERS, Kind.SYSTEM, None),
    ("user", "unlock"): (A.MANIPULATE_USERS, Kind.SYSTEM, None),
    ("role", "add"): (A.MANIPULATE_ROLES, Kind.SYSTEM, None),
    ("role", "show"): (None, Kind.SYSTEM, ""),
    ("permission", "explain"): (None, Kind.SYSTEM, ""),
}
#: read-only subcommands any known user may run (not filtered: the API's lists are)
READS = frozenset({"list", "options"})
#: command groups that only read and describe the engine's own work
READ_GROUPS = frozenset({"job", "events"})


def check_command(args: argparse.Namespace | None, argv: Sequence[str],
                  caller: str) -> str | None:
    """None when ``caller`` may run the command; otherwise why not (one line, naming
    the missing permission). Commands that change something are recorded as events."""
    from virtplane.cli._common import manager

    if args is None:
        return None  # it does not parse: running it prints the usage error
    group, sub = str(args.command), str(getattr(args, "sub", "") or "")
    with manager(args) as m:
        authz = Authz.for_manager(m)
        try:
            with authz.request():  # one look at the tables' version for the command
                return _check(authz, m, args, group, sub, argv, caller)
        except NotFound:
            # the object the command names does not exist: the command itself fails
            # with its usual message and exit status, having changed nothing
            return None
        except VirtplaneError as exc:
            return str(exc)
        finally:
            authz.close()


def _check(authz: Authz, m: Any, args: argparse.Namespace, group: str, sub: str,
           argv: Sequence[str], caller: str) -> str | None:
    tree = StoreTree(m.store)
    if caller != ADMIN and authz.active(caller) is None:
        return (f"OS user {caller.partition('@')[0]} is not a virtplane user (or is locked): "
                f"an administrator adds it with `virtplane user add {caller}`")
    line = "virtplane " + " ".join(argv)
    if sub in READS or group in READ_GROUPS or (group, sub) in (
            ("user", "list"), ("role", "list"), ("permission", "list")):
        return None
    rule = RULES.get((group, sub))
    obj: ObjectRef
    if group == "permission" and sub in ("add", "remove"):
        action: ActionGroup | None = A.MANIPULATE_PERMISSIONS
        if sub == "add":
            from virtplane_api_ovirt.authz.cli import parse_object

            obj = parse_object(str(args.object), tree)
        else:
            perm = authz.store.index().permissions.get(str(args.id))
            obj = SYSTEM if perm is None or perm.object_kind == Kind.SYSTEM else \
                tree.resolve(perm.object_kind, perm.object_id)
    elif rule is None:
        action, obj = A.CONFIGURE_ENGINE, SYSTEM
    else:
        action, kind, attr = rule
        name = getattr(args, attr, None) if attr else None
        obj = tree.resolve(kind, str(name)) if kind != Kind.SYSTEM and name else SYSTEM
    decision = authz.check(caller, action, obj, tree)
    if not decision.granted:
        authz.audit(obj.id, f"Refused: {line} by {caller}: {decision.message()}",
                    code=codes.DENIED, level="warning")
        return decision.message()
    if action is not None:
        how = f" (as {decision.role.name} on {decision.via})" if decision.role else ""
        authz.audit(obj.id, f"{caller}: {line}{how}", code=codes.ACTION)
    return None
