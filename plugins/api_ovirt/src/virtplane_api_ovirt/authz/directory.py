"""LDAP directories (``ldap3``): who a user is, its password, its groups.

A directory is configured in the ``[plugin.api_ovirt.directories.NAME]`` table
of ``virtplane.toml``; its users log in as ``uid@NAME``::

    [plugin.api_ovirt.directories.corp]
    url = "ldap://ldap.example.org"
    base_dn = "dc=example,dc=org"
    bind_dn = "cn=virtplane,ou=services,dc=example,dc=org"
    bind_password_file = "/etc/virtplane/corp.password"   # or bind_password_env = "CORP_PW"

The service account's password is read from a file or an environment
variable when a directory is first used, never from the configuration (a
``bind_password`` key is refused) and never written to a log or a message.
A login searches the user by ``user_filter`` with the service account, then
binds as the user with the given password (an empty password is refused
before LDAP sees it: an empty simple bind is an anonymous bind and would
"succeed"), then reads its groups. Users and groups are looked up again at
every login, so one removed from the directory, or from a group, loses that
access at its next login.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virtplane.errors import ConfigError, VirtplaneError

#: keys a directory table may have, with their defaults ("" = required or unset)
_KEYS: dict[str, Any] = {
    "url": "", "base_dn": "", "bind_dn": "", "bind_password_file": "",
    "bind_password_env": "", "user_filter": "(&(objectClass=inetOrgPerson)(uid={name}))",
    "user_attribute": "uid", "group_filter": "(&(objectClass=groupOfNames)(member={dn}))",
    "group_lookup": "(&(objectClass=groupOfNames)(cn={name}))", "group_attribute": "cn",
    "timeout": 5.0,
}


class DirectoryUnavailable(VirtplaneError):
    """The directory does not answer, or refuses the service account."""


@dataclass(frozen=True)
class Entry:
    """A user or group as the directory has it."""

    name: str
    dn: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoginResult:
    """``entry`` when the password is right; ``exists`` says whether the user is there
    at all (a failure then counts towards its lockout)."""

    entry: Entry | None
    exists: bool


class LdapDirectory:
    """One configured directory."""

    def __init__(self, name: str, table: dict[str, Any], source: str = "config") -> None:
        if "bind_password" in table:
            raise ConfigError(f"{source}: [plugin.api_ovirt.directories.{name}] has "
                              "bind_password; passwords never go into configuration: use "
                              "bind_password_file or bind_password_env")
        unknown = sorted(set(table) - set(_KEYS))
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} in "
                              f"[plugin.api_ovirt.directories.{name}]; allowed: "
                              f"{', '.join(sorted(_KEYS))}")
        values = {**_KEYS, **table}
        for key, value in table.items():  # the types TOML gives; nothing is converted
            if key == "timeout":
                if isinstance(value, bool) or not isinstance(value, (int, float)) \
                        or not 0 < value < float("inf"):
                    raise ConfigError(f"{source}: plugin.api_ovirt.directories.{name}.timeout "
                                      f"= {value!r:.60} is not allowed; it must be a number "
                                      "of seconds above 0")
            elif not isinstance(value, str):
                raise ConfigError(f"{source}: plugin.api_ovirt.directories.{name}.{key} = "
                                  f"{value!r:.60} is not allowed; it must be a string")
        for key in ("url", "base_dn"):
            if not values[key]:
                raise ConfigError(f"{source}: [plugin.api_ovirt.directories.{name}] needs "
                                  f"{key}")
        if name in ("internal", "internal-authz"):
            raise ConfigError(f"{source}: directory name {name!r} is the built-in one")
        self.name = name
        self.url = str(values["url"])
        self.base_dn = str(values["base_dn"])
        self.bind_dn = str(values["bind_dn"])
        self._password_file = str(values["bind_password_file"])
        self._password_env = str(values["bind_password_env"])
        self.user_filter = str(values["user_filter"])
        self.user_attribute = str(values["user_attribute"])
        self.group_filter = str(values["group_filter"])
        self.group_lookup = str(values["group_lookup"])
        self.group_attribute = str(values["group_attribute"])
        self.timeout = float(values["timeout"])

    def __repr__(self) -> str:
        return f"LdapDirectory({self.name!r}, {self.url!r})"

    # ------------------------------------------------------------- binding

    def _bind_password(self) -> str:
        if self._password_env:
            value = os.environ.get(self._password_env)
            if value is None:
                raise DirectoryUnavailable(f"directory {self.name}: environment variable "
                                           f"{self._password_env} is not set")
            return value
        if self._password_file:
            try:
                return Path(self._password_file).read_text(encoding="utf-8").rstrip("\n")
            except OSError as exc:
                raise DirectoryUnavailable(f"directory {self.name}: cannot read "
                                           f"{self._password_file}: {exc.strerror}") from None
        return ""

    def _connect(self, dn: str, password: str) -> Any:
        import ldap3  # type: ignore[import-untyped]  # ldap3 ships no types
        from ldap3.core.exceptions import LDAPException  # type: ignore[import-untyped]

        server = ldap3.Server(self.url, connect_timeout=max(1, int(self.timeout)),
                              get_info=ldap3.NONE)
        try:
            conn = ldap3.Connection(server, user=dn or None, password=password or None,
                                    receive_timeout=max(1, int(self.timeout)),
                                    raise_exceptions=False, read_only=True)
            ok = conn.bind()
        except LDAPException as exc:
            raise DirectoryUnavailable(f"directory {self.name} at {self.url} does not "
                                       f"answer: {type(exc).__name__}") from None
        if not ok:
            conn.unbind()
            return None
        return conn

    def _service(self) -> Any:
        conn = self._connect(self.bind_dn, self._bind_password())
        if conn is None:
            raise DirectoryUnavailable(f"directory {self.name} refuses the service account "
                                       f"{self.bind_dn or '(anonymous)'}")
        return conn

    # ------------------------------------------------------------- lookups

    def _search(self, conn: Any, flt: str, attribute: str) -> list[Entry]:
        import ldap3

        conn.search(self.base_dn, flt, search_scope=ldap3.SUBTREE, attributes=[attribute],
                    size_limit=1000)
        out = []
        for item in conn.response or []:
            if item.get("type") != "searchResEntry":
                continue
            values = item.get("attributes", {}).get(attribute)
            value = values[0] if isinstance(values, list) and values else values
            if value:
                out.append(Entry(str(value), str(item["dn"])))
        return out

    @staticmethod
    def _escape(text: str) -> str:
        from ldap3.utils.conv import escape_filter_chars  # type: ignore[import-untyped]

        return str(escape_filter_chars(text))

    def _groups_of(self, conn: Any, dn: str) -> tuple[str, ...]:
        flt = self.group_filter.format(dn=self._escape(dn))
        return tuple(sorted(e.name for e in self._search(conn, flt, self.group_attribute)))

    def find_user(self, name: str) -> Entry | None:
        conn = self._service()
        try:
            found = self._search(conn, self.user_filter.format(name=self._escape(name)),
                                 self.user_attribute)
            if len(found) != 1:
                return None
            return Entry(found[0].name, found[0].dn, self._groups_of(conn, found[0].dn))
        finally:
            conn.unbind()

    def find_group(self, name: str) -> Entry | None:
        conn = self._service()
        try:
            found = self._search(conn, self.group_lookup.format(name=self._escape(name)),
                                 self.group_attribute)
            return found[0] if len(found) == 1 else None
        finally:
            conn.unbind()

    def search(self, what: str, pattern: str = "*") -> list[Entry]:
        """Users (``what="users"``) or groups whose name matches ``pattern`` (``*`` wildcards)."""
        conn = self._service()
        escaped = "*".join(self._escape(p) for p in pattern.split("*"))
        try:
            if what == "users":
                return self._search(conn, self.user_filter.format(name=escaped),
                                    self.user_attribute)
            return self._search(conn, self.group_lookup.format(name=escaped),
                                self.group_attribute)
        finally:
            conn.unbind()

    def login(self, name: str, password: str) -> LoginResult:
        """Check ``name``'s password by binding as it; its groups when right."""
        conn = self._service()
        try:
            found = self._search(conn, self.user_filter.format(name=self._escape(name)),
                                 self.user_attribute)
            if len(found) != 1:
                return LoginResult(None, False)
            dn = found[0].dn
            if not password:
                return LoginResult(None, True)
            user_conn = self._connect(dn, password)
            if user_conn is None:
                return LoginResult(None, True)
            user_conn.unbind()
            return LoginResult(Entry(found[0].name, dn, self._groups_of(conn, dn)), True)
        finally:
            conn.unbind()


def load(tables: dict[str, Any], source: str = "config") -> dict[str, LdapDirectory]:
    """The directories of ``[plugin.api_ovirt.directories]``."""
    if not isinstance(tables, dict):
        raise ConfigError(f"{source}: [plugin.api_ovirt.directories] must hold one table "
                          "per directory")
    out = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [plugin.api_ovirt.directories.{name}] must be a table")
        out[name] = LdapDirectory(name, table, source)
    return out
