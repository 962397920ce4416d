"""Users, groups, roles and permissions (oVirt's model), for the API and the engine.

:class:`Authz` ties the parts together: the store (:mod:`.store`: a SQLite file
beside the state file, or the state's PostgreSQL database, shared by every
engine), the directories (:mod:`.directory`), logins with argon2 hashes
and a lockout, checks (:mod:`.policy`) and the audit trail in the state
store's event log. See docs/permissions.md.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from virtplane.errors import ConfigError, InvalidInput, NotFound, VirtplaneError
from virtplane_api_ovirt.authz import codes
from virtplane_api_ovirt.authz._backend import USERS_FILE
from virtplane_api_ovirt.authz.directory import DirectoryUnavailable, LdapDirectory
from virtplane_api_ovirt.authz.model import (
    SUPERUSER,
    SYSTEM,
    ActionGroup,
    Kind,
    ObjectRef,
    Permission,
)
from virtplane_api_ovirt.authz.policy import Authorizer, Decision, Forbidden
from virtplane_api_ovirt.authz.store import (
    INTERNAL,
    AuthzStore,
    User,
    full_name,
    request_scope,
    split_name,
)
from virtplane_api_ovirt.authz.tree import StoreTree, Tree

__all__ = ["ADMIN", "ActionGroup", "Authz", "Decision", "Forbidden", "Kind", "LoginRefused",
           "ObjectRef", "StoreTree", "Tree", "USERS_FILE"]

#: the administrator every installation has (SuperUser on System, always)
ADMIN = "admin@internal"
#: lockout defaults: oVirt's aaa-jdbc locks after 5 failures
MAX_FAILURES = 5
LOCK_SECONDS = 600.0
MIN_PASSWORD = 8

#: ``audit(object_id, message, level, code, correlation_id)``
Audit = Callable[[str, str, str, int, "str | None"], None]


class LoginRefused(VirtplaneError):
    """A login that failed: wrong password, unknown or locked user (HTTP 401)."""


@dataclass(frozen=True)
class Settings:
    """The ``[plugin.api_ovirt]`` keys about users (and the directories)."""

    max_failed_logins: int = MAX_FAILURES
    lockout_seconds: float = LOCK_SECONDS
    directories: dict[str, LdapDirectory] | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> Settings:
        from virtplane_api_ovirt.authz import directory

        tables = getattr(cfg, "plugin_tables", {}) if cfg is not None else {}
        table = dict(tables.get("api_ovirt", {}))
        source = getattr(cfg, "plugin_sources", {}).get("api_ovirt", "config")
        known = {"max_failed_logins", "lockout_seconds", "directories"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) plugin.api_ovirt.{', '.join(unknown)}; "
                              f"allowed: {', '.join(sorted(known))}")
        failures = table.get("max_failed_logins", MAX_FAILURES)
        seconds = table.get("lockout_seconds", LOCK_SECONDS)
        # TOML gives the types; nothing is converted ("5" or 1.9 is not an integer)
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
            raise ConfigError(f"{source}: plugin.api_ovirt.max_failed_logins = "
                              f"{failures!r:.60} is not allowed; it must be an integer, 1 "
                              "or more")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
                or not 0 <= seconds < float("inf"):
            raise ConfigError(f"{source}: plugin.api_ovirt.lockout_seconds = {seconds!r:.60} "
                              "is not allowed; it must be a number of seconds, 0 or more")
        seconds = float(seconds)
        return cls(failures, seconds, directory.load(table.get("directories", {}), source))


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when a login names no known user, so a refusal costs
    what a password check costs. One per process, made at the first such login: the
    engine builds an :class:`Authz` per client command, and an argon2 hash takes
    100-340 ms here."""
    return PasswordHasher().hash(secrets.token_hex(16))


