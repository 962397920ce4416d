"""A VM's sub-collections: disk attachments, NICs, snapshots, CD-ROMs, NUMA nodes,
and the ones virtplane has nothing in yet (listed empty, so links resolve).

A disk attachment's id is its disk's id (Ansible's ``ovirt_vm``/``ovirt_disk``
look attachments up by disk id). A NIC's id is derived from the VM and the NIC
name. Devices of a running VM are hot(un)plugged through the devices service;
those of a Down VM are changed through :mod:`virtplane_api_ovirt._edits`.
"""

from __future__ import annotations

import datetime
import secrets

import attrs

from virtplane import model
from virtplane.errors import InvalidInput, InvalidState, NotFound
from virtplane_api_ovirt import _edits, actions, macs, parse, updates
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
from virtplane_api_ovirt.resources import networks
from virtplane_api_ovirt.resources.disks import disk_node, new_disk_args

#: virtplane disk interface <-> oVirt DiskInterface
DISK_IFACE = {"virtio": "virtio", "scsi": "virtio_scsi", "virtio-scsi": "virtio_scsi",
              "ide": "ide", "sata": "sata", "spapr-vscsi": "spapr_vscsi"}
DISK_IFACE_IN = {"virtio": "virtio", "virtio_scsi": "scsi", "ide": "ide", "sata": "sata",
                 "spapr_vscsi": "scsi"}
#: virtplane NIC model <-> oVirt NicInterface
NIC_MODEL = {"virtio": "virtio", "e1000": "e1000", "e1000e": "e1000e", "rtl8139": "rtl8139",
             "spapr-vlan": "spapr_vlan"}
NIC_MODEL_IN = {v: k for k, v in NIC_MODEL.items()}


def _running(vm: model.Vm) -> bool:
    return vm.status != model.VmStatus.DOWN


# ------------------------------------------------------------ disk attachments


def attachment_id(vm: model.Vm, disk: model.DiskSpec) -> str:
    return disk.image_id or derived_id("disk", vm.id, disk.name)


def attachment_node(call: Call, vm: model.Vm, disk: model.DiskSpec) -> Node:
    att_id = attachment_id(vm, disk)
    node: Node = {
        "href": f"{BASE}/vms/{vm.id}/diskattachments/{att_id}", "id": att_id,
        "active": True, "bootable": disk.bootable,
        "interface": DISK_IFACE.get(disk.interface, "virtio"),
        "pass_discard": False, "read_only": disk.readonly, "uses_scsi_reservation": False,
        "disk": ref("disks", att_id),
        "vm": ref("vms", vm.id),
    }
    return node


def _attachment(call: Call) -> tuple[model.Vm, model.DiskSpec]:
    vm = call.m.vms.get(call.params["id"])
    for disk in vm.spec.disks:
        if attachment_id(vm, disk) == call.params["att"]:
            return vm, disk
    raise NotFound(f"VM {vm.name!r} has no disk attachment {call.params['att']}")


def list_attachments(call: Call) -> Reply:
    vm = call.m.vms.get(call.params["id"])
    return collection("disk_attachments", "disk_attachment",
                      [attachment_node(call, vm, d) for d in vm.spec.disks])


def get_attachment(call: Call) -> Reply:
    vm, disk = _attachment(call)
    return entity("disk_attachment", attachment_node(call, vm, disk))


def add_attachment(call: Call) -> Reply:
    vm = call.m.vms.get(call.params["id"])
    body = call.need_body("disk_attachment")
    disk_body = parse.child(body, "disk")
    if disk_body is None:
        raise InvalidInput("a disk attachment needs a <disk> (an existing one by id, or a "
                           "new one with name, provisioned_size and storage_domains)")
    iface = DISK_IFACE_IN.get(parse.text(body, "interface") or "virtio")
    if iface is None:
        raise InvalidInput(f"disk interface {parse.text(body, 'interface')!r} is not "
                           f"supported; allowed: {', '.join(DISK_IFACE_IN)}")
    bootable = bool(parse.boolean(body, "bootable"))
    existing = parse.text(disk_body, "id")
    if existing:
        image = call.m.disks.get(existing)
        spec = model.DiskSpec(name=image.alias or image.id, interface=iface,
                              domain_id=image.domain_id, image_id=image.id, bootable=bootable,
                              size_bytes=image.volumes[-1].size_bytes if image.volumes else 0)
    else:
        name, domain, size, fmt, allocation = new_disk_args(disk_body)
        dom = call.m.storage.get(domain)
        spec = model.DiskSpec(name=name, size_bytes=size, interface=iface,
                              format=model.VolumeFormat(fmt),
                              allocation=model.Allocation(allocation), domain_id=dom.id,
                              bootable=bootable)
    if _running(vm):
        vm = call.m.devices.hotplug_disk(vm.id, spec)
    else:
        vm = _edits.add_disk(call, vm.id, spec)
    added = next(d for d in vm.spec.disks if d.name == spec.name)
    return entity("disk_attachment", attachment_node(call, vm, added), status=201)


