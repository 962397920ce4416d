"""``/templates``: the Blank template (all-zero id) and virtplane's templates.

Blank is virtual: it has no disks and stands for "no template" when a VM is
added from it. Every template has ``version`` with ``version_number`` (Ansible
reads it) and the VM-like nested elements Ansible compares (os, memory policy,
bios, sso, usb, io).
"""

from __future__ import annotations

from virtplane import model
from virtplane.errors import InvalidInput, InvalidState
from virtplane_api_ovirt import parse
from virtplane_api_ovirt.authz.model import Kind
from virtplane_api_ovirt.base import (
    BASE,
    BLANK_ID,
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

TEMPLATE_LINKS = ("cdroms", "diskattachments", "graphicsconsoles", "nics", "permissions",
                  "tags", "watchdogs")
MIB = 1 << 20


def template_node(tpl: model.Template | None) -> Node:
    """A template's tree; None is Blank."""
    spec = tpl.spec if tpl else model.VmSpec(name="Blank")
    tpl_id = tpl.id if tpl else BLANK_ID
    path = f"{BASE}/templates/{tpl_id}"
    memory = spec.memory_mib * MIB
    return {
        "href": path, "id": tpl_id, "name": tpl.name if tpl else "Blank",
        "description": "Blank template" if tpl is None else "", "comment": "",
        "link": links(path, *TEMPLATE_LINKS),
        "bios": {"boot_menu": {"enabled": False}, "type": "cluster_default"},
        "cpu": {"architecture": spec.arch or "x86_64",
                "topology": {"cores": 1, "sockets": spec.vcpus, "threads": 1}},
        "delete_protected": False,
        "display": {"type": spec.display.type if spec.display else "vnc"},
        "high_availability": {"enabled": False, "priority": 0},
        "io": {"threads": 0},
        "memory": memory,
        "memory_policy": {"ballooning": True, "guaranteed": memory,
                          "max": (spec.max_memory_mib or spec.memory_mib * 4) * MIB},
        "os": {"boot": {"devices": ["hd"]}, "type": spec.os or "other"},
        "sso": {"methods": [{"id": "guest_agent"}]},
        "stateless": False,
        "status": "ok",
        "type": "server",
        "usb": {"enabled": False},
        "version": {"version_name": "base version", "version_number": 1,
                    "base_template": ref("templates", tpl_id)},
    }


def _all(call: Call) -> list[model.Template | None]:
    return [None, *call.m.templates.list()]


def _vm_names(call: Call, tpl: model.Template | None) -> list[str]:
    return [tpl.spec.name] if tpl else []


def searcher(call: Call) -> Searcher[model.Template | None]:
    """Templates are not tied to a cluster or data center in virtplane: any works."""
    every_cluster = [c.name for c in call.m.clusters.list()]
    every_dc = [d.name for d in call.m.datacenters.list()]
    return Searcher("template", {
        "name": lambda t: [t.name if t else "Blank"],
        "id": lambda t: [t.id if t else BLANK_ID],
        "status": lambda t: ["ok"],
        "cluster": lambda t: every_cluster, "datacenter": lambda t: every_dc,
        "vm.name": lambda t: _vm_names(call, t),
    }, lambda t: t.name if t else "")


def list_templates(call: Call) -> Reply:
    everyone = call.visible is None or call.visible.everything
    found = call.search(searcher(call), [
        t for t in _all(call)
        if everyone or t is None or call.only_visible(Kind.TEMPLATE, [t])])
    return collection("templates", "template", [template_node(t) for t in found])


def _get(call: Call, key: str) -> model.Template | None:
    if key in (BLANK_ID, "Blank"):
        return None
    return call.m.templates.get(key)


def get_template(call: Call) -> Reply:
    return entity("template", template_node(_get(call, call.params["id"])))


def add_template(call: Call) -> Reply:
    body = call.need_body("template")
    name = parse.text(body, "name")
    vm = parse.ref(body, "vm")
    if not name or not vm:
        raise InvalidInput("a template needs a <name> and a <vm> (by id or name)")
    tpl = call.m.templates.create(vm, name)
    return entity("template", template_node(tpl), status=201)


def remove_template(call: Call) -> Reply:
    if _get(call, call.params["id"]) is None:
        raise InvalidState("the Blank template cannot be removed")
    call.m.templates.remove(call.params["id"])
    return removed()


def template_attachments(call: Call) -> Reply:
    from virtplane_api_ovirt.resources.vm_devices import DISK_IFACE

    tpl = _get(call, call.params["id"])
    disks = tpl.spec.disks if tpl else []
    nodes = [{"href": f"{BASE}/templates/{call.params['id']}/diskattachments/{d.image_id}",
              "id": d.image_id, "active": True, "bootable": d.bootable,
              "interface": DISK_IFACE.get(d.interface, "virtio"), "read_only": True,
              "disk": ref("disks", d.image_id),
              "template": ref("templates", call.params["id"])}
             for d in disks if d.image_id]
    return collection("disk_attachments", "disk_attachment", nodes)


def template_nics(call: Call) -> Reply:
    tpl = _get(call, call.params["id"])
    return collection("nics", "nic", [{"name": n.name, "interface": "virtio"}
                                      for n in (tpl.spec.nics if tpl else [])])


ROUTES: list[Route] = [
    ("GET", "/templates", list_templates),
    ("POST", "/templates", add_template),
    ("GET", "/templates/{id}", get_template),
    ("DELETE", "/templates/{id}", remove_template),
    ("GET", "/templates/{id}/diskattachments", template_attachments),
    ("GET", "/templates/{id}/nics", template_nics),
]
