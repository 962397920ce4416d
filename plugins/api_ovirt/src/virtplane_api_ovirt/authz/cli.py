"""``virtplane user``, ``virtplane role`` and ``virtplane permission``.

    virtplane user add alice [--password-stdin]   # a local user (asks, or reads stdin)
    virtplane user add bob@corp                    # a user of directory corp (must exist there)
    virtplane user list | remove NAME | unlock NAME
    virtplane role list | show NAME | add NAME ACTION_GROUP... [--description TEXT]
    virtplane permission add USER ROLE OBJECT [--group]   # OBJECT: system, vm:web1, cluster:c1 ...
    virtplane permission list [OBJECT] [--user USER]
    virtplane permission remove ID
    virtplane permission explain USER ACTION_GROUP OBJECT

They change the API's users where the engines read them (docs/permissions.md):
the file beside a SQLite state store, or the database of a PostgreSQL one, which
every engine shares.
Through an engine they run inside it, as the calling OS user (root is
admin@internal) and are checked like any command: adding a permission needs
MANIPULATE_PERMISSIONS on the object, users need MANIPULATE_USERS, roles
MANIPULATE_ROLES.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import Any

from virtplane.cli._common import emit, leaf, manager
from virtplane.errors import InvalidInput
from virtplane_api_ovirt.authz import Authz, codes
from virtplane_api_ovirt.authz.model import KIND_ALIASES, SYSTEM, ActionGroup, ObjectRef
from virtplane_api_ovirt.authz.tree import StoreTree


def _authz(m: Any) -> Authz:
    return Authz.for_manager(m)


def _caller(args: argparse.Namespace) -> str:
    """Who runs this command: the engine sets it; run directly, the one who can write
    the state store is its administrator anyway."""
    return str(getattr(args, "caller", None) or "admin@internal")


def parse_object(text: str, tree: StoreTree) -> ObjectRef:
    """``system``, ``vm:web1``, ``cluster:c1``, ``dc:dc1``, ``host:h1``,
    ``storage:data1``, ``disk:NAME``, ``template:t1`` (names or ids)."""
    kind_text, sep, name = text.partition(":")
    kind = KIND_ALIASES.get(kind_text.lower())
    if kind is None or (not sep and kind_text.lower() != "system"):
        raise InvalidInput(f"object {text!r}: expected system or KIND:NAME with KIND one of "
                           f"{', '.join(sorted(KIND_ALIASES))}")
    return SYSTEM if not sep else tree.resolve(kind, name)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise InvalidInput("the passwords differ; nothing was changed")
    return first


# ------------------------------------------------------------------ users


def cmd_user_add(args: argparse.Namespace) -> int:
    with manager(args) as m:
        authz = _authz(m)
        from virtplane_api_ovirt.authz.store import INTERNAL, split_name

        _, domain = split_name(args.name)
        password = _read_password(args) if domain == INTERNAL else None
        user = authz.add_user(args.name, password, by=_caller(args))
        print(f"user {user.name} added (id {user.id})")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    with manager(args) as m:
        ix = _authz(m).store.index()
        rows: list[dict[str, Any]] = []
        for user in sorted(ix.users.values(), key=lambda u: u.name):
            groups = sorted(ix.groups[g].full for g in ix.member_of.get(user.id, ())
                            if g in ix.groups)
            locked = user.locked_until > time.time()
            rows.append({"name": user.name, "id": user.id, "directory": user.domain,
                         "groups": groups, "locked": locked,
                         "permissions": len(ix.by_principal.get(user.id, ()))})

        def text() -> None:
            for r in rows:
                flags = " (locked)" if r["locked"] else ""
                groups = f" groups: {', '.join(r['groups'])}" if r["groups"] else ""
                print(f"{r['name']:32} {r['id']}  {r['permissions']} permission(s)"
                      f"{groups}{flags}")

        emit(args, rows, text)
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    with manager(args) as m:
        user = _authz(m).remove_user(args.name, by=_caller(args))
        print(f"user {user.name} removed, with its permissions")
    return 0


def cmd_user_unlock(args: argparse.Namespace) -> int:
    with manager(args) as m:
        user = _authz(m).store.unlock(args.name)
        print(f"user {user.name} unlocked")
    return 0


def register_user(sub: Any) -> None:
    q = leaf(sub, "add", cmd_user_add, "add a local user (with a password) or a directory "
             "user (NAME@DIRECTORY)")
    q.add_argument("name")
    q.add_argument("--password-stdin", action="store_true",
                   help="read a local user's password from the first line of stdin")
    leaf(sub, "list", cmd_user_list, "users, their groups, permissions and lockout", True)
    leaf(sub, "remove", cmd_user_remove, "remove a user and its permissions").add_argument(
        "name")
    leaf(sub, "unlock", cmd_user_unlock, "end a lockout after failed logins").add_argument(
        "name")


# ------------------------------------------------------------------ roles


def cmd_role_list(args: argparse.Namespace) -> int:
    with manager(args) as m:
        roles = sorted(_authz(m).store.index().roles.values(), key=lambda r: r.name)
        rows = [{"name": r.name, "id": r.id, "administrative": r.administrative,
                 "predefined": not r.mutable, "actions": len(r.actions),
                 "description": r.description} for r in roles]

        def text() -> None:
            for r in rows:
                kind = "admin" if r["administrative"] else "user"
                origin = "predefined" if r["predefined"] else "custom"
                print(f"{r['name']:18} {kind:5} {origin:10} {r['actions']:3} action groups  "
                      f"{r['description']}")

        emit(args, rows, text)
    return 0


def cmd_role_show(args: argparse.Namespace) -> int:
    with manager(args) as m:
        role = _authz(m).store.index().role(args.name)
        groups = sorted(role.actions, key=lambda g: g.id)
        data = {"name": role.name, "id": role.id, "description": role.description,
                "administrative": role.administrative, "predefined": not role.mutable,
                "actions": [{"id": g.id, "name": g.label} for g in groups]}

        def text() -> None:
            print(f"{role.name} ({'administrative' if role.administrative else 'user'}, "
                  f"{'predefined' if not role.mutable else 'custom'}): {role.description}")
            for g in groups:
                print(f"  {g.id:5} {g.label}")

        emit(args, data, text)
    return 0


def cmd_role_add(args: argparse.Namespace) -> int:
    with manager(args) as m:
        authz = _authz(m)
        role = authz.store.add_role(args.name, [ActionGroup.parse(a) for a in args.actions],
                                    args.description)
        authz.audit(role.id, f"Role {role.name} was added by {_caller(args)}.",
                    code=codes.ROLE_ADD)
        print(f"role {role.name} added (id {role.id}, {len(role.actions)} action groups)")
    return 0


def register_role(sub: Any) -> None:
    leaf(sub, "list", cmd_role_list, "roles (predefined and custom)", True)
    q = leaf(sub, "show", cmd_role_show, "a role's action groups", True)
    q.add_argument("name")
    q = leaf(sub, "add", cmd_role_add, "a custom role made of action groups")
    q.add_argument("name")
    q.add_argument("actions", nargs="+", metavar="ACTION_GROUP",
                   help="action group names or oVirt ids (create_vm, 4, login ...)")
    q.add_argument("--description", default="")


# ------------------------------------------------------------ permissions


def cmd_permission_add(args: argparse.Namespace) -> int:
    with manager(args) as m:
        authz = _authz(m)
        tree = StoreTree(m.store)
        obj = parse_object(args.object, tree)
        perm = authz.grant(args.principal, args.role, obj, by=_caller(args), group=args.group)
        print(f"permission {perm.id}: {args.role} on {obj} to "
              f"{'group' if args.group else 'user'} {args.principal}")
    return 0


def cmd_permission_list(args: argparse.Namespace) -> int:
    with manager(args) as m:
        authz = _authz(m)
        ix = authz.store.index()
        tree = StoreTree(m.store)
        perms = list(ix.permissions.values())
        if args.object:
            obj = parse_object(args.object, tree)
            perms = [p for p in perms if p.object_id == obj.id]
        if args.user:
            user = ix.user(args.user)
            principals = ix.principals(user)
            perms = [p for p in perms if p.principal_id in principals]
        rows = []
        for p in sorted(perms, key=lambda p: (p.object_kind.value, p.object_id, p.id)):
            role = ix.roles.get(p.role_id)
            target = SYSTEM if p.object_id == SYSTEM.id else tree.ref(p.object_kind,
                                                                      p.object_id)
            rows.append({"id": p.id, "principal": authz.principal_name(p, ix),
                         "principal_kind": p.principal_kind,
                         "role": role.name if role else p.role_id, "object": str(target),
                         "object_id": p.object_id})

        def text() -> None:
            for r in rows:
                print(f"{r['id']}  {r['principal_kind']:5} {r['principal']:28} "
                      f"{r['role']:16} {r['object']}")

        emit(args, rows, text)
    return 0


def cmd_permission_remove(args: argparse.Namespace) -> int:
    with manager(args) as m:
        _authz(m).revoke(args.id, by=_caller(args))
        print(f"permission {args.id} removed")
    return 0


def cmd_permission_explain(args: argparse.Namespace) -> int:
    """Which permission grants, or why none does (exit 1 when none does)."""
    with manager(args) as m:
        authz = _authz(m)
        tree = StoreTree(m.store)
        obj = parse_object(args.object, tree)
        action = ActionGroup.parse(args.action)
        user = authz.store.index().user(args.user)
        decision = authz.check(user, action, obj, tree)
        chain = authz.authorizer.ancestors(obj, tree)
        data = {"granted": decision.granted, "user": user.name, "action": action.name,
                "object": str(obj), "path": [str(o) for o in chain],
                "role": decision.role.name if decision.role else None,
                "on": str(decision.via) if decision.via else None,
                "permission": decision.permission.id if decision.permission else None,
                "reason": decision.reason}

        def text() -> None:
            print(("granted: " if decision.granted else "refused: ") + decision.message())

        emit(args, data, text)
        return 0 if decision.granted else 1


def register_permission(sub: Any) -> None:
    q = leaf(sub, "add", cmd_permission_add, "give a role to a user (or --group) on an object")
    q.add_argument("principal", metavar="USER")
    q.add_argument("role")
    q.add_argument("object", metavar="OBJECT", help="system, vm:NAME, cluster:NAME, dc:NAME, "
                   "host:NAME, storage:NAME, disk:NAME, template:NAME")
    q.add_argument("--group", action="store_true", help="USER names a group")
    q = leaf(sub, "list", cmd_permission_list, "permissions (on an object, of a user)", True)
    q.add_argument("object", nargs="?", metavar="OBJECT")
    q.add_argument("--user", help="only those that hold for this user (its groups' too)")
    leaf(sub, "remove", cmd_permission_remove, "remove a permission by id").add_argument("id")
    q = leaf(sub, "explain", cmd_permission_explain, "which permission lets USER do ACTION on "
             "OBJECT, or why none does (exit 1)", True)
    q.add_argument("user")
    q.add_argument("action", metavar="ACTION_GROUP")
    q.add_argument("object", metavar="OBJECT")