class Authz:
    """Authentication, authorization and audit over one store of users (a file, or
    the shared database of a PostgreSQL state store: :meth:`for_manager`)."""

    def __init__(self, path: str | Path | AuthzStore, settings: Settings | None = None,
                 audit: Audit | None = None) -> None:
        #: the tables: a SQLite file (``path``), or a given store (the shared database)
        self.store = path if isinstance(path, AuthzStore) else AuthzStore(path)
        self.settings = settings or Settings()
        self.directories: dict[str, LdapDirectory] = dict(self.settings.directories or {})
        self.authorizer = Authorizer(self.store)
        self._audit = audit
        self._hasher = PasswordHasher()
        self._lock = threading.Lock()

    @classmethod
    def for_manager(cls, manager: Any, path: str | Path | None = None) -> Authz:
        """The Authz of ``manager``'s state store, with the configuration's
        directories and events into the store's event log. Its tables: on a
        PostgreSQL store, that database (every engine and CLI sees the same; ``path``
        is then an older ``api-users.db`` to copy in once), else the file ``path``
        (default: ``api-users.db`` beside the state file)."""
        if path is None:
            path = Path(manager.context.paths.state).parent / USERS_FILE
        store = manager.store
        tables = (AuthzStore.for_state(manager.context.location, path)
                  if store.backend == "postgresql" else AuthzStore(path))

        def audit(object_id: str, message: str, level: str, code: int,
                  correlation_id: str | None) -> None:
            store.add_event(object_id, message, level=level, code=code,
                            correlation_id=correlation_id)

        return cls(tables, Settings.from_config(manager.context.config), audit)

    def close(self) -> None:
        self.store.close()

    def request(self) -> AbstractContextManager[None]:
        """The scope of one request (:func:`~.store.request_scope`): the tables'
        version is read at its first check only, later checks reuse that index."""
        return request_scope()

    # ---------------------------------------------------------------- audit

    def audit(self, object_id: str, message: str, *, code: int, level: str = "info",
              correlation_id: str | None = None) -> None:
        """Write an event (who did what) to the state store's log, when there is one."""
        if self._audit is not None:
            self._audit(object_id, message, level, code, correlation_id)

    # -------------------------------------------------------------- domains

    def domains(self) -> list[str]:
        return [INTERNAL, *sorted(self.directories)]

    def directory(self, domain: str) -> LdapDirectory:
        found = self.directories.get(domain)
        if found is None:
            raise NotFound(f"no directory {domain!r}; configured: {', '.join(self.domains())}")
        return found

    # ---------------------------------------------------------------- users

    def set_password(self, login: str, password: str) -> User:
        """Create a local user or change its password (argon2id)."""
        name, domain = split_name(login)
        if domain != INTERNAL:
            raise InvalidInput(f"{login}: passwords of directory users live in directory "
                               f"{domain}")
        if len(password) < MIN_PASSWORD:
            raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")
        return self.store.put_user(f"{name}@{domain}", digest=self._hasher.hash(password))

    def add_user(self, login: str, password: str | None = None, *,
                 by: str = ADMIN) -> User:
        """Add a user: a local one (with its password) or one of a directory, which
        must be there."""
        full = full_name(login)
        name, domain = split_name(full)
        if full in self.store.index().users:
            from virtplane.errors import AlreadyExists

            raise AlreadyExists(f"user {full} exists already")
        if domain == INTERNAL:
            if password is None:
                raise InvalidInput(f"local user {full} needs a password")
            user = self.set_password(full, password)
        else:
            entry = self.directory(domain).find_user(name)
            if entry is None:
                raise NotFound(f"directory {domain} has no user {name!r}")
            user = self.store.put_user(full, external_id=entry.dn)
        self.audit(user.id, f"User {full} was added by {by}.", code=codes.USER_ADD)
        return user

    def remove_user(self, login: str, *, by: str = ADMIN) -> User:
        user = self.store.index().user(login)
        if user.name == ADMIN:
            raise InvalidInput(f"{ADMIN} cannot be removed")
        self.store.remove_user(user.id)
        self.audit(user.id, f"User {user.name} was removed by {by}.", code=codes.USER_REMOVE)
        return user

    def add_group(self, login: str, *, by: str = ADMIN) -> Any:
        name, domain = split_name(login)
        dn = ""
        if domain != INTERNAL:
            entry = self.directory(domain).find_group(name)
            if entry is None:
                raise NotFound(f"directory {domain} has no group {name!r}")
            dn = entry.dn
        group = self.store.add_group(f"{name}@{domain}", dn)
        self.audit(group.id, f"Group {group.full} was added by {by}.", code=codes.GROUP_ADD)
        return group

    # ---------------------------------------------------------------- login

    def login(self, login: str, password: str, *, source: str = "") -> User:
        """Check a password; the user on success. Failures count towards a lockout
        (``max_failed_logins`` in a row lock the account for ``lockout_seconds``,
        an event says so); a locked account is refused whatever the password."""
        try:
            name, domain = split_name(login)
        except InvalidInput:
            self._burn(password)
            raise LoginRefused(f"Cannot authenticate user {login!r}") from None
        full = f"{name}@{domain}"
        known = self.store.index().users.get(full)
        now = time.time()
        if known is not None and known.locked_until > now:
            self._burn(password)
            raise LoginRefused(f"the account {full} is locked after repeated failed logins "
                               f"until {time.strftime('%H:%M:%S', time.localtime(known.locked_until))}"
                               "; an administrator can unlock it (virtplane user unlock)")
        if domain == INTERNAL:
            ok = self._check_local(full, password)
            groups = None
            exists = known is not None
        else:
            directory = self.directories.get(domain)
            if directory is None:
                self._burn(password)
                raise LoginRefused(f"Cannot authenticate user {login!r}: no directory "
                                   f"{domain!r}")
            try:
                result = directory.login(name, password)
            except DirectoryUnavailable as exc:
                raise LoginRefused(f"Cannot authenticate user {login!r}: {exc}") from None
            ok, exists = result.entry is not None, result.exists
            groups = None
            if result.entry is not None:
                known = self.store.put_user(full, external_id=result.entry.dn)
                ix = self.store.index()
                wanted = set(result.entry.groups)
                groups = [g.id for g in ix.groups.values()
                          if g.domain == domain and g.name in wanted]
            elif exists and known is None:
                known = self.store.put_user(full)
        if not ok or known is None:
            self._failed(full, known if exists else None, source)
            raise LoginRefused(f"Cannot authenticate user {login!r}: the user name or "
                               "password is incorrect")
        self.store.login_succeeded(known, groups)
        self.audit(known.id, f"User {full} logged in{source}.", code=codes.USER_LOGIN)
        return self.store.index().users[full]

    def _burn(self, password: str) -> None:
        """One argon2 verification, so that a refusal costs what a check costs."""
        try:
            self._hasher.verify(_dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return

    def _check_local(self, full: str, password: str) -> bool:
        stored = self.store.user_hash(full)
        try:
            self._hasher.verify(stored or _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return False
        if stored is None:
            return False
        if self._hasher.check_needs_rehash(stored):
            self.store.put_user(full, digest=self._hasher.hash(password))
        return True

    def _failed(self, full: str, user: User | None, source: str) -> None:
        self.audit(user.id if user else "users", f"User {full} failed to log in{source}.",
                   code=codes.USER_LOGIN_FAILED, level="warning")
        if user is None:
            return
        if self.store.login_failed(user, self.settings.max_failed_logins,
                                   self.settings.lockout_seconds):
            self.audit(user.id, f"User {full} was locked for "
                       f"{self.settings.lockout_seconds:g} s after "
                       f"{self.settings.max_failed_logins} failed logins in a row.",
                       code=codes.USER_LOCKED, level="warning")

    def active(self, name: str) -> User | None:
        """The user behind a session, or None when it was removed or locked since."""
        user = self.store.index().users.get(name)
        if user is None or user.locked_until > time.time():
            return None
        return user

    # ----------------------------------------------------------- permissions

    def check(self, user: str | User, action: ActionGroup | None, obj: ObjectRef,
              tree: Tree) -> Decision:
        if _is_admin(user):
            return Decision(True, ADMIN, action, obj, role=SUPERUSER, via=SYSTEM)
        return self.authorizer.check(user, action, obj, tree)

    def require(self, user: str | User, action: ActionGroup | None, obj: ObjectRef,
                tree: Tree) -> Decision:
        decision = self.check(user, action, obj, tree)
        if not decision.granted:
            raise Forbidden(decision.message())
        return decision

    def grant(self, principal: str, role: str, obj: ObjectRef, *, by: str = ADMIN,
              group: bool = False) -> Permission:
        """Give ``role`` to a user (or, with ``group``, a group) on ``obj``."""
        ix = self.store.index()
        found_role = ix.role(role)
        if group:
            g = ix.group(principal)
            pid, pkind, label = g.id, "group", g.full
        else:
            u = ix.user(principal)
            pid, pkind, label = u.id, "user", u.name
        perm = self.store.add_permission(pid, pkind, found_role.id, obj.kind, obj.id)
        self.audit(obj.id, f"User {by} granted permission for Role {found_role.name} on "
                   f"{obj} to {pkind} {label}.", code=codes.PERMISSION_ADD)
        return perm

    def revoke(self, perm_id: str, *, by: str = ADMIN) -> Permission:
        ix = self.store.index()
        perm = self.store.remove_permission(perm_id)
        role = ix.roles.get(perm.role_id)
        who = self.principal_name(perm, ix)
        self.audit(perm.object_id, f"User {by} removed permission for Role "
                   f"{role.name if role else perm.role_id} from {perm.principal_kind} {who}.",
                   code=codes.PERMISSION_DELETE)
        return perm

    def principal_name(self, perm: Permission, ix: Any = None) -> str:
        ix = ix or self.store.index()
        if perm.principal_kind == "group":
            group = ix.groups.get(perm.principal_id)
            return group.full if group else perm.principal_id
        user = ix.users_by_id.get(perm.principal_id)
        return user.name if user else perm.principal_id


def _is_admin(user: str | User) -> bool:
    """admin@internal is SuperUser on System by construction (it cannot lose it: an
    installation without any administrator could not be repaired from the API)."""
    return (user.name if isinstance(user, User) else user) == ADMIN