def update_attachment(call: Call) -> Reply:
    """PUT: interface and bootable of a Down VM's disk (409 while it runs), and the
    disk's own changes (``<disk>``: its size, description) as ``PUT /disks/{id}``
    takes them; deactivating or making it read-only is not supported (501)."""
    vm, disk = _attachment(call)
    body = call.need_body("disk_attachment")
    changes = updates.asked(body, attachment_node(call, vm, disk))
    fields = updates.take(changes, "interface", "bootable")
    disk_body = parse.child(body, "disk")
    for key in [k for k in changes if k.startswith("disk.")]:
        del changes[key]  # the disk's own, below
    updates.refuse("disk attachment", changes)
    iface = DISK_IFACE_IN.get(fields.get("interface") or DISK_IFACE.get(disk.interface, "virtio"))
    if iface is None:
        raise InvalidInput(f"disk interface {fields['interface']!r} is not supported; "
                           f"allowed: {', '.join(DISK_IFACE_IN)}")
    bootable = parse.boolean(body, "bootable") if "bootable" in fields else disk.bootable
    if disk_body is not None and disk.image_id:
        from virtplane_api_ovirt.resources.disks import update_disk

        update_disk(Call(call.api, {"id": disk.image_id}, call.query, disk_body, "disk",
                         call.user, call.visible, call.tree))
    if fields:
        new = attrs.evolve(disk, interface=iface, bootable=bool(bootable))

        def change(spec: model.VmSpec) -> None:
            spec.disks[[d.name for d in spec.disks].index(disk.name)] = new

        vm = _edits.edit_down_vm(call, vm.id, change, "changing a disk's interface")
        disk = new
    return entity("disk_attachment", attachment_node(call, vm, disk))


def remove_attachment(call: Call) -> Reply:
    vm, disk = _attachment(call)
    if _running(vm):
        call.m.devices.hotunplug_disk(vm.id, disk.name)
    else:
        _edits.edit_down_vm(call, vm.id, lambda s: s.disks.remove(disk), "detaching a disk")
    if call.flag("detach_only") is False and disk.image_id:
        call.m.disks.remove(disk.image_id)
    return removed()


# ------------------------------------------------------------------------ NICs


def nic_id(vm: model.Vm, nic: model.NicSpec) -> str:
    return derived_id("nic", vm.id, nic.name)


def nic_node(call: Call, vm: model.Vm, nic: model.NicSpec) -> Node:
    path = f"{BASE}/vms/{vm.id}/nics/{nic_id(vm, nic)}"
    net = networks.network_of(call, vm, nic)
    return {
        "href": path, "id": nic_id(vm, nic), "name": nic.name, "description": "",
        "link": links(path, "networkfilterparameters", "reporteddevices", "statistics"),
        "interface": NIC_MODEL.get(nic.model, "virtio"), "linked": True,
        "mac": {"address": nic.mac},
        "plugged": True,
        "vm": ref("vms", vm.id),
        "vnic_profile": ref("vnicprofiles", net.profile_id),
    }


def _nic(call: Call) -> tuple[model.Vm, model.NicSpec]:
    vm = call.m.vms.get(call.params["id"])
    for nic in vm.spec.nics:
        if call.params["nic"] in (nic_id(vm, nic), nic.name):
            return vm, nic
    raise NotFound(f"VM {vm.name!r} has no NIC {call.params['nic']}")


def list_nics(call: Call) -> Reply:
    vm = call.m.vms.get(call.params["id"])
    return collection("nics", "nic", [nic_node(call, vm, n) for n in vm.spec.nics])


def get_nic(call: Call) -> Reply:
    vm, nic = _nic(call)
    return entity("nic", nic_node(call, vm, nic))


