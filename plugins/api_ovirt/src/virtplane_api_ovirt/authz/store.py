"""Users, groups, custom roles and permissions in the API's SQLite file.

**Where.** In ``api-users.db`` beside the state store, the file that already
held the API's users and their argon2 hashes, not in the state store: the
store's public API keeps model objects, jobs, events and leases and has no
place for principals or grants, and keeping them apart keeps password hashes
and who-may-do-what out of state dumps and PostgreSQL replicas. The file is
created mode 0600 in a folder of mode 0700.

**Fast checks.** Every API call and every command through the engine asks
"may this user do that here?"; reading SQLite each time would cost more than
the call. The whole table set is small (10,000 permissions are ~1 MiB), so an
immutable in-memory :class:`Index` answers, rebuilt only when the file changed:
SQLite's ``PRAGMA data_version`` moves whenever *another* connection commits
(the CLI in another process, another API worker), and this object's own writes
drop the index themselves.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from virtplane.errors import AlreadyExists, InvalidInput, NotFound
from virtplane_api_ovirt.authz.model import (
    PREDEFINED,
    ActionGroup,
    Kind,
    Permission,
    Role,
)

#: the built-in directory (oVirt's ``internal`` profile, ``internal-authz`` provider)
INTERNAL = "internal"
_INTERNAL_ALIASES = {"internal", "internal-authz"}

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, hash TEXT NOT NULL, "
    "created REAL NOT NULL, updated REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS groups (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
    "domain TEXT NOT NULL, external_id TEXT NOT NULL DEFAULT '', UNIQUE(name, domain))",
    "CREATE TABLE IF NOT EXISTS members (user_id TEXT NOT NULL, group_id TEXT NOT NULL, "
    "PRIMARY KEY (user_id, group_id))",
    "CREATE TABLE IF NOT EXISTS roles (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
    "description TEXT NOT NULL, administrative INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS role_actions (role_id TEXT NOT NULL, action INTEGER NOT "
    "NULL, PRIMARY KEY (role_id, action))",
    "CREATE TABLE IF NOT EXISTS permissions (id TEXT PRIMARY KEY, principal_id TEXT NOT "
    "NULL, principal_kind TEXT NOT NULL, role_id TEXT NOT NULL, object_kind TEXT NOT NULL, "
    "object_id TEXT NOT NULL, UNIQUE(principal_id, role_id, object_kind, object_id))",
)
#: columns added to the 0.1 ``users`` table (name, hash, created, updated)
_USER_COLUMNS = {"id": "TEXT", "domain": "TEXT NOT NULL DEFAULT 'internal'",
                 "external_id": "TEXT NOT NULL DEFAULT ''",
                 "failures": "INTEGER NOT NULL DEFAULT 0",
                 "locked_until": "REAL NOT NULL DEFAULT 0", "last_login": "REAL"}


def split_name(login: str) -> tuple[str, str]:
    """``alice`` -> (alice, internal); ``bob@corp`` -> (bob, corp); oVirt's
    ``internal-authz`` spelling of the built-in directory is accepted."""
    login = login.strip()
    name, at, domain = login.rpartition("@")
    if not at:
        name, domain = login, INTERNAL
    if not name or not domain:
        raise InvalidInput(f"user {login!r}: expected NAME or NAME@DIRECTORY")
    if domain.endswith("-authz") and len(domain) > len("-authz"):
        domain = domain.removesuffix("-authz")
    if domain in _INTERNAL_ALIASES:
        domain = INTERNAL
    return name, domain


def full_name(login: str) -> str:
    name, domain = split_name(login)
    return f"{name}@{domain}"


@dataclass(frozen=True)
class User:
    id: str
    name: str  # NAME@DIRECTORY
    domain: str
    external_id: str
    failures: int
    locked_until: float
    last_login: float | None
    local: bool

    @property
    def principal(self) -> str:
        return self.name.rpartition("@")[0]


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    domain: str
    external_id: str

    @property
    def full(self) -> str:
        return f"{self.name}@{self.domain}"


@dataclass
class Index:
    """One consistent in-memory view of the file (never changed once built)."""

    users: dict[str, User] = field(default_factory=dict)  # by name
    users_by_id: dict[str, User] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)  # by id
    member_of: dict[str, frozenset[str]] = field(default_factory=dict)  # user id -> group ids
    roles: dict[str, Role] = field(default_factory=dict)  # by id
    role_names: dict[str, Role] = field(default_factory=dict)  # lower name -> role
    by_object: dict[str, tuple[Permission, ...]] = field(default_factory=dict)
    by_principal: dict[str, tuple[Permission, ...]] = field(default_factory=dict)
    permissions: dict[str, Permission] = field(default_factory=dict)

    def principals(self, user: User) -> frozenset[str]:
        """The ids whose permissions hold for ``user``: its own and its groups'."""
        return self.member_of.get(user.id, frozenset()) | {user.id}

    def role(self, name_or_id: str) -> Role:
        found = self.roles.get(name_or_id) or self.role_names.get(name_or_id.lower())
        if found is None:
            raise NotFound(f"no role {name_or_id!r}; `virtplane role list` shows them")
        return found

    def user(self, name_or_id: str) -> User:
        found = self.users_by_id.get(name_or_id)
        if found is None:
            try:
                found = self.users.get(full_name(name_or_id))
            except InvalidInput:
                found = None
        if found is None:
            raise NotFound(f"no user {name_or_id!r} (add it with `virtplane user add`)")
        return found

    def group(self, name_or_id: str) -> Group:
        found = self.groups.get(name_or_id)
        if found is None:
            name, domain = split_name(name_or_id)
            found = next((g for g in self.groups.values()
                          if g.name == name and g.domain == domain), None)
        if found is None:
            raise NotFound(f"no group {name_or_id!r} (add it with the API's /groups)")
        return found


