"""``/templates``: the Blank template (all-zero id) and virtplane's templates.

Blank is virtual: it has no disks and stands for "no template" when a VM is
added from it. Every template has ``version`` with ``version_number`` (Ansible
reads it) and the VM-like nested elements Ansible compares (os, memory policy,
bios, sso, usb, io).
"""

from __future__ import annotations

from virtplane import model
from virtplane.errors import InvalidInput, InvalidState
from virtplane.names import check_name
from virtplane_api_ovirt import parse, updates
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
from virtplane_api_ovirt.resources.vms import shown_max_memory_mib
from virtplane_api_ovirt.search import Searcher

TEMPLATE_LINKS = ("cdroms", "diskattachments", "graphicsconsoles", "nics", "permissions",
                  "tags", "watchdogs")
MIB = 1 << 20


def template_cluster(call: Call, tpl: model.Template | None) -> str | None:
    """The id of the cluster a template was made in (None: Blank, or unknown)."""
    cluster_id = call.api.extras.get(tpl.id, "cluster") if tpl else ""
    if not cluster_id or call.lookup(model.Cluster, cluster_id) is None:
        return None
    return cluster_id


def template_node(call: Call, tpl: model.Template | None) -> Node:
    """A template's tree; None is Blank."""
    spec = tpl.spec if tpl else model.VmSpec(name="Blank")
    tpl_id = tpl.id if tpl else BLANK_ID
    path = f"{BASE}/templates/{tpl_id}"
    memory = spec.memory_mib * MIB
    extras = call.api.extras
    return {
        "href": path, "id": tpl_id, "name": tpl.name if tpl else "Blank",
        "description": extras.get(tpl_id, "description") if tpl else "Blank template",
        "comment": extras.get(tpl_id, "comment"),
        "link": links(path, *TEMPLATE_LINKS),
        "bios": {"boot_menu": {"enabled": False}, "type": "cluster_default"},
        "cpu": {"architecture": spec.arch or "x86_64",
                "topology": {"cores": 1, "sockets": spec.vcpus, "threads": 1}},
        "delete_protected": False,
        "display": {"type": spec.display.type if spec.display else "vnc"},
        "high_availability": {"enabled": spec.highly_available, "priority": spec.ha_priority},
        "io": {"threads": 0},
        "memory": memory,
        # as a VM's: four times the memory unless set, capped at what a VM may have in
        # the template's cluster (the absolute bound for Blank and unknown clusters)
        "memory_policy": {"ballooning": True, "guaranteed": memory,
                          "max": shown_max_memory_mib(call, spec,
                                                      template_cluster(call, tpl)) * MIB},
        "os": {"boot": {"devices": ["hd"]}, "type": spec.os or "other"},
        "sso": {"methods": [{"id": "guest_agent"}]},
        "stateless": False,
        "status": "ok",
        "type": "server",
        "usb": {"enabled": False},
        "version": {"version_name": "base version", "version_number": 1,
                    "base_template": ref("templates", tpl_id)},
        "cluster": ref("clusters", template_cluster(call, tpl)),
    }


def _all(call: Call) -> list[model.Template | None]:
    return [None, *call.m.templates.list()]


def made_from(call: Call, vm: model.Vm) -> str:
    """The id of the template ``vm`` was made from (Blank's when none)."""
    return call.api.extras.get(vm.id, "template") or BLANK_ID


def _vm_names(call: Call, vms: list[model.Vm], tpl: model.Template | None) -> list[str]:
    """The VMs made from ``tpl`` (oVirt's ``vm.name=`` search of templates)."""
    tpl_id = tpl.id if tpl else BLANK_ID
    return [vm.name for vm in vms if made_from(call, vm) == tpl_id]


def _cluster_names(call: Call, tpl: model.Template | None, every: list[str]) -> list[str]:
    """A template's cluster; Blank, and templates of no known cluster, are in all."""
    cluster_id = template_cluster(call, tpl)
    cl = call.lookup(model.Cluster, cluster_id) if cluster_id else None
    return [cl.name] if cl else every


