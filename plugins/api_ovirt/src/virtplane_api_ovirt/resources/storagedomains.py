"""``/storagedomains`` and ``/datacenters/{dc}/storagedomains``.

oVirt's flow is two steps: create a domain (``unattached``), then attach it to
a data center (``POST /datacenters/{dc}/storagedomains``) where it becomes
``active``. virtplane records the data center on the domain: attaching an
unattached domain forgets it and attaches it again from its storage (its
images are imported), through the storage service. As in oVirt, an attached
domain shows no ``<status>`` in the top-level collection (its status lives
under the data center), which Ansible's ``ovirt_storage_domain`` relies on.
"""

from __future__ import annotations

from typing import Any

from virtplane import model
from virtplane.errors import InvalidInput, NotFound
from virtplane_api_ovirt import actions, enums, parse, updates
from virtplane_api_ovirt.authz.model import Kind
from virtplane_api_ovirt.base import (
    BASE,
    Call,
    Reply,
    Route,
    collection,
    entity,
    links,
    ref,
    removed,
)
from virtplane_api_ovirt.render import Node
from virtplane_api_ovirt.search import Searcher

SD_LINKS = ("diskprofiles", "disks", "disksnapshots", "files", "images", "permissions",
            "storageconnections", "templates", "vms")


def _storage(dom: model.StorageDomain) -> Node:
    conn = dom.connection
    kind = enums.STORAGE_TYPE.get(dom.type, dom.type)
    if dom.type == "glusterfs":
        return {"address": conn.get("server"), "path": conn.get("volume"), "type": kind,
                "vfs_type": "glusterfs"}
    spec = str(conn.get("spec") or "")
    if dom.type in ("nfs", "posixfs") and ":" in spec:
        address, _, path = spec.partition(":")
        return {"address": address, "path": path, "type": kind,
                "mount_options": conn.get("options"), "vfs_type": conn.get("vfs_type")}
    return {"path": conn.get("path") or spec or None, "type": kind,
            "vfs_type": conn.get("vfs_type")}


def sd_node(call: Call, dom: model.StorageDomain, *, in_dc: bool = False) -> Node:
    path = (f"{BASE}/datacenters/{dom.datacenter_id}/storagedomains/{dom.id}" if in_dc
            else f"{BASE}/storagedomains/{dom.id}")
    node: Node = {
        "href": path, "id": dom.id, "name": dom.name,
        "description": call.api.extras.get(dom.id, "description"),
        "comment": call.api.extras.get(dom.id, "comment"),
        "link": links(path, *SD_LINKS),
        "backup": False, "critical_space_action_blocker": 5,
        "discard_after_delete": False, "external_status": "ok",
        "master": False, "storage": _storage(dom), "storage_format": "v5",
        "supports_discard": False, "supports_discard_zeroes_data": False,
        "type": dom.domain_class.value, "warning_low_space_indicator": 10,
        "wipe_after_delete": False,
    }
    if in_dc or dom.datacenter_id is None:
        node["status"] = enums.DOMAIN_STATUS.get(dom.status, "unknown")
    if dom.datacenter_id:
        node["data_centers"] = [ref("datacenters", dom.datacenter_id)]
        node["data_center"] = ref("datacenters", dom.datacenter_id)
    return node


def searcher() -> Searcher[model.StorageDomain]:
    return Searcher("storage domain", {
        "name": lambda d: [d.name], "id": lambda d: [d.id],
        "type": lambda d: [d.domain_class.value],
        "status": lambda d: [enums.DOMAIN_STATUS.get(d.status, "unknown")],
    }, lambda d: d.name)


def list_sds(call: Call) -> Reply:
    found = call.search(searcher(),
                        call.only_visible(Kind.STORAGEDOMAIN, call.m.storage.list()))
    return collection("storage_domains", "storage_domain", [sd_node(call, d) for d in found])


def get_sd(call: Call) -> Reply:
    return entity("storage_domain", sd_node(call, call.m.storage.get(call.params["id"])))


def connection_of(storage: Node | None) -> tuple[str, dict[str, Any]]:
    """(virtplane storage type, connection) from an oVirt ``<storage>`` element."""
    kind = parse.text(storage, "type")
    address, path = parse.text(storage, "address"), parse.text(storage, "path")
    options = parse.text(storage, "mount_options")
    if kind == "localfs":
        if not path:
            raise InvalidInput("a localfs storage domain needs <storage><path>")
        if not path.startswith("/"):  # else relative to the server's working directory
            raise InvalidInput(f"<storage><path> of a localfs storage domain must be an "
                               f"absolute path (a folder on the host), not {path!r}")
        return "localfs", {"path": path}
    if kind in ("nfs", "posixfs"):
        if not path:
            raise InvalidInput(f"a {kind} storage domain needs <storage><path>")
        conn: dict[str, Any] = {"spec": f"{address}:{path}" if address else path}
        if options:
            conn["options"] = options
        vfs = parse.text(storage, "vfs_type")
        if kind == "posixfs" and vfs:
            conn["vfs_type"] = vfs
        return kind, conn
    if kind == "glusterfs":
        if not address or not path:
            raise InvalidInput("a glusterfs storage domain needs <storage><address> (a "
                               "server) and <path> (the volume)")
        return "glusterfs", {"server": address, "volume": path.strip("/")}
    raise InvalidInput(f"storage type {kind!r} is not supported; supported: localfs, nfs, "
                       "posixfs, glusterfs")


