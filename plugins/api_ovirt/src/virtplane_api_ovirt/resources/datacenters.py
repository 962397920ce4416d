"""``/datacenters`` and a data center's clusters, networks and attached storage domains."""

from __future__ import annotations

from virtplane import model
from virtplane.errors import InvalidInput
from virtplane_api_ovirt import parse, updates
from virtplane_api_ovirt.authz.model import Kind
from virtplane_api_ovirt.base import (
    BASE,
    Call,
    Reply,
    Route,
    collection,
    entity,
    links,
    removed,
)
from virtplane_api_ovirt.render import Node
from virtplane_api_ovirt.resources.clusters import cluster_node, requested_version
from virtplane_api_ovirt.resources.versions import LEVELS, version
from virtplane_api_ovirt.search import Searcher

DC_LINKS = ("clusters", "iscsibonds", "networks", "permissions", "qoss", "quotas",
            "storagedomains")
def dc_node(dc: model.DataCenter, comment: str = "") -> Node:
    path = f"{BASE}/datacenters/{dc.id}"
    return {
        "href": path, "id": dc.id, "name": dc.name, "description": dc.description,
        "comment": comment, "link": links(path, *DC_LINKS),
        "local": False, "quota_mode": "disabled", "status": "up", "storage_format": "v5",
        "supported_versions": [version(v) for v in LEVELS],
        "version": version(dc.compat_version),
    }


def _dc_of_cluster_names(call: Call, dc: model.DataCenter) -> list[str]:
    return [c.name for c in call.m.clusters.list() if c.datacenter_id == dc.id]


def _domain_names(call: Call, dc: model.DataCenter) -> list[str]:
    return [d.name for d in call.m.storage.list() if d.datacenter_id == dc.id]


def searcher(call: Call) -> Searcher[model.DataCenter]:
    return Searcher("data center", {
        "name": lambda d: [d.name], "id": lambda d: [d.id], "status": lambda d: ["up"],
        "description": lambda d: [d.description],
        "clusters.name": lambda d: _dc_of_cluster_names(call, d),
        "cluster": lambda d: _dc_of_cluster_names(call, d),
        "storage": lambda d: _domain_names(call, d),
        "storage.name": lambda d: _domain_names(call, d),
    }, lambda d: d.name)


def list_dcs(call: Call) -> Reply:
    found = call.search(searcher(call),
                        call.only_visible(Kind.DATACENTER, call.m.datacenters.list()))
    return collection("data_centers", "data_center", [_node(call, d) for d in found])


def _node(call: Call, dc: model.DataCenter) -> Node:
    return dc_node(dc, call.api.extras.get(dc.id, "comment"))


def get_dc(call: Call) -> Reply:
    return entity("data_center", _node(call, call.m.datacenters.get(call.params["id"])))


def add_dc(call: Call) -> Reply:
    body = call.need_body("data_center")
    name = parse.text(body, "name")
    if not name:
        raise InvalidInput("a data center needs a <name>")
    if parse.boolean(body, "local"):
        raise call.not_supported("a local (single host) data center")
    extra = updates.extra_fields(updates.given(body, "comment"), "comment")
    # the data center's compatibility level (oVirt's <version>): stored and shown back
    level = requested_version(body, model.DEFAULT_COMPAT)  # both parts, else 400
    dc = call.m.datacenters.add(name, parse.text(body, "description") or "",
                                compat_version=level)
    updates.apply_extras(call, dc.id, extra)
    return entity("data_center", _node(call, dc), status=201)


def update_dc(call: Call) -> Reply:
    """PUT: name, description, comment and compatibility version."""
    dc = call.m.datacenters.get(call.params["id"])
    body = call.need_body("data_center")
    level = requested_version(body, dc.compat_version)  # both parts, else 400
    changes = updates.asked(body, _node(call, dc))
    fields = updates.take(changes, "name", "description", "version.major", "version.minor")
    extra = updates.extra_fields(changes, "comment")
    updates.refuse("data center", changes)
    moves = "version.major" in fields or "version.minor" in fields
    if fields:
        # checked and written in one step by the service: a free, valid name (400/409);
        # a known version (400), never below the data center's own nor newer than its
        # oldest cluster (409), as oVirt refuses them; nothing changes when refused
        dc = call.m.datacenters.update(dc.id, new_name=fields.get("name"),
                                       description=fields.get("description"),
                                       compat=level if moves else None)
    updates.apply_extras(call, dc.id, extra)
    return entity("data_center", _node(call, dc))


def remove_dc(call: Call) -> Reply:
    dc = call.m.datacenters.get(call.params["id"])
    call.m.datacenters.remove(dc.id)
    call.api.extras.forget(dc.id)
    return removed()


def dc_clusters(call: Call) -> Reply:
    dc = call.m.datacenters.get(call.params["id"])
    found = [c for c in call.m.clusters.list() if c.datacenter_id == dc.id]
    return collection("clusters", "cluster", [cluster_node(call, c) for c in found])


ROUTES: list[Route] = [
    ("GET", "/datacenters", list_dcs),
    ("POST", "/datacenters", add_dc),
    ("GET", "/datacenters/{id}", get_dc),
    ("PUT", "/datacenters/{id}", update_dc),
    ("DELETE", "/datacenters/{id}", remove_dc),
    ("GET", "/datacenters/{id}/clusters", dc_clusters),
]