def _dc_names(call: Call, tpl: model.Template | None, every: list[str]) -> list[str]:
    cluster_id = template_cluster(call, tpl)
    cl = call.lookup(model.Cluster, cluster_id) if cluster_id else None
    dc = call.lookup(model.DataCenter, cl.datacenter_id) if cl else None
    return [dc.name] if dc else every


def searcher(call: Call) -> Searcher[model.Template | None]:
    """A template made through the API is in the cluster (and data center) it was made
    in; Blank, and templates made otherwise, are in every one."""
    every_cluster = [c.name for c in call.m.clusters.list()]
    every_dc = [d.name for d in call.m.datacenters.list()]
    vms = call.m.vms.list()
    return Searcher("template", {
        "name": lambda t: [t.name if t else "Blank"],
        "id": lambda t: [t.id if t else BLANK_ID],
        "status": lambda t: ["ok"],
        "cluster": lambda t: _cluster_names(call, t, every_cluster),
        "datacenter": lambda t: _dc_names(call, t, every_dc),
        "vm.name": lambda t: _vm_names(call, vms, t),
    }, lambda t: t.name if t else "")


def list_templates(call: Call) -> Reply:
    everyone = call.visible is None or call.visible.everything
    found = call.search(searcher(call), [
        t for t in _all(call)
        if everyone or t is None or call.only_visible(Kind.TEMPLATE, [t])])
    return collection("templates", "template", [template_node(call, t) for t in found])


def _get(call: Call, key: str) -> model.Template | None:
    if key in (BLANK_ID, "Blank"):
        return None
    return call.m.templates.get(key)


def get_template(call: Call) -> Reply:
    return entity("template", template_node(call, _get(call, call.params["id"])))


def add_template(call: Call) -> Reply:
    body = call.need_body("template")
    name = parse.text(body, "name")
    vm_key = parse.ref(body, "vm")
    if not name or not vm_key:
        raise InvalidInput("a template needs a <name> and a <vm> (by id or name)")
    vm = call.m.vms.get(vm_key)
    cluster = parse.ref(body, "cluster")
    cluster_id = call.m.clusters.get(cluster).id if cluster else vm.cluster_id
    extra = updates.extra_fields(updates.given(body, "description", "comment"))
    extra["cluster"] = cluster_id
    tpl = call.m.templates.create(vm.id, name)
    updates.apply_extras(call, tpl.id, extra)
    return entity("template", template_node(call, tpl), status=201)


def update_template(call: Call) -> Reply:
    """PUT: name, description, comment and cluster; Blank cannot be changed."""
    tpl = _get(call, call.params["id"])
    if tpl is None:
        raise InvalidState("the Blank template cannot be changed")
    body = call.need_body("template")
    changes = updates.asked(body, template_node(call, tpl))
    name = updates.take(changes, "name").get("name")
    extra = updates.extra_fields(changes)
    cluster = parse.ref(body, "cluster")
    if cluster is not None:
        extra["cluster"] = call.m.clusters.get(cluster).id
    changes.pop("vm.name", None)  # the VM it was made from: clients send it back
    updates.refuse("template", changes)
    if name is not None:
        check_name("template", name)
        call.m.store.require_free(model.Template, name, "template")

        def apply(current: model.Template) -> model.Template:
            current.name = name
            return current

        tpl = call.m.store.modify(model.Template, tpl.id, apply)
    updates.apply_extras(call, tpl.id, extra)
    return entity("template", template_node(call, tpl))


def remove_template(call: Call) -> Reply:
    tpl = _get(call, call.params["id"])
    if tpl is None:
        raise InvalidState("the Blank template cannot be removed")
    call.m.templates.remove(tpl.id)
    call.api.extras.forget(tpl.id)
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
    ("PUT", "/templates/{id}", update_template),
    ("DELETE", "/templates/{id}", remove_template),
    ("GET", "/templates/{id}/diskattachments", template_attachments),
    ("GET", "/templates/{id}/nics", template_nics),
]
