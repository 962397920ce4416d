"""``/groups``: list (searchable), add, get and remove."""

from __future__ import annotations

from virtplane.errors import InvalidInput
from virtplane_api_ovirt import parse
from virtplane_api_ovirt.authz.store import split_name
from virtplane_api_ovirt.base import Call, Reply, Route, collection, entity, removed
from virtplane_api_ovirt.resources.aaa_nodes import _domain_of, domain_label, group_node
from virtplane_api_ovirt.search import Searcher


def list_groups(call: Call) -> Reply:
    ix = call.api.authz.store.index()
    found = call.search(Searcher("group", {
        "name": lambda g: [g.name], "id": lambda g: [g.id],
        "domain": lambda g: [g.domain, domain_label(g.domain)],
    }, lambda g: g.full), sorted(ix.groups.values(), key=lambda g: g.full))
    return collection("groups", "group", [group_node(g) for g in found])


def get_group(call: Call) -> Reply:
    return entity("group", group_node(call.api.authz.store.index().group(call.params["id"])))


def add_group(call: Call) -> Reply:
    """``groups_service().add(types.Group(name='ops', domain=types.Domain(name='corp')))``."""
    body = call.need_body("group")
    name = parse.text(body, "name")
    if not name:
        raise InvalidInput("a group needs a <name>")
    domain = parse.text(body, "domain", "name") or parse.text(body, "domain", "id")
    short, group_domain = split_name(name)
    if "@" not in name and domain:
        group_domain = _domain_of(call, domain)
    existing = next((g for g in call.api.authz.store.index().groups.values()
                     if g.name == short and g.domain == group_domain), None)
    if existing is not None:
        return entity("group", group_node(existing), status=201)
    group = call.api.authz.add_group(f"{short}@{group_domain}", by=call.user)
    return entity("group", group_node(group), status=201)


def remove_group(call: Call) -> Reply:
    call.api.authz.store.remove_group(call.params["id"])
    return removed()


ROUTES: list[Route] = [
    ("GET", "/groups", list_groups),
    ("POST", "/groups", add_group),
    ("GET", "/groups/{id}", get_group),
    ("DELETE", "/groups/{id}", remove_group),
]
