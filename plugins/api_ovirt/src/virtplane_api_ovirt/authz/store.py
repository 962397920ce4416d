"""Users, groups, custom roles and permissions: their tables and the index over them.

**Where.** With one engine on SQLite, in ``api-users.db`` beside the state
file (mode 0600 in a folder of mode 0700), the file that already held the
API's users and their argon2 hashes; not in the state file, so password hashes
and who-may-do-what stay out of state dumps and copies. When the state store
is PostgreSQL, several engines share it and serve the API behind one load
balancer, so a user, a permission or a session must be the same at every
engine: the tables then live in that database (``authz_*``), next to the
state's but apart from them (:mod:`._backend`; docs/permissions.md).

**Fast checks.** Every API call and every command through the engine asks
"may this user do that here?"; reading the tables each time would cost more than
the call. The whole table set is small (10,000 permissions are ~1 MiB), so an
immutable in-memory :class:`Index` answers, rebuilt only when the tables
changed: SQLite's ``PRAGMA data_version`` moves whenever *another* connection
commits (the CLI in another process, another API worker); on PostgreSQL every
write bumps ``authz_meta.version`` in its own transaction, and one indexed read
tells whether another engine or CLI wrote. This object's own writes drop the
index themselves, so the next check sees them, whatever the scope.

**Once per request.** Outside any scope, every :meth:`AuthzStore.index` asks
the database whether the tables changed. Inside :func:`request_scope` (the API
opens one around each request, before authenticating it; the engine around
each command's check), a store asks at its first look only and then answers
from the index it has, so a request that checks many objects (a filtered list,
a nested resource, the session's user and then the target) costs one version
read, on PostgreSQL one round trip: another engine's or a CLI's write is seen
from the next request on, as docs/permissions.md says. A request with a bearer
token reads its session and that version in one statement
(:meth:`AuthzStore.session`): still one round trip in all.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from virtplane.errors import AlreadyExists, InvalidInput, NotFound
from virtplane_api_ovirt.authz._backend import (
    USERS_FILE,
    Backend,
    Connected,
    PostgresBackend,
    SqliteBackend,
    Tx,
)
from virtplane_api_ovirt.authz.model import (
    PREDEFINED,
    ActionGroup,
    Kind,
    Permission,
    Role,
)
from virtplane_api_ovirt.authz.principals import (
    INTERNAL,
    Group,
    Index,
    User,
    full_name,
    split_name,
)

__all__ = ["INTERNAL", "USERS_FILE", "AuthzStore", "Group", "Index", "Tx", "User",
           "full_name", "request_scope", "split_name"]


class _Request:
    """One request's scope: the stores that read the tables' version in it already."""

    __slots__ = ("looked", "open")

    def __init__(self) -> None:
        self.looked: set[AuthzStore] = set()
        #: False once the request ended (a task or callback that copied the context
        #: and outlives the request reads the version again, as outside any scope)
        self.open = True


_REQUEST: ContextVar[_Request | None] = ContextVar("virtplane_authz_request", default=None)


@contextmanager
def request_scope() -> Iterator[None]:
    """One request (an API call, an engine command): inside it, each store reads the
    tables' version at its first :meth:`AuthzStore.index` only, and later checks in
    the same request answer from that index (one database round trip per request on
    PostgreSQL, not one per check). A write through the store is still seen by the
    next check; another engine's or a CLI's, from the next request on. A context
    variable: it follows the request into the worker threads the API runs it in
    (they copy the context)."""
    scope = _Request()
    token = _REQUEST.set(scope)
    try:
        yield
    finally:
        scope.open = False
        _REQUEST.reset(token)


class AuthzStore(Connected):
    """The tables and the index over them, in one backend (:mod:`._backend`): the
    SQLite file ``path``, or the PostgreSQL database of :meth:`for_state`. Thread
    safe (one lock, one connection)."""

    def __init__(self, path: str | os.PathLike[str] | Backend) -> None:
        super().__init__(path if isinstance(path, Backend) else SqliteBackend(path))
        self.path = Path(self.backend.name) if isinstance(self.backend, SqliteBackend) \
            else None
        self._index: Index | None = None
        self._version = -1

    @classmethod
    def for_state(cls, location: str | os.PathLike[str],
                  path: str | os.PathLike[str] | None = None) -> AuthzStore:
        """The store of the state store at ``location``: on PostgreSQL its database
        (shared by every engine; ``path``, default ``api-users.db`` beside the local
        anchor, is an older file copied in once when the database has no user yet),
        else the file ``path`` (default: ``api-users.db`` beside the state file)."""
        from virtplane.state import local_anchor, scheme_of

        if path is None:
            path = local_anchor(location).parent / USERS_FILE
        if scheme_of(location) in ("postgresql", "postgres"):
            return cls(PostgresBackend(os.fspath(location), legacy=path))
        return cls(path)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """One write transaction; the index is rebuilt afterwards."""
        with self._lock, self._guard():
            conn = self._db()
            try:
                conn.execute(self.backend.begin)
            except Exception as exc:  # noqa: BLE001 - _again raises it, or begins anew
                conn = self._again(exc, self._begin)
            try:
                yield Tx(conn, self.backend)
                self.backend.bump(conn)
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except Exception:  # noqa: BLE001 - the connection died: nothing to undo
                    self._drop()
                raise
            conn.execute("COMMIT")
            self._index = None

    def index(self) -> Index:
        """The current index: rebuilt when the tables changed since the last one;
        within a :func:`request_scope` whose first look was made, the one held
        (unless a write through this store dropped it)."""
        scope = _REQUEST.get()
        held = self._index
        if held is not None and scope is not None and scope.open and self in scope.looked:
            return held
        with self._lock:  # (no context manager for errors: this runs at every check)
            try:
                ix = self._current(self._conn if self._conn is not None else self._db())
            except Exception as exc:  # noqa: BLE001 - _again raises it, or reads anew
                ix = self._again(exc, self._current)
        if scope is not None and scope.open:
            scope.looked.add(self)
        return ix

    def session(self, token_hash: str, now: float) -> tuple[str, float] | None:
        """A shared session's user and expiry (None: unknown or expired), and the
        tables' version in the same statement (shared backends: ``{sessions}``).

        Inside a :func:`request_scope`, when that version is the held index's, it is
        the request's first look (:meth:`index`): a request with a bearer token costs
        one round trip, not one for its session and another for the version. When the
        version moved, :meth:`index` reads it again and rebuilds, as without this.
        """
        scope = _REQUEST.get()
        with self._lock:
            rows = self.query("SELECT s.user_name, s.expires, m.version FROM {meta} m "
                              "LEFT JOIN {sessions} s ON s.token_hash=? AND s.expires > ? "
                              "WHERE m.id=1", (token_hash, now))
            if rows and scope is not None and scope.open and self._index is not None \
                    and int(rows[0][2]) == self._version:
                scope.looked.add(self)
        if not rows or rows[0][0] is None:
            return None
        return str(rows[0][0]), float(rows[0][1])

    def _current(self, conn: Any) -> Index:
        held = self._index
        if held is not None and self.backend.version(conn) == self._version:
            return held
        # (no index yet, or dropped by a write here: the rebuild reads the version)
        self._index, self._version = self._rebuild(conn)
        return self._index

    def _rebuild(self, conn: Any) -> tuple[Index, int]:
        if not self.backend.shared:
            version = self.backend.version(conn)
            return self._build(Tx(conn, self.backend)), version
        # one snapshot for the version and the tables
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            version = self.backend.version(conn)
            return self._build(Tx(conn, self.backend)), version
        finally:
            conn.execute("COMMIT")

    def _build(self, conn: Tx) -> Index:
        ix = Index()
        for uid, name, domain, ext, failures, locked, last, digest in conn.execute(
                "SELECT id, name, domain, external_id, failures, locked_until, last_login, "
                "hash FROM {users}"):
            user = User(uid, name, domain, ext, failures, locked, last, bool(digest))
            ix.users[name] = user
            ix.users_by_id[uid] = user
        for gid, name, domain, ext in conn.execute(
                "SELECT id, name, domain, external_id FROM {groups}"):
            ix.groups[gid] = Group(gid, name, domain, ext)
        members: dict[str, set[str]] = {}
        for user_id, group_id in conn.execute("SELECT user_id, group_id FROM {members}"):
            members.setdefault(user_id, set()).add(group_id)
        ix.member_of = {k: frozenset(v) for k, v in members.items()}
        for role in PREDEFINED:
            ix.roles[role.id] = role
        actions: dict[str, set[ActionGroup]] = {}
        by_id = {g.id: g for g in ActionGroup}
        for role_id, action in conn.execute("SELECT role_id, action FROM {role_actions}"):
            if action in by_id:
                actions.setdefault(role_id, set()).add(by_id[action])
        for rid, name, description, admin in conn.execute(
                "SELECT id, name, description, administrative FROM {roles}"):
            ix.roles[rid] = Role(rid, name, description, frozenset(actions.get(rid, ())),
                                 bool(admin))
        ix.role_names = {r.name.lower(): r for r in ix.roles.values()}
        by_object: dict[str, list[Permission]] = {}
        by_principal: dict[str, list[Permission]] = {}
        for pid, principal, pkind, role_id, okind, oid in conn.execute(
                "SELECT id, principal_id, principal_kind, role_id, object_kind, object_id "
                "FROM {permissions}"):
            perm = Permission(pid, principal, pkind, role_id, Kind(okind), oid)
            ix.permissions[pid] = perm
            by_object.setdefault(oid, []).append(perm)
            by_principal.setdefault(principal, []).append(perm)
        ix.by_object = {k: tuple(v) for k, v in by_object.items()}
        ix.by_principal = {k: tuple(v) for k, v in by_principal.items()}
        return ix

    # ---------------------------------------------------------------- users

    def user_hash(self, name: str) -> str | None:
        rows = self.query("SELECT hash FROM {users} WHERE name=?", (name,))
        return str(rows[0][0]) if rows and rows[0][0] else None

    def put_user(self, name: str, *, digest: str = "", external_id: str = "") -> User:
        """Create a user (a local one with its hash, a directory one with its DN) or
        update its hash/DN; returns it."""
        full = full_name(name)
        domain = full.rpartition("@")[2]
        now = time.time()
        with self.write() as conn:
            conn.execute(
                "INSERT INTO {users}(name, hash, created, updated, id, domain, external_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "hash=CASE WHEN excluded.hash != '' THEN excluded.hash ELSE {users}.hash END, "
                "external_id=CASE WHEN excluded.external_id != '' THEN excluded.external_id "
                "ELSE {users}.external_id END, updated=excluded.updated",
                (full, digest, now, now, str(uuid.uuid4()), domain, external_id))
        return self.index().users[full]

    def remove_user(self, name_or_id: str) -> User:
        """Remove a user, its group memberships and every permission given to it."""
        user = self.index().user(name_or_id)
        with self.write() as conn:
            conn.execute("DELETE FROM {users} WHERE id=?", (user.id,))
            conn.execute("DELETE FROM {members} WHERE user_id=?", (user.id,))
            conn.execute("DELETE FROM {permissions} WHERE principal_id=?", (user.id,))
        return user

    def login_failed(self, user: User, max_failures: int, lock_seconds: float) -> bool:
        """Count a failed login; True when this one locks the account."""
        with self.write() as conn:
            row = conn.execute("SELECT failures FROM {users} WHERE id=?" + self.backend.for_update,
                               (user.id,)).fetchone()
            if row is None:
                return False
            failures = int(row[0]) + 1
            if failures >= max_failures:
                conn.execute("UPDATE {users} SET failures=0, locked_until=? WHERE id=?",
                             (time.time() + lock_seconds, user.id))
                return True
            conn.execute("UPDATE {users} SET failures=? WHERE id=?", (failures, user.id))
        return False

    def login_succeeded(self, user: User, groups: Iterable[str] | None = None) -> None:
        """Reset the failure count; for a directory user also replace its group
        memberships with ``groups`` (group ids), as the directory says them now."""
        with self.write() as conn:
            conn.execute("UPDATE {users} SET failures=0, locked_until=0, last_login=? "
                         "WHERE id=?", (time.time(), user.id))
            if groups is not None:
                conn.execute("DELETE FROM {members} WHERE user_id=?", (user.id,))
                conn.executemany("INSERT INTO {members}(user_id, group_id) VALUES (?, ?)",
                                 [(user.id, g) for g in groups])

    def unlock(self, name_or_id: str) -> User:
        user = self.index().user(name_or_id)
        with self.write() as conn:
            conn.execute("UPDATE {users} SET failures=0, locked_until=0 WHERE id=?", (user.id,))
        return user

    # --------------------------------------------------------------- groups

    def add_group(self, name: str, external_id: str = "") -> Group:
        short, domain = split_name(name)
        gid = str(uuid.uuid4())
        try:
            with self.write() as conn:
                conn.execute("INSERT INTO {groups}(id, name, domain, external_id) "
                             "VALUES (?, ?, ?, ?)", (gid, short, domain, external_id))
        except self.backend.unique:
            raise AlreadyExists(f"group {short}@{domain} exists already") from None
        return self.index().groups[gid]

    def remove_group(self, name_or_id: str) -> Group:
        group = self.index().group(name_or_id)
        with self.write() as conn:
            conn.execute("DELETE FROM {groups} WHERE id=?", (group.id,))
            conn.execute("DELETE FROM {members} WHERE group_id=?", (group.id,))
            conn.execute("DELETE FROM {permissions} WHERE principal_id=?", (group.id,))
        return group

    def add_member(self, group_id: str, user_id: str) -> None:
        with self.write() as conn:
            conn.execute("INSERT INTO {members}(user_id, group_id) VALUES (?, ?) "
                         "ON CONFLICT DO NOTHING",
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
            conn.execute("INSERT INTO {roles}(id, name, description, administrative) "
                         "VALUES (?, ?, ?, ?)", (rid, name, description, int(administrative)))
            conn.executemany("INSERT INTO {role_actions}(role_id, action) VALUES (?, ?)",
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
            conn.execute("DELETE FROM {roles} WHERE id=?", (role.id,))
            conn.execute("DELETE FROM {role_actions} WHERE role_id=?", (role.id,))
        return role

    # ---------------------------------------------------------- permissions

    def add_permission(self, principal_id: str, principal_kind: str, role_id: str,
                       object_kind: Kind, object_id: str) -> Permission:
        pid = str(uuid.uuid4())
        try:
            with self.write() as conn:
                conn.execute("INSERT INTO {permissions}(id, principal_id, principal_kind, "
                             "role_id, object_kind, object_id) VALUES (?, ?, ?, ?, ?, ?)",
                             (pid, principal_id, principal_kind, role_id, object_kind.value,
                              object_id))
        except self.backend.unique:
            raise AlreadyExists("this permission exists already") from None
        return self.index().permissions[pid]

    def add_permissions(self, rows: Iterable[tuple[str, str, str, Kind, str]]) -> int:
        """Many permissions in one transaction (benchmarks, imports); returns how many."""
        values = [(str(uuid.uuid4()), p, pk, r, ok.value, o) for p, pk, r, ok, o in rows]
        with self.write() as conn:
            conn.executemany("INSERT INTO {permissions}(id, principal_id, "
                             "principal_kind, role_id, object_kind, object_id) VALUES "
                             "(?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", values)
        return len(values)

    def remove_permission(self, perm_id: str) -> Permission:
        perm = self.index().permissions.get(perm_id)
        if perm is None:
            raise NotFound(f"no permission {perm_id!r}")
        with self.write() as conn:
            conn.execute("DELETE FROM {permissions} WHERE id=?", (perm_id,))
        return perm

    def forget_object(self, object_id: str) -> int:
        """Drop the permissions on an object that is gone (oVirt removes them with it)."""
        with self.write() as conn:
            return int(conn.execute("DELETE FROM {permissions} WHERE object_id=?",
                                    (object_id,)).rowcount)
