"""``/disks``: every disk image (floating ones and VMs' disks); add and remove floating ones."""

from __future__ import annotations

from virtplane import model
from virtplane.errors import InvalidInput
from virtplane_api_ovirt import enums, parse, updates
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


def owners(call: Call) -> dict[str, tuple[model.Vm, model.DiskSpec]]:
    """image id -> (VM, its disk spec), for the disks VMs use."""
    return {d.image_id: (vm, d) for vm in call.m.vms.list() for d in vm.spec.disks
            if d.image_id}


def disk_node(call: Call, image: model.Image,
              owner: tuple[model.Vm, model.DiskSpec] | None = None) -> Node:
    path = f"{BASE}/disks/{image.id}"
    leaf = image.volumes[-1] if image.volumes else None
    name = image.alias or (owner[1].name if owner else image.id)
    if not image.volumes or not all(v.legal for v in image.volumes):
        status = "illegal"
    else:
        status = "ok"
    return {
        "href": path, "id": image.id, "name": name, "alias": name,
        "description": call.api.extras.get(image.id, "description"),
        "comment": call.api.extras.get(image.id, "comment"),
        "link": links(path, "disksnapshots", "permissions", "statistics"),
        "actual_size": 0,
        "content_type": "data",
        "format": enums.DISK_FORMAT.get(leaf.format, "cow") if leaf else "cow",
        "image_id": leaf.id if leaf else None,
        "propagate_errors": False,
        "provisioned_size": leaf.size_bytes if leaf else 0,
        "shareable": False,
        "sparse": (leaf.allocation == model.Allocation.THIN) if leaf else True,
        "status": status,
        "storage_type": "image",
        "total_size": 0,
        "wipe_after_delete": False,
        "storage_domains": [ref("storagedomains", image.domain_id)],
    }


def _dom_name(call: Call, image: model.Image) -> list[str]:
    dom = call.lookup(model.StorageDomain, image.domain_id)
    return [dom.name] if dom else []


def searcher(call: Call, used: dict[str, tuple[model.Vm, model.DiskSpec]]) -> Searcher[
        model.Image]:
    def name(i: model.Image) -> list[str]:
        return [i.alias or (used[i.id][1].name if i.id in used else i.id)]

    return Searcher("disk", {
        "name": name, "alias": name, "id": lambda i: [i.id],
        "storage": lambda i: _dom_name(call, i), "storage.name": lambda i: _dom_name(call, i),
        "vm_names": lambda i: [used[i.id][0].name] if i.id in used else [],
        "disk_type": lambda i: ["image"], "status": lambda i: ["ok"],
    }, lambda i: i.alias or i.id)


def list_disks(call: Call) -> Reply:
    used = owners(call)
    found = call.search(searcher(call, used),
                        call.only_visible(Kind.DISK, call.m.store.list(model.Image)))
    return collection("disks", "disk", [disk_node(call, i, used.get(i.id)) for i in found])


def get_disk(call: Call) -> Reply:
    image = call.m.disks.get(call.params["id"])
    return entity("disk", disk_node(call, image, owners(call).get(image.id)))


def new_disk_args(body: Node) -> tuple[str, str, int, str, str]:
    """(name, domain, size, format, allocation) of a new disk described by ``<disk>``."""
    name = parse.text(body, "name") or parse.text(body, "alias")
    size = parse.integer(body, "provisioned_size")
    domains = parse.items(body, "storage_domains")
    domain = None
    if domains and isinstance(domains[0], dict):
        domain = parse.text(domains[0], "id") or parse.text(domains[0], "name")
    if not name or not size or not domain:
        raise InvalidInput("a new disk needs <name>, <provisioned_size> and "
                           "<storage_domains><storage_domain> (by id or name)")
    fmt = parse.text(body, "format") or "cow"
    if fmt not in enums.FORMAT_OF:
        raise InvalidInput(f"disk format {fmt!r} is not allowed; allowed: cow, raw")
    sparse = parse.boolean(body, "sparse")
    allocation = "preallocated" if sparse is False else "thin"
    return name, domain, size, enums.FORMAT_OF[fmt].value, allocation


def add_disk(call: Call) -> Reply:
    body = call.need_body("disk")
    name, domain, size, fmt, allocation = new_disk_args(body)
    extra = updates.extra_fields(updates.given(body, "description", "comment"))
    image = call.m.disks.create(name, domain, size, fmt, allocation)
    updates.apply_extras(call, image.id, extra)
    return entity("disk", disk_node(call, image), status=201)


def update_disk(call: Call) -> Reply:
    """PUT: a larger ``provisioned_size`` (the disk is extended; not while a running VM
    uses it), description and comment; renaming, shrinking, moving are not supported."""
    image = call.m.disks.get(call.params["id"])
    body = call.need_body("disk")
    changes = updates.asked(body, disk_node(call, image, owners(call).get(image.id)))
    extra = updates.extra_fields(changes)
    size = updates.take(changes, "provisioned_size")
    updates.refuse("disk", changes)
    wanted = parse.integer(body, "provisioned_size")
    if size and wanted is not None:
        call.m.disks.extend(image.id, wanted)
        image = call.m.disks.get(image.id)
    updates.apply_extras(call, image.id, extra)
    return entity("disk", disk_node(call, image, owners(call).get(image.id)))


def remove_disk(call: Call) -> Reply:
    image = call.m.disks.get(call.params["id"])
    call.m.disks.remove(image.id)
    call.api.extras.forget(image.id)
    return removed()


ROUTES: list[Route] = [
    ("GET", "/disks", list_disks),
    ("POST", "/disks", add_disk),
    ("GET", "/disks/{id}", get_disk),
    ("PUT", "/disks/{id}", update_disk),
    ("DELETE", "/disks/{id}", remove_disk),
]