def add_sd(call: Call) -> Reply:
    body = call.need_body("storage_domain")
    name = parse.text(body, "name")
    if not name:
        raise InvalidInput("a storage domain needs a <name>")
    kind, conn = connection_of(parse.child(body, "storage"))
    extra = updates.extra_fields(updates.given(body, "description", "comment"))
    dom_class = parse.text(body, "type") or "data"
    if parse.boolean(body, "import"):
        dom = call.m.storage.attach(name, kind, conn)
    else:
        dom = call.m.storage.add(name, kind, None, conn, dom_class)
    updates.apply_extras(call, dom.id, extra)
    return entity("storage_domain", sd_node(call, dom), status=201)


def update_sd(call: Call) -> Reply:
    """PUT (top level or under a data center): description and comment; the name and
    the thresholds are not supported (501)."""
    dom = call.m.storage.get(call.params["id"])
    if "dc" in call.params:
        _in_dc(call)
    body = call.need_body("storage_domain")
    changes = updates.asked(body, sd_node(call, dom, in_dc="dc" in call.params))
    extra = updates.extra_fields(changes)
    for key in [k for k in changes if k.startswith("host.")]:
        del changes[key]  # the host that would do the work: an argument, not an attribute
    updates.refuse("storage domain", changes)
    updates.apply_extras(call, dom.id, extra)
    return entity("storage_domain", sd_node(call, dom, in_dc="dc" in call.params))


def remove_sd(call: Call) -> Reply:
    dom = call.m.storage.get(call.params["id"])
    if call.flag("destroy") or call.query.get("format") == "false":
        call.m.storage.detach(dom.id)  # forget it, keep its data (and its description)
    else:
        call.m.storage.remove(dom.id)
        call.api.extras.forget(dom.id)
    return removed()


# -------------------------------------------------------- in a data center


def _in_dc(call: Call) -> tuple[model.DataCenter, model.StorageDomain]:
    dc = call.m.datacenters.get(call.params["dc"])
    dom = call.m.storage.get(call.params["id"])
    if dom.datacenter_id != dc.id:
        raise NotFound(f"storage domain {dom.name!r} is not attached to data center "
                       f"{dc.name!r}")
    return dc, dom


def dc_sds(call: Call) -> Reply:
    dc = call.m.datacenters.get(call.params["dc"])
    found = [d for d in call.m.storage.list() if d.datacenter_id == dc.id]
    return collection("storage_domains", "storage_domain",
                      [sd_node(call, d, in_dc=True) for d in found])


def dc_sd(call: Call) -> Reply:
    _dc, dom = _in_dc(call)
    return entity("storage_domain", sd_node(call, dom, in_dc=True))


def attach_sd(call: Call) -> Reply:
    dc = call.m.datacenters.get(call.params["dc"])
    body = call.need_body("storage_domain")
    target = parse.text(body, "id") or parse.text(body, "name")
    if not target:
        raise InvalidInput("name the storage domain to attach: <storage_domain id=...> or "
                           "<name>")
    dom = call.m.storage.get(target)
    if dom.datacenter_id == dc.id:
        return entity("storage_domain", sd_node(call, dom, in_dc=True), status=201)
    if dom.datacenter_id is not None:
        raise InvalidInput(f"storage domain {dom.name!r} is attached to another data center; "
                           "detach it first")
    call.m.storage.detach(dom.id)
    dom = call.m.storage.attach(dom.name, dom.type, dom.connection, dc.id)
    return entity("storage_domain", sd_node(call, dom, in_dc=True), status=201)


def detach_sd(call: Call) -> Reply:
    _dc, dom = _in_dc(call)
    call.m.storage.detach(dom.id)
    call.m.storage.attach(dom.name, dom.type, dom.connection)
    return removed()


def _activate(call: Call) -> Reply:
    _dc, dom = _in_dc(call)
    return actions.run(call, "storage.activate", dom.id, lambda: call.m.storage.activate(dom.id))


def _deactivate(call: Call) -> Reply:
    _dc, dom = _in_dc(call)
    return actions.run(call, "storage.deactivate", dom.id,
                       lambda: call.m.storage.deactivate(dom.id))


def sd_disks(call: Call) -> Reply:
    from virtplane_api_ovirt.resources.disks import disk_node

    dom = call.m.storage.get(call.params["id"])
    images = call.m.volumes.images_of(dom)
    return collection("disks", "disk", [disk_node(call, i) for i in images])


ROUTES: list[Route] = [
    ("GET", "/storagedomains", list_sds),
    ("POST", "/storagedomains", add_sd),
    ("GET", "/storagedomains/{id}", get_sd),
    ("PUT", "/storagedomains/{id}", update_sd),
    ("DELETE", "/storagedomains/{id}", remove_sd),
    ("GET", "/storagedomains/{id}/disks", sd_disks),
    ("GET", "/datacenters/{dc}/storagedomains", dc_sds),
    ("POST", "/datacenters/{dc}/storagedomains", attach_sd),
    ("GET", "/datacenters/{dc}/storagedomains/{id}", dc_sd),
    ("PUT", "/datacenters/{dc}/storagedomains/{id}", update_sd),
    ("DELETE", "/datacenters/{dc}/storagedomains/{id}", detach_sd),
    ("POST", "/datacenters/{dc}/storagedomains/{id}/activate", _activate),
    ("POST", "/datacenters/{dc}/storagedomains/{id}/deactivate", _deactivate),
]