def add_nic(call: Call) -> Reply:
    vm = call.m.vms.get(call.params["id"])
    body = call.need_body("nic")
    name = parse.text(body, "name")
    if not name:
        raise InvalidInput("a NIC needs a <name>")
    iface = parse.text(body, "interface") or "virtio"
    if iface not in NIC_MODEL_IN:
        raise InvalidInput(f"NIC interface {iface!r} is not supported; allowed: "
                           + ", ".join(NIC_MODEL_IN))
    profile = parse.ref(body, "vnic_profile")
    network = networks.profile_by_id(call, profile).hypervisor_name if profile else "default"
    mac = parse.text(body, "mac", "address")
    nic = model.NicSpec(name=name, model=NIC_MODEL_IN[iface], network=network,
                        mac=macs.checked(mac) if mac else macs.new_mac(call))
    if any(n.name == name for n in vm.spec.nics):
        raise InvalidInput(f"VM {vm.name!r} already has a NIC named {name!r}")
    if _running(vm):
        vm = call.m.devices.hotplug_nic(vm.id, nic)
    else:
        vm = _edits.edit_down_vm(call, vm.id, lambda s: s.nics.append(nic), "adding a NIC")
    added = next(n for n in vm.spec.nics if n.name == name)
    return entity("nic", nic_node(call, vm, added), status=201)


def update_nic(call: Call) -> Reply:
    """PUT: name, interface, MAC and vNIC profile of a Down VM's NIC (409 while it
    runs); unplugging or unlinking it is not supported (501)."""
    vm, nic = _nic(call)
    body = call.need_body("nic")
    changes = updates.asked(body, nic_node(call, vm, nic))
    fields = updates.take(changes, "name", "interface", "mac.address")
    profile = parse.ref(body, "vnic_profile")
    network = networks.profile_by_id(call, profile).hypervisor_name if profile else nic.network
    updates.refuse("NIC", changes)
    name = fields.get("name", nic.name)
    if name != nic.name and any(n.name == name for n in vm.spec.nics):
        raise InvalidInput(f"VM {vm.name!r} already has a NIC named {name!r}")
    iface = fields.get("interface")
    if iface is not None and iface not in NIC_MODEL_IN:
        raise InvalidInput(f"NIC interface {iface!r} is not supported; allowed: "
                           + ", ".join(NIC_MODEL_IN))
    mac = macs.checked(fields["mac.address"]) if "mac.address" in fields else nic.mac
    new = attrs.evolve(nic, name=name, network=network, mac=mac,
                       model=NIC_MODEL_IN[iface] if iface else nic.model)
    if new == nic:
        return entity("nic", nic_node(call, vm, nic))

    def change(spec: model.VmSpec) -> None:
        spec.nics[[n.name for n in spec.nics].index(nic.name)] = new

    vm = _edits.edit_down_vm(call, vm.id, change, "changing a NIC")
    return entity("nic", nic_node(call, vm, new))


def remove_nic(call: Call) -> Reply:
    vm, nic = _nic(call)
    if _running(vm):
        call.m.devices.hotunplug_nic(vm.id, nic.name)
    else:
        _edits.edit_down_vm(call, vm.id, lambda s: s.nics.remove(nic), "removing a NIC")
    return removed()


def nic_filter_parameters(call: Call) -> Reply:
    _nic(call)
    return collection("network_filter_parameters", "network_filter_parameter", [])


# ------------------------------------------------------------------- snapshots


def active_id(vm: model.Vm) -> str:
    return derived_id("active-snapshot", vm.id)


