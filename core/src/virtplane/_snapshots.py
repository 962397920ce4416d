"""VM snapshots as volume chains, the way VDSM keeps them.

A snapshot freezes each managed disk's current leaf volume and puts a new
qcow2 leaf on top of it (prepared by the storage driver; a running VM is
switched onto the new leaves by the hypervisor, atomically, with its memory
saved when asked). Reverting drops every layer above the frozen ones and
starts a fresh leaf on them (restoring the saved memory if there is one);
deleting merges the frozen layer's child into it. Revert and delete need the
VM Down (live merge is not implemented yet).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from virtplane import _storage, model
from virtplane.errors import AlreadyExists, HypervisorError, InvalidInput, InvalidState, NotFound

if TYPE_CHECKING:
    from virtplane.manager import Manager


def _managed(m: Manager, vm: model.Vm) -> list[tuple[model.DiskSpec, model.Image,
                                                      model.StorageDomain]]:
    out = []
    for disk in vm.spec.disks:
        if disk.image_id and disk.domain_id:
            out.append((disk, m.store.get(model.Image, disk.image_id),
                        m.store.get(model.StorageDomain, disk.domain_id)))
    return out


def _source(m: Manager, dom: model.StorageDomain, image: model.Image,
            vol: model.Volume) -> dict[str, Any]:
    src: dict[str, Any] = m.driver("storage", dom.type).volume_source(dom, image, vol)
    if src.get("type") not in ("file", "block", "network"):
        raise InvalidInput(f"storage domain {dom.name!r} presents {src.get('type')} volumes, "
                           "which a running VM cannot be snapshotted onto")
    return src


def find(m: Manager, vm: model.Vm, name: str) -> model.Snapshot:
    for snap in m.store.list(model.Snapshot):
        if snap.vm_id == vm.id and snap.name == name:
            return snap
    known = [s.name for s in m.store.list(model.Snapshot) if s.vm_id == vm.id]
    raise NotFound(f"VM {vm.name!r} has no snapshot named {name!r} (known: "
                   f"{', '.join(known) or 'none'})")


def take(m: Manager, name: str, snapshot: str, description: str = "",
         with_memory: bool = False) -> model.Snapshot:
    vm = m.get_vm(name)
    if m.store.exists(model.Snapshot, f"{vm.id}/{snapshot}"):
        raise AlreadyExists(f"VM {name!r} already has a snapshot named {snapshot!r}")
    running = vm.status in (model.VmStatus.UP, model.VmStatus.PAUSED)
    if with_memory:
        if not running:
            raise InvalidInput(f"VM {name!r} is {vm.status.value}: memory can only be "
                               "saved from a running VM")
        cl = m.store.get(model.Cluster, vm.cluster_id)
        features = m.arch_features(cl.architecture, cl.compat_version)
        if not features.get("memory_snapshot", False):
            raise InvalidInput(f"snapshots with memory are not supported on "
                               f"{cl.architecture} at compatibility {cl.compat_version}")
    disks = _managed(m, vm)
    created: list[tuple[model.StorageDomain, model.Image, model.Volume]] = []
    frozen: dict[str, str] = {}
    try:
        for _disk, image, dom in disks:
            leaf = image.volumes[-1]
            new = model.Volume(image_id=image.id, format=model.VolumeFormat.QCOW2,
                               allocation=model.Allocation.THIN, size_bytes=leaf.size_bytes,
                               parent_id=leaf.id)
            _storage.add_volume(m, dom, image, new)
            created.append((dom, image, new))
            frozen[image.id] = leaf.id
        memory_path = None
        if running:
            from virtplane import domxml

            _host, conn = m._vm_host(vm)
            if not getattr(conn, "live_snapshots", True):
                raise InvalidInput(f"VM {name!r} runs on a hypervisor that cannot snapshot a "
                                   "running VM; stop it first")
            targets = domxml.disk_aliases(conn.live_xml(vm.name))
            switch = []
            for (disk, image, dom), (_d, _i, new) in zip(disks, created, strict=True):
                target = targets.get("ua-" + disk.name)
                if target is None:
                    raise InvalidState(f"disk {disk.name!r} of VM {name!r} is not plugged")
                switch.append((target, _source(m, dom, image, new)))
            if with_memory:
                memory_path = str(m._state_path.parent / "saved" / f"{vm.id}.{snapshot}.mem")
                os.makedirs(os.path.dirname(memory_path), exist_ok=True)
            conn.snapshot_disks(vm.name, switch, memory_path)
    except BaseException:
        for dom, image, vol in reversed(created):
            _storage.remove_leaf(m, dom, image, vol)
        raise
    snap = model.Snapshot(name=snapshot, vm_id=vm.id, created=time.time(),
                          with_memory=with_memory, description=description, volumes=frozen,
                          memory_path=memory_path, spec=vm.spec)
    with m.store.transaction():
        if running:
            vm.started_xml = m._vm_host(vm)[1].live_xml(vm.name)
            m.store.update(vm)
        m.store.add(snap)
    skipped = [d.name for d in vm.spec.disks if not (d.image_id and d.domain_id)]
    note = f" (not included, not on a storage domain: {', '.join(skipped)})" if skipped else ""
    m.store.add_event(vm.id, f"snapshot {snapshot} taken"
                      + (" with memory" if with_memory else "") + note)
    return snap


def revert(m: Manager, name: str, snapshot: str, host: str | None = None) -> model.Vm:
    from virtplane.payloads import XmlPayload

    vm = m.get_vm(name)
    if vm.status != model.VmStatus.DOWN:
        raise InvalidState(f"VM {name!r} is {vm.status.value}; revert needs Down")
    snap = find(m, vm, snapshot)
    later = [s for s in m.store.list(model.Snapshot)
             if s.vm_id == vm.id and s.created > snap.created]
    renames: dict[str, str] = {}
    changed = []
    for image_id, frozen_id in snap.volumes.items():
        image = m.store.get(model.Image, image_id)
        dom = m.store.get(model.StorageDomain, image.domain_id)
        drv = m.driver("storage", dom.type)
        ids = [v.id for v in image.volumes]
        if frozen_id not in ids:
            raise InvalidState(f"snapshot {snapshot!r}: volume {frozen_id} is missing from "
                               f"image {image_id}")
        idx = ids.index(frozen_id)
        for vol in reversed(image.volumes[idx + 1:]):
            renames[_file_or_id(m, dom, image, vol)] = ""
            drv.delete_volume(dom, image, vol)
        image.volumes = image.volumes[:idx + 1]
        m.store.update(image)
        m.sync_image(image)
        new = model.Volume(image_id=image.id, format=model.VolumeFormat.QCOW2,
                           allocation=model.Allocation.THIN,
                           size_bytes=image.volumes[-1].size_bytes, parent_id=frozen_id)
        _storage.add_volume(m, dom, image, new)
        for old in list(renames):
            if not renames[old]:
                renames[old] = _file_or_id(m, dom, image, new)
        changed.append(image)
    with m.store.transaction():
        for image in changed:
            m.store.update(image)
            m.sync_image(image)
        for s in later:
            if s.memory_path and os.path.exists(s.memory_path):
                os.unlink(s.memory_path)
            m.store.remove(model.Snapshot, s.id)
    m.store.add_event(vm.id, f"reverted to snapshot {snapshot}"
                      + (f"; later snapshots dropped: {', '.join(s.name for s in later)}"
                         if later else ""))
    if snap.memory_path:
        h = m._pick_host(vm, host)
        conn = m.connection(h)
        xml = conn.saved_xml(snap.memory_path)
        for old, new_path in renames.items():
            xml = xml.replace(old, new_path)
        payload = XmlPayload(xml)
        m.hooks.fire("before_vm_dehibernate", vm=vm, domxml=payload, from_snapshot=True)
        vm.status = model.VmStatus.RESTORING_STATE
        m.store.update(vm)
        try:
            live = conn.restore(vm.name, snap.memory_path, payload.xml)
        except HypervisorError:
            vm.status = model.VmStatus.DOWN
            m.store.update(vm)
            raise
        vm.status = model.VmStatus.UP
        vm.host_id = h.id
        vm.started_xml = live
        m.store.update(vm)
        m.hooks.fire("after_vm_dehibernate", on_error=m._log_error(vm.id), vm=vm,
                     domxml=XmlPayload(live), from_snapshot=True)
    return vm


def _file_or_id(m: Manager, dom: model.StorageDomain, image: model.Image,
                vol: model.Volume) -> str:
    src: dict[str, Any] = m.driver("storage", dom.type).volume_source(dom, image, vol)
    return str(src.get("source", {}).get("@file") or vol.id)


def delete(m: Manager, name: str, snapshot: str) -> None:
    vm = m.get_vm(name)
    if vm.status != model.VmStatus.DOWN:
        raise InvalidState(f"VM {name!r} is {vm.status.value}; deleting a snapshot needs "
                           "Down (live merge is not implemented yet)")
    snap = find(m, vm, snapshot)
    others = [s for s in m.store.list(model.Snapshot) if s.vm_id == vm.id and s.id != snap.id]
    changed = []
    for image_id, frozen_id in snap.volumes.items():
        image = m.store.get(model.Image, image_id)
        dom = m.store.get(model.StorageDomain, image.domain_id)
        parent = next(v for v in image.volumes if v.id == frozen_id)
        child = next((v for v in image.volumes if v.parent_id == frozen_id), None)
        if child is None:
            continue
        _storage.merge_layer(m, dom, image, child, parent)
        for s in others:
            if s.volumes.get(image_id) == child.id:
                s.volumes[image_id] = parent.id
        changed.append(image)
    with m.store.transaction():
        for image in changed:
            m.store.update(image)
            m.sync_image(image)
        for s in others:
            m.store.update(s)
        m.store.remove(model.Snapshot, snap.id)
    if snap.memory_path and os.path.exists(snap.memory_path):
        os.unlink(snap.memory_path)
    m.store.add_event(vm.id, f"snapshot {snapshot} deleted (layers merged)")
