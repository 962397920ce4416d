"""``/domains``: the directories users and groups come from (``internal-authz`` and the
configured LDAP directories), and the users and groups found in each."""

from __future__ import annotations

from virtplane_api_ovirt.authz.store import INTERNAL
from virtplane_api_ovirt.base import (
    BASE,
    Call,
    Reply,
    Route,
    collection,
    derived_id,
    entity,
    links,
    ref,
)
from virtplane_api_ovirt.render import Node
from virtplane_api_ovirt.resources.aaa_nodes import (
    _domain_of,
    domain_id,
    domain_label,
    group_node,
    user_node,
)


def _domain_node(name: str) -> Node:
    path = f"{BASE}/domains/{domain_id(name)}"
    return {"href": path, "id": domain_id(name), "name": domain_label(name),
            "link": links(path, "users", "groups")}


def list_domains(call: Call) -> Reply:
    return collection("domains", "domain", [_domain_node(d) for d in call.api.authz.domains()])


def get_domain(call: Call) -> Reply:
    return entity("domain", _domain_node(_domain_of(call, call.params["id"])))


def _pattern(call: Call) -> str:
    """``search=name=al*`` or ``search=al*`` -> ``al*``."""
    text = (call.query.get("search") or "*").strip()
    for key in ("usrname=", "name=", "user_name="):
        if text.lower().startswith(key):
            text = text[len(key):]
    return text.strip('"') or "*"


def domain_users(call: Call) -> Reply:
    domain = _domain_of(call, call.params["id"])
    authz = call.api.authz
    if domain == INTERNAL:
        import fnmatch

        pattern = _pattern(call)
        users = [u for u in authz.store.index().users.values()
                 if u.domain == INTERNAL and fnmatch.fnmatchcase(u.principal, pattern)]
        nodes = [user_node(u) for u in sorted(users, key=lambda u: u.name)]
    else:
        entries = authz.directory(domain).search("users", _pattern(call))
        nodes = [_entry_node(domain, "users", e.name, e.dn) for e in entries]
    return collection("users", "user", nodes)


def domain_groups(call: Call) -> Reply:
    domain = _domain_of(call, call.params["id"])
    authz = call.api.authz
    if domain == INTERNAL:
        groups = [g for g in authz.store.index().groups.values() if g.domain == INTERNAL]
        return collection("groups", "group", [group_node(g) for g in groups])
    entries = authz.directory(domain).search("groups", _pattern(call))
    return collection("groups", "group",
                      [_entry_node(domain, "groups", e.name, e.dn) for e in entries])


def _entry_node(domain: str, what: str, name: str, dn: str) -> Node:
    entry_id = derived_id("entry", domain, dn)
    node: Node = {"href": f"{BASE}/domains/{domain_id(domain)}/{what}/{entry_id}",
                  "id": entry_id, "name": name, "namespace": dn, "domain_entry_id": dn,
                  "domain": ref("domains", domain_id(domain))}
    if what == "users":
        node.update({"user_name": f"{name}@{domain}", "principal": name})
    return node


ROUTES: list[Route] = [
    ("GET", "/domains", list_domains),
    ("GET", "/domains/{id}", get_domain),
    ("GET", "/domains/{id}/users", domain_users),
    ("GET", "/domains/{id}/groups", domain_groups),
]
