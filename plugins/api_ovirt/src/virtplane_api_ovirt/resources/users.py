"""``/users``: list (searchable), add (a local user created with ``virtplane user add``,
or one of a directory), get, remove, and a user's groups.
"""

from __future__ import annotations

from virtplane.errors import InvalidInput, NotFound
from virtplane_api_ovirt import parse
from virtplane_api_ovirt.authz.model import SYSTEM, ActionGroup
from virtplane_api_ovirt.authz.store import INTERNAL, User, split_name
from virtplane_api_ovirt.base import Call, Reply, Route, collection, entity, removed
from virtplane_api_ovirt.resources.aaa_nodes import _domain_of, domain_label, group_node, user_node
from virtplane_api_ovirt.search import Searcher


def _login_names(user: User) -> list[str]:
    """What ``usrname=`` matches: the name, NAME@DIRECTORY, and oVirt's
    NAME@PROVIDER spelling (``alice@internal-authz``, ``bob@corp-authz``)."""
    provider = domain_label(user.domain)
    if not provider.endswith("-authz"):
        provider += "-authz"
    return [user.name, user.principal, f"{user.principal}@{provider}"]


def _users_searcher() -> Searcher[User]:
    return Searcher("user", {
        "name": lambda u: [u.principal], "usrname": _login_names,
        "user_name": lambda u: [u.name], "id": lambda u: [u.id],
        "domain": lambda u: [u.domain, domain_label(u.domain)],
    }, lambda u: u.name)


def list_users(call: Call) -> Reply:
    authz = call.api.authz
    ix = authz.store.index()
    users = sorted(ix.users.values(), key=lambda u: u.name)
    if call.tree is not None and not authz.check(call.user, ActionGroup.MANIPULATE_USERS,
                                                 SYSTEM, call.tree).granted:
        users = [u for u in users if u.name == call.user]
    found = call.search(_users_searcher(), users)
    return collection("users", "user", [user_node(u) for u in found])


def _user(call: Call) -> User:
    return call.api.authz.store.index().user(call.params["id"])


def get_user(call: Call) -> Reply:
    return entity("user", user_node(_user(call)))


def add_user(call: Call) -> Reply:
    """``users_service().add(types.User(user_name='alice@corp', domain=...))``."""
    body = call.need_body("user")
    login = parse.text(body, "user_name") or parse.text(body, "principal") or \
        parse.text(body, "name")
    if not login:
        raise InvalidInput("a user needs a <user_name> (NAME@DIRECTORY)")
    domain = parse.text(body, "domain", "name") or parse.text(body, "domain", "id")
    name, user_domain = split_name(login)
    if "@" not in login and domain:
        user_domain = _domain_of(call, domain)
    full = f"{name}@{user_domain}"
    authz = call.api.authz
    existing = authz.store.index().users.get(full)
    if existing is not None:
        return entity("user", user_node(existing), status=201)
    if user_domain == INTERNAL:
        raise NotFound(f"there is no local user {name!r}: create it first with "
                       f"`virtplane user add {name}` (it sets the password)")
    user = authz.add_user(full, by=call.user)
    return entity("user", user_node(user), status=201)


def remove_user(call: Call) -> Reply:
    user = _user(call)
    call.api.authz.remove_user(user.id, by=call.user)
    for key_id, _ in call.api.extras.ssh_keys(user.id):  # its SSH keys go with it
        call.api.extras.drop_ssh_key(key_id)
    return removed()


def user_groups(call: Call) -> Reply:
    ix = call.api.authz.store.index()
    user = _user(call)
    groups = [ix.groups[g] for g in ix.member_of.get(user.id, ()) if g in ix.groups]
    return collection("groups", "group", [group_node(g) for g in groups])


ROUTES: list[Route] = [
    ("GET", "/users", list_users),
    ("POST", "/users", add_user),
    ("GET", "/users/{id}", get_user),
    ("DELETE", "/users/{id}", remove_user),
    ("GET", "/users/{id}/groups", user_groups),
]