def _date(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


def snapshot_node(vm: model.Vm, snap: model.Snapshot | None) -> Node:
    snap_id = snap.id if snap else active_id(vm)
    path = f"{BASE}/vms/{vm.id}/snapshots/{snap_id}"
    return {
        "href": path, "id": snap_id,
        "description": (snap.description or snap.name) if snap else "Active VM",
        "link": links(path, "cdroms", "disks", "nics"),
        "date": _date(snap.created) if snap else None,
        "persist_memorystate": snap.with_memory if snap else False,
        "snapshot_status": "ok",
        "snapshot_type": "regular" if snap else "active",
        "vm": ref("vms", vm.id),
    }


def _snapshot(call: Call) -> tuple[model.Vm, model.Snapshot | None]:
    vm = call.m.vms.get(call.params["id"])
    if call.params["snap"] == active_id(vm):
        return vm, None
    for snap in call.m.snapshots.list(vm.id):
        if call.params["snap"] in (snap.id, snap.name):
            return vm, snap
    raise NotFound(f"VM {vm.name!r} has no snapshot {call.params['snap']}")


def list_snapshots(call: Call) -> Reply:
    vm = call.m.vms.get(call.params["id"])
    snaps = sorted(call.m.snapshots.list(vm.id), key=lambda s: s.created)
    return collection("snapshots", "snapshot",
                      [snapshot_node(vm, None), *(snapshot_node(vm, s) for s in snaps)])


def get_snapshot(call: Call) -> Reply:
    vm, snap = _snapshot(call)
    return entity("snapshot", snapshot_node(vm, snap))


def add_snapshot(call: Call) -> Reply:
    vm = call.m.vms.get(call.params["id"])
    body = call.need_body("snapshot")
    description = parse.text(body, "description") or ""
    name = "snap-" + secrets.token_hex(6)
    snap = call.m.snapshots.take(vm.id, name, description,
                                 with_memory=bool(parse.boolean(body, "persist_memorystate")))
    return entity("snapshot", snapshot_node(vm, snap), status=201)


def remove_snapshot(call: Call) -> Reply:
    vm, snap = _snapshot(call)
    if snap is None:
        raise InvalidState("the Active VM snapshot is the VM itself; it cannot be removed")
    call.m.snapshots.delete(vm.id, snap.name)
    return removed()


def restore_snapshot(call: Call) -> Reply:
    vm, snap = _snapshot(call)
    if snap is None:
        raise InvalidState("the Active VM snapshot is the VM's current state; nothing to "
                           "restore")
    name = snap.name
    return actions.run(call, "snapshot.restore", vm.id,
                       lambda: call.m.snapshots.revert(vm.id, name), lock=("vm", vm.name))


def snapshot_disks(call: Call) -> Reply:
    vm, snap = _snapshot(call)
    disks = [d for d in (snap.spec if snap and snap.spec else vm.spec).disks if d.image_id]
    nodes = []
    for disk in disks:
        try:
            image = call.m.disks.get(disk.image_id or "")
        except NotFound:
            continue
        nodes.append(disk_node(call, image, (vm, disk)))  # named as the VM names it
    return collection("disks", "disk", nodes)


# ------------------------------------------------------- CD-ROMs, NUMA, empties


def list_cdroms(call: Call) -> Reply:
    vm = call.m.vms.get(call.params["id"])
    cd = vm.spec.cd
    cd_id = derived_id("cdrom", vm.id)
    node: Node = {"href": f"{BASE}/vms/{vm.id}/cdroms/{cd_id}", "id": cd_id,
                  "file": {"id": cd.path} if cd and cd.path else None,
                  "vm": ref("vms", vm.id)}
    return collection("cdroms", "cdrom", [node])


def list_numa(call: Call) -> Reply:
    call.m.vms.get(call.params["id"])
    return collection("vm_numa_nodes", "vm_numa_node", [])


def _empty(tag: str, item: str) -> Route:
    def handler(call: Call) -> Reply:
        call.m.vms.get(call.params["id"])
        return collection(tag, item, [])

    return ("GET", f"/vms/{{id}}/{tag.replace('_', '')}", handler)


ROUTES: list[Route] = [
    ("GET", "/vms/{id}/diskattachments", list_attachments),
    ("POST", "/vms/{id}/diskattachments", add_attachment),
    ("GET", "/vms/{id}/diskattachments/{att}", get_attachment),
    ("PUT", "/vms/{id}/diskattachments/{att}", update_attachment),
    ("DELETE", "/vms/{id}/diskattachments/{att}", remove_attachment),
    ("GET", "/vms/{id}/nics", list_nics),
    ("POST", "/vms/{id}/nics", add_nic),
    ("GET", "/vms/{id}/nics/{nic}", get_nic),
    ("PUT", "/vms/{id}/nics/{nic}", update_nic),
    ("DELETE", "/vms/{id}/nics/{nic}", remove_nic),
    ("GET", "/vms/{id}/nics/{nic}/networkfilterparameters", nic_filter_parameters),
    ("GET", "/vms/{id}/snapshots", list_snapshots),
    ("POST", "/vms/{id}/snapshots", add_snapshot),
    ("GET", "/vms/{id}/snapshots/{snap}", get_snapshot),
    ("DELETE", "/vms/{id}/snapshots/{snap}", remove_snapshot),
    ("POST", "/vms/{id}/snapshots/{snap}/restore", restore_snapshot),
    ("GET", "/vms/{id}/snapshots/{snap}/disks", snapshot_disks),
    ("GET", "/vms/{id}/cdroms", list_cdroms),
    ("GET", "/vms/{id}/numanodes", list_numa),
    _empty("reported_devices", "reported_device"),
    _empty("statistics", "statistic"),
    _empty("tags", "tag"),
    _empty("graphics_consoles", "graphics_console"),
    _empty("watchdogs", "watchdog"),
    _empty("host_devices", "host_device"),
    _empty("affinity_labels", "affinity_label"),
    _empty("applications", "application"),
    _empty("sessions", "session"),
    _empty("katello_errata", "katello_erratum"),
    _empty("mediated_devices", "vm_mediated_device"),
    _empty("floppies", "floppy"),
]
