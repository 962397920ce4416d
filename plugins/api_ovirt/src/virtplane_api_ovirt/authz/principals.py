"""Principals and the in-memory index of the authz tables (see :mod:`.store`).

Names: ``alice`` is ``alice@internal`` (the built-in directory); ``bob@corp`` a
user of directory ``corp``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from virtplane.errors import InvalidInput, NotFound
from virtplane_api_ovirt.authz.model import Permission, Role

#: the built-in directory (oVirt's ``internal`` profile, ``internal-authz`` provider)
INTERNAL = "internal"
_INTERNAL_ALIASES = {"internal", "internal-authz"}

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
