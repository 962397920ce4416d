"""``/clusters``, ``/clusterlevels`` (each architecture's CPU types),
``/schedulingpolicies`` and ``/macpools`` (the one pool new NICs' MACs come from).

Ansible's ``ovirt_cluster`` compares its parameters with many nested elements
without checking them for None (ksm, fencing policy, migration, error
handling, memory policy, RNG sources) and follows ``scheduling_policy``; they
are always present, with oVirt's defaults where virtplane has no setting.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from virtplane import model
from virtplane.errors import InvalidInput, NotFound
from virtplane_api_ovirt import cpu_types, parse, updates
from virtplane_api_ovirt.authz.model import Kind
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
    removed,
)
from virtplane_api_ovirt.render import Node
from virtplane_api_ovirt.resources.versions import LEVELS, version, version_text
from virtplane_api_ovirt.search import Searcher

if TYPE_CHECKING:
    from virtplane.state import StateStore
    from virtplane_api_ovirt.extras import Extras

log = logging.getLogger("virtplane.api.ovirt")

CLUSTER_LINKS = ("affinitygroups", "cpuprofiles", "enabledfeatures", "externalnetworkproviders",
                 "glustervolumes", "networkfilters", "networks", "permissions")
POLICY_ID = derived_id("schedulingpolicy", "none")
MAC_POOL_ID = derived_id("macpool", "default")


def requested_version(body: Node, default: str) -> str:
    """A data center's or cluster's ``<version>`` as MAJOR.MINOR (``default`` when the
    body has none). As in oVirt a version is both parts: one with only ``<major>`` or
    only ``<minor>`` is refused (400) naming the part missing, before anything changes,
    instead of being ignored or read as MAJOR.0."""
    node = parse.child(body, "version")
    major, minor = parse.integer(node, "major"), parse.integer(node, "minor")
    if (major is None) != (minor is None):
        missing = "major" if major is None else "minor"
        raise InvalidInput("<version> needs both <major> and <minor> (a compatibility "
                           f"version is MAJOR.MINOR, e.g. 4.8); <{missing}> is missing")
    return version_text(node, default)


def description_of(call: Call, cl: model.Cluster) -> str:
    """The cluster's description: the model's, else the annotation this API kept it in
    before the model had one. :func:`migrate_descriptions` moves those into the model
    when the API starts, so the fallback only shows one it could not move."""
    return cl.description or call.api.extras.get(cl.id, "description")


def migrate_descriptions(store: StateStore, extras: Extras) -> int:
    """Move the cluster descriptions an earlier version kept as annotations into the
    model (``model.Cluster.description``), once, when the API starts; how many.

    A cluster whose model description is set keeps it (the annotation is older); the
    annotation goes either way. Otherwise a description cleared later through the
    CLI or ``Clusters.update`` (which know nothing of this API) would bring the old
    annotation back. A cluster changed meanwhile is left for the next start."""
    from virtplane.errors import VirtplaneError

    moved = 0
    for cl in store.list(model.Cluster):
        old = extras.get(cl.id, "description")
        if not old:
            continue
        try:
            if not cl.description:
                cl.description = old
                store.update(cl)
                moved += 1
            extras.set(cl.id, "description", "")
        except VirtplaneError as exc:
            log.warning("cluster %s: could not move its description into the model: %s",
                        cl.name, exc)
    return moved


def cluster_node(call: Call, cl: model.Cluster) -> Node:
    path = f"{BASE}/clusters/{cl.id}"
    extras = call.api.extras
    return {
        "href": path, "id": cl.id, "name": cl.name,
        "description": description_of(call, cl),
        "comment": extras.get(cl.id, "comment"),
        "link": links(path, *CLUSTER_LINKS),
        "ballooning_enabled": True,
        "bios_type": "cluster_default",
        "cpu": {"architecture": cl.architecture,
                "type": cpu_types.ovirt_name(cl.cpu_model) if cl.cpu_model else ""},
        "error_handling": {"on_error": "migrate"},
        "fencing_policy": {
            "enabled": cl.fencing_enabled,
            "skip_if_connectivity_broken": {"enabled": False, "threshold": 50},
            "skip_if_gluster_bricks_up": False, "skip_if_gluster_quorum_not_met": False,
            "skip_if_sd_active": {"enabled": False},
        },
        "firewall_type": "firewalld",
        "gluster_service": False,
        "ha_reservation": False,
        "ksm": {"enabled": True, "merge_across_nodes": True},
        "log_max_memory_used_threshold": 95,
        "log_max_memory_used_threshold_type": "percentage",
        "maintenance_reason_required": False,
        "memory_policy": {"over_commit": {"percent": 100},
                          "transparent_hugepages": {"enabled": True}},
        "migration": {"auto_converge": "inherit", "bandwidth": {"assignment_method": "auto"},
                      "compressed": "inherit", "encrypted": "inherit"},
        "optional_reason": False,
        "required_rng_sources": ["urandom"],
        "switch_type": "legacy",
        "threads_as_cores": False,
        "trusted_service": False,
        "tunnel_migration": False,
        "version": version(cl.compat_version),
        "virt_service": True,
        "data_center": ref("datacenters", cl.datacenter_id),
        "mac_pool": ref("macpools", MAC_POOL_ID),
        "scheduling_policy": ref("schedulingpolicies", POLICY_ID),
    }


def _dc_name(call: Call, cl: model.Cluster) -> list[str]:
    dc = call.lookup(model.DataCenter, cl.datacenter_id)
    return [dc.name] if dc else []


def searcher(call: Call) -> Searcher[model.Cluster]:
    return Searcher("cluster", {
        "name": lambda c: [c.name], "id": lambda c: [c.id],
        "datacenter": lambda c: _dc_name(call, c), "datacenter.name": lambda c: _dc_name(call, c),
        "architecture": lambda c: [c.architecture],
    }, lambda c: c.name)


def list_clusters(call: Call) -> Reply:
    found = call.search(searcher(call), call.only_visible(Kind.CLUSTER, call.m.clusters.list()))
    return collection("clusters", "cluster", [cluster_node(call, c) for c in found])


def get_cluster(call: Call) -> Reply:
    return entity("cluster", cluster_node(call, call.m.clusters.get(call.params["id"])))


def add_cluster(call: Call) -> Reply:
    body = call.need_body("cluster")
    name = parse.text(body, "name")
    dc = parse.ref(body, "data_center")
    if not name or not dc:
        raise InvalidInput("a cluster needs a <name> and a <data_center> (by id or name)")
    extra = updates.extra_fields(updates.given(body, "comment"), "comment")
    arch = parse.text(body, "cpu", "architecture") or "x86_64"
    known = call.m.loaded("architecture")
    if arch not in known:  # else the driver lookup's error, a 500
        raise InvalidInput(f"<cpu/architecture> must be one of {', '.join(sorted(known))} "
                           f"(the architecture drivers installed), not {arch!r}")
    cpu = parse.text(body, "cpu", "type")
    if cpu:
        cpu = cpu_types.to_model(cpu, arch, call.m.context.drivers.architecture(arch)
                                 .cpu_models())
    level = requested_version(body, model.DEFAULT_COMPAT)
    datacenter = call.m.datacenters.get(dc)
    # the service checks the version: one the architecture knows (400), never older
    # than the data center's (409, as oVirt refuses it)
    cl = call.m.clusters.add(name, datacenter.id, architecture=arch, cpu_model=cpu or None,
                             compat_version=level,
                             description=parse.text(body, "description") or "")
    updates.apply_extras(call, cl.id, extra)
    return entity("cluster", cluster_node(call, cl), status=201)


def update_cluster(call: Call) -> Reply:
    """PUT: name, description, comment, compatibility version, CPU type (while none of
    its VMs runs) and whether fencing is enabled. The description is the model's
    (``Clusters.update``); the comment is kept by this API (``extras``)."""
    cl = call.m.clusters.get(call.params["id"])
    body = call.need_body("cluster")
    level = requested_version(body, cl.compat_version)  # both parts, else 400
    changes = updates.asked(body, cluster_node(call, cl))
    fields = updates.take(changes, "name", "description", "version.major",
                          "version.minor", "cpu.type", "fencing_policy.enabled")
    extra = updates.extra_fields(changes, "comment")
    if not updates.same_ref(body, "data_center", cl.datacenter_id,
                            lambda key: call.m.datacenters.get(key).id):
        changes["data_center"] = parse.ref(body, "data_center") or ""
    updates.refuse("cluster", changes)
    cpu = fields.get("cpu.type")
    if cpu:  # oVirt's name or the libvirt model (400 when the architecture has none)
        driver = call.m.context.drivers.architecture(cl.architecture)
        cpu = cpu_types.to_model(cpu, cl.architecture, driver.cpu_models())
    fencing = (parse.boolean(body, "fencing_policy", "enabled")
               if "fencing_policy.enabled" in fields else None)
    moves = "version.major" in fields or "version.minor" in fields
    if fields:
        # checked and written in one step by the service, only what the body changes: a
        # free, valid name (400/409); a version the architecture knows (400), never older
        # than the data center's (409, as oVirt refuses it); a CPU type changed only
        # while none of its VMs runs (409); nothing changes when refused
        described = ({"description": fields["description"]} if "description" in fields
                     else {})
        cl = call.m.clusters.update(cl.id, new_name=fields.get("name"),
                                    compat=level if moves else None, cpu_model=cpu,
                                    fencing_enabled=fencing, **described)
    if "description" in fields and call.api.extras.get(cl.id, "description"):
        extra["description"] = ""  # the model holds it now: the old annotation goes
    updates.apply_extras(call, cl.id, extra)
    return entity("cluster", cluster_node(call, cl))


def remove_cluster(call: Call) -> Reply:
    cl = call.m.clusters.get(call.params["id"])
    call.m.clusters.remove(cl.id)
    call.api.extras.forget(cl.id)
    return removed()


# ------------------------------------------------------------ levels, policies


def _level_node(call: Call, level: str) -> Node:
    found: list[Node] = []
    for arch in call.m.loaded("architecture"):
        try:
            models = call.m.context.drivers.architecture(arch).cpu_models()
        except Exception as exc:  # noqa: BLE001 - one broken driver must not hide the others
            call.m.context.log.warning("architecture %s lists no CPU models: %s", arch, exc)
            continue
        found += [{"architecture": arch, "level": 0, "name": cpu_types.ovirt_name(m)}
                  for m in models]
    path = f"{BASE}/clusterlevels/{level}"
    return {"href": path, "id": level, "cpu_types": found,
            "link": links(path, "clusterfeatures")}


def list_levels(call: Call) -> Reply:
    return collection("cluster_levels", "cluster_level", [_level_node(call, v) for v in LEVELS])


def get_level(call: Call) -> Reply:
    level = call.params["id"]
    if level not in LEVELS:
        raise NotFound(f"no cluster level {level!r}; known: {', '.join(LEVELS)}")
    return entity("cluster_level", _level_node(call, level))


def _policy() -> Node:
    return {"href": f"{BASE}/schedulingpolicies/{POLICY_ID}", "id": POLICY_ID, "name": "none",
            "description": "virtplane's scheduler (first Up host with room)",
            "default_policy": True, "locked": True,
            "link": links(f"{BASE}/schedulingpolicies/{POLICY_ID}", "balances", "filters",
                          "weights")}


def list_policies(call: Call) -> Reply:
    return collection("scheduling_policies", "scheduling_policy", [_policy()])


def get_policy(call: Call) -> Reply:
    if call.params["id"] != POLICY_ID:
        raise NotFound(f"no scheduling policy {call.params['id']!r}")
    return entity("scheduling_policy", _policy())


def _mac_pool() -> Node:
    path = f"{BASE}/macpools/{MAC_POOL_ID}"
    return {"href": path, "id": MAC_POOL_ID, "name": "Default",
            "description": "Default MAC pool", "allow_duplicates": False,
            "default_pool": True, "link": links(path, "permissions"),
            "ranges": [{"from": "56:6f:00:00:00:00", "to": "56:6f:ff:ff:ff:ff"}]}


def list_mac_pools(call: Call) -> Reply:
    return collection("mac_pools", "mac_pool", [_mac_pool()])


def get_mac_pool(call: Call) -> Reply:
    if call.params["id"] != MAC_POOL_ID:
        raise NotFound(f"no MAC pool {call.params['id']!r}")
    return entity("mac_pool", _mac_pool())


ROUTES: list[Route] = [
    ("GET", "/clusters", list_clusters),
    ("POST", "/clusters", add_cluster),
    ("GET", "/clusters/{id}", get_cluster),
    ("PUT", "/clusters/{id}", update_cluster),
    ("DELETE", "/clusters/{id}", remove_cluster),
    ("GET", "/clusterlevels", list_levels),
    ("GET", "/clusterlevels/{id}", get_level),
    ("GET", "/schedulingpolicies", list_policies),
    ("GET", "/schedulingpolicies/{id}", get_policy),
    ("GET", "/macpools", list_mac_pools),
    ("GET", "/macpools/{id}", get_mac_pool),
]