class AuthzStore:
    """The file's tables and the index over them. Thread safe (one lock)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._index: Index | None = None
        self._version = -1

    # ------------------------------------------------------------- plumbing

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False,
                                   isolation_level=None)
            conn.execute("PRAGMA busy_timeout=10000")
            for statement in _SCHEMA:
                conn.execute(statement)
            have = {row[1] for row in conn.execute("PRAGMA table_info(users)")}
            for column, decl in _USER_COLUMNS.items():
                if column not in have:
                    conn.execute(f"ALTER TABLE users ADD COLUMN {column} {decl}")
            for (name,) in conn.execute("SELECT name FROM users WHERE id IS NULL").fetchall():
                conn.execute("UPDATE users SET id=? WHERE name=?", (str(uuid.uuid4()), name))
            self._conn = conn
        return self._conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the index is rebuilt afterwards."""
        with self._lock:
            conn = self._db()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._index = None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def index(self) -> Index:
        """The current index (rebuilt when the file changed since the last one)."""
        with self._lock:
            conn = self._db()
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if self._index is None or version != self._version:
                self._index = self._build(conn)
                self._version = version
            return self._index

    def _build(self, conn: sqlite3.Connection) -> Index:
        ix = Index()
        for uid, name, domain, ext, failures, locked, last, digest in conn.execute(
                "SELECT id, name, domain, external_id, failures, locked_until, last_login, "
                "hash FROM users"):
            user = User(uid, name, domain, ext, failures, locked, last, bool(digest))
            ix.users[name] = user
            ix.users_by_id[uid] = user
        for gid, name, domain, ext in conn.execute(
                "SELECT id, name, domain, external_id FROM groups"):
            ix.groups[gid] = Group(gid, name, domain, ext)
        members: dict[str, set[str]] = {}
        for user_id, group_id in conn.execute("SELECT user_id, group_id FROM members"):
            members.setdefault(user_id, set()).add(group_id)
        ix.member_of = {k: frozenset(v) for k, v in members.items()}
        for role in PREDEFINED:
            ix.roles[role.id] = role
        actions: dict[str, set[ActionGroup]] = {}
        by_id = {g.id: g for g in ActionGroup}
        for role_id, action in conn.execute("SELECT role_id, action FROM role_actions"):
            if action in by_id:
                actions.setdefault(role_id, set()).add(by_id[action])
        for rid, name, description, admin in conn.execute(
                "SELECT id, name, description, administrative FROM roles"):
            ix.roles[rid] = Role(rid, name, description, frozenset(actions.get(rid, ())),
                                 bool(admin))
        ix.role_names = {r.name.lower(): r for r in ix.roles.values()}
        by_object: dict[str, list[Permission]] = {}
        by_principal: dict[str, list[Permission]] = {}
        for pid, principal, pkind, role_id, okind, oid in conn.execute(
                "SELECT id, principal_id, principal_kind, role_id, object_kind, object_id "
                "FROM permissions"):
            perm = Permission(pid, principal, pkind, role_id, Kind(okind), oid)
            ix.permissions[pid] = perm
            by_object.setdefault(oid, []).append(perm)
            by_principal.setdefault(principal, []).append(perm)
        ix.by_object = {k: tuple(v) for k, v in by_object.items()}
        ix.by_principal = {k: tuple(v) for k, v in by_principal.items()}
        return ix

    # ---------------------------------------------------------------- users

    def user_hash(self, name: str) -> str | None:
        with self._lock:
            row = self._db().execute("SELECT hash FROM users WHERE name=?",
                                     (name,)).fetchone()
        return str(row[0]) if row and row[0] else None

    def put_user(self, name: str, *, digest: str = "", external_id: str = "") -> User:
        """Create a user (a local one with its hash, a directory one with its DN) or
        update its hash/DN; returns it."""
        full = full_name(name)
        domain = full.rpartition("@")[2]
        now = time.time()
        with self.write() as conn:
            conn.execute(
                "INSERT INTO users(name, hash, created, updated, id, domain, external_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "hash=CASE WHEN excluded.hash != '' THEN excluded.hash ELSE users.hash END, "
                "external_id=CASE WHEN excluded.external_id != '' THEN excluded.external_id "
                "ELSE users.external_id END, updated=excluded.updated",
                (full, digest, now, now, str(uuid.uuid4()), domain, external_id))
        return self.index().users[full]

    def remove_user(self, name_or_id: str) -> User:
        """Remove a user, its group memberships and every permission given to it."""
        user = self.index().user(name_or_id)
        with self.write() as conn:
            conn.execute("DELETE FROM users WHERE id=?", (user.id,))
            conn.execute("DELETE FROM members WHERE user_id=?", (user.id,))
            conn.execute("DELETE FROM permissions WHERE principal_id=?", (user.id,))
        return user

    def login_failed(self, user: User, max_failures: int, lock_seconds: float) -> bool:
        """Count a failed login; True when this one locks the account."""
        with self.write() as conn:
            row = conn.execute("SELECT failures FROM users WHERE id=?", (user.id,)).fetchone()
            if row is None:
                return False
            failures = int(row[0]) + 1
            if failures >= max_failures:
                conn.execute("UPDATE users SET failures=0, locked_until=? WHERE id=?",
                             (time.time() + lock_seconds, user.id))
                return True
            conn.execute("UPDATE users SET failures=? WHERE id=?", (failures, user.id))
        return False

    def login_succeeded(self, user: User, groups: Iterable[str] | None = None) -> None:
        """Reset the failure count; for a directory user also replace its group
        memberships with ``groups`` (group ids), as the directory says them now."""
        with self.write() as conn:
            conn.execute("UPDATE users SET failures=0, locked_until=0, last_login=? "
                         "WHERE id=?", (time.time(), user.id))
            if groups is not None:
                conn.execute("DELETE FROM members WHERE user_id=?", (user.id,))
                conn.executemany("INSERT INTO members(user_id, group_id) VALUES (?, ?)",
                                 [(user.id, g) for g in groups])

    def unlock(self, name_or_id: str) -> User:
        user = self.index().user(name_or_id)
        with self.write() as conn:
            conn.execute("UPDATE users SET failures=0, locked_until=0 WHERE id=?", (user.id,))
        return user

    # --------------------------------------------------------------- groups

    def add_group(self, name: str, external_id: str = "") -> Group:
        short, domain = split_name(name)
        gid = str(uuid.uuid4())
        try:
            with self.write() as conn:
                conn.execute("INSERT INTO groups(id, name, domain, external_id) "
                             "VALUES (?, ?, ?, ?)", (gid, short, domain, external_id))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"group {short}@{domain} exists already") from None
        return self.index().groups[gid]

    def remove_group(self, name_or_id: str) -> Group:
        group = self.index().group(name_or_id)
        with self.write() as conn:
            conn.execute("DELETE FROM groups WHERE id=?", (group.id,))
            conn.execute("DELETE FROM members WHERE group_id=?", (group.id,))
            conn.execute("DELETE FROM permissions WHERE principal_id=?", (group.id,))
        return group

    def add_member(self, group_id: str, user_id: str) -> None:
        with self.write() as conn:
            conn.execute("INSERT OR IGNORE INTO members(user_id, group_id) VALUES (?, ?)",
                         (user_id, group_id))

    # ---------------------------------------------------------------- roles

    def add_role(self, name: str, actions: Iterable[ActionGroup], description: str = "",
                 administrative: bool | None = None) -> Role:
        wanted = set(actions) | {ActionGroup.LOGIN}
        if not name.strip():
            raise InvalidInput("a role needs a name")
        if name.lower() in self.index().role_names:
            raise AlreadyExists(f"role {name!r} exists already")
        if administrative is None:
            administrative = any(a.administrative for a in wanted)
        rid = str(uuid.uuid4())
        with self.write() as conn:
            conn.execute("INSERT INTO roles(id, name, description, administrative) "
                         "VALUES (?, ?, ?, ?)", (rid, name, description, int(administrative)))
            conn.executemany("INSERT INTO role_actions(role_id, action) VALUES (?, ?)",
                             [(rid, a.id) for a in wanted])
        return self.index().roles[rid]

    def remove_role(self, name_or_id: str) -> Role:
        role = self.index().role(name_or_id)
        if not role.mutable:
            raise InvalidInput(f"role {role.name} is predefined and cannot be removed")
        in_use = [p for p in self.index().permissions.values() if p.role_id == role.id]
        if in_use:
            raise InvalidInput(f"role {role.name} is given by {len(in_use)} permission(s); "
                               "remove them first")
        with self.write() as conn:
            conn.execute("DELETE FROM roles WHERE id=?", (role.id,))
            conn.execute("DELETE FROM role_actions WHERE role_id=?", (role.id,))
        return role

    # ---------------------------------------------------------- permissions

    def add_permission(self, principal_id: str, principal_kind: str, role_id: str,
                       object_kind: Kind, object_id: str) -> Permission:
        pid = str(uuid.uuid4())
        try:
            with self.write() as conn:
                conn.execute("INSERT INTO permissions(id, principal_id, principal_kind, "
                             "role_id, object_kind, object_id) VALUES (?, ?, ?, ?, ?, ?)",
                             (pid, principal_id, principal_kind, role_id, object_kind.value,
                              object_id))
        except sqlite3.IntegrityError:
            raise AlreadyExists("this permission exists already") from None
        return self.index().permissions[pid]

    def add_permissions(self, rows: Iterable[tuple[str, str, str, Kind, str]]) -> int:
        """Many permissions in one transaction (benchmarks, imports); returns how many."""
        values = [(str(uuid.uuid4()), p, pk, r, ok.value, o) for p, pk, r, ok, o in rows]
        with self.write() as conn:
            conn.executemany("INSERT OR IGNORE INTO permissions(id, principal_id, "
                             "principal_kind, role_id, object_kind, object_id) VALUES "
                             "(?, ?, ?, ?, ?, ?)", values)
        return len(values)

    def remove_permission(self, perm_id: str) -> Permission:
        perm = self.index().permissions.get(perm_id)
        if perm is None:
            raise NotFound(f"no permission {perm_id!r}")
        with self.write() as conn:
            conn.execute("DELETE FROM permissions WHERE id=?", (perm_id,))
        return perm

    def forget_object(self, object_id: str) -> int:
        """Drop the permissions on an object that is gone (oVirt removes them with it)."""
        with self.write() as conn:
            return conn.execute("DELETE FROM permissions WHERE object_id=?",
                                (object_id,)).rowcount
