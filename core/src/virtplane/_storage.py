"""Storage domain life (attach, verify, detach, remove) and templates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from virtplane import model
from virtplane.errors import (
    InvalidInput,
    InvalidState,
    NotFound,
    StorageUnavailable,
    VirtplaneError,
)

if TYPE_CHECKING:
    from virtplane.manager import Manager


def _images_of(m: Manager, dom: model.StorageDomain) -> list[model.Image]:
    return [i for i in m.store.list(model.Image) if i.domain_id == dom.id]


def _users(m: Manager, image_ids: set[str], running_only: bool = False) -> list[str]:
    """Names of the VMs (only those not Down, with ``running_only``) using these images."""
    return sorted(v.name for v in m.store.list(model.Vm)
                  if not (running_only and v.status == model.VmStatus.DOWN)
                  and any(d.image_id in image_ids for d in v.spec.disks))


def running_users(m: Manager, image_ids: set[str]) -> list[str]:
    return _users(m, image_ids, running_only=True)


def optional(drv: Any, member: str, type: str, what: str) -> Any:
    """An optional driver member, or InvalidInput saying this storage type cannot ``what``."""
    found = getattr(drv, member, None)
    if found is None:
        raise InvalidInput(f"storage type {type!r} cannot {what} (its driver has no "
                           f"{member}())")
    return found


def merge_layer(m: Manager, dom: model.StorageDomain, image: model.Image,
                child: model.Volume, parent: model.Volume) -> None:
    """Commit ``child`` into ``parent`` on storage and take ``child`` out of the image's
    chain (the layer above it, if any, now sits on ``parent``); the caller records it."""
    drv = m.driver("storage", dom.type)
    drv.merge_volume(dom, image, child, parent)
    for v in image.volumes:
        if v.parent_id == child.id:
            v.parent_id = parent.id
    image.volumes = [v for v in image.volumes if v.id != child.id]
    drv.delete_volume(dom, image, child)


def disconnect(drv: Any, dom: model.StorageDomain) -> None:
    """Disconnect when the driver has anything to undo (``disconnect`` is optional)."""
    if hasattr(drv, "disconnect"):
        drv.disconnect(dom)


def attach(m: Manager, name: str, type: str, connection: dict[str, Any],
           datacenter: str | None) -> model.StorageDomain:
    m.store.require_free(model.StorageDomain, name, "storage domain")
    drv = m.driver("storage", type)
    probe = model.StorageDomain(name=name, type=type, connection=dict(connection))
    find_domains = optional(drv, "find_domains", type, "attach existing domains")
    read_images = optional(drv, "read_images", type, "attach existing domains")
    drv.connect(probe)
    found = [d for d in find_domains(probe) if d.get("name") == name or d.get("uuid") == name]
    if not found:
        names = [d.get("name") for d in find_domains(probe)]
        raise NotFound(f"no storage domain {name!r} on that {type} storage; found: "
                       + (", ".join(str(n) for n in names) or "none"))
    md = found[0]
    dc_id = m.store.find(model.DataCenter, datacenter).id if datacenter else None
    dom = model.StorageDomain(name=str(md["name"]), type=type, datacenter_id=dc_id,
                              domain_class=model.DomainClass(md.get("class", "data")),
                              connection=dict(connection),
                              status=model.DomainStatus.ACTIVE if dc_id
                              else model.DomainStatus.UNATTACHED, id=str(md["uuid"]))
    images = [model.structure(data, model.Image) for data in read_images(dom)]
    with m.store.transaction():
        m.store.add(dom)
        for image in images:
            m.store.add(image)
    return dom


def verify(m: Manager, name: str) -> list[str]:
    dom = m.store.find(model.StorageDomain, name)
    drv = m.driver("storage", dom.type)
    drv.connect(dom)
    images = _images_of(m, dom)
    problems: list[str] = drv.verify(dom, images) if hasattr(drv, "verify") else []
    return problems + illegal_volumes(images)


def detach(m: Manager, name: str) -> None:
    dom = m.store.find(model.StorageDomain, name)
    images = _images_of(m, dom)
    users = _users(m, {i.id for i in images})
    if users:
        raise InvalidState(f"storage domain {name!r} holds disks of VMs {', '.join(users)}; "
                           "remove or move them first")
    with m.store.transaction():
        for image in images:
            m.store.remove(model.Image, image.id)
        m.store.remove(model.StorageDomain, dom.id)
    # The host's mount stays: another engine on this host may use the same domain
    # (one mount point per domain); removing the domain unmounts it.


def remove(m: Manager, name: str) -> None:
    dom = m.store.find(model.StorageDomain, name)
    images = _images_of(m, dom)
    if images:
        raise InvalidState(f"storage domain {name!r} still holds {len(images)} image(s): "
                           + ", ".join(i.description or i.id for i in images))
    drv = m.driver("storage", dom.type)
    drv.connect(dom)
    drv.remove_domain(dom)
    m.store.remove(model.StorageDomain, dom.id)
    disconnect(drv, dom)


def _new_images(m: Manager, disks: list[model.DiskSpec], describe: Any,
                make: Any) -> tuple[list[model.Image], list[model.DiskSpec]]:
    """One new image per managed disk, its volume made by ``make(m, dom, src, image)``
    (recorded illegal first, see :func:`add_volume`); on any failure the images made so
    far are dropped again."""
    created: list[model.Image] = []
    out = []
    try:
        for disk in disks:
            if not (disk.image_id and disk.domain_id):
                raise InvalidInput(f"disk {disk.name!r} is not on a storage domain; only "
                                   "managed disks can be copied")
            src = m.store.get(model.Image, disk.image_id)
            dom = m.store.get(model.StorageDomain, disk.domain_id)
            require_active(m, dom)
            image = model.Image(domain_id=dom.id, description=describe(disk))
            make(m, dom, src, image)
            created.append(image)
            out.append(attrs.evolve(disk, image_id=image.id))
    except BaseException:
        drop(m, created, [])
        raise
    return created, out


def _record(m: Manager, created: list[model.Image], obj: Any) -> None:
    """Store the object using the new (already recorded) images; drop them on failure."""
    try:
        m.store.add(obj)
    except BaseException:
        drop(m, created, [])
        raise


def copy_into(m: Manager, dom: model.StorageDomain, src: model.Image,
              image: model.Image) -> None:
    """``image`` gets one standalone qcow2 volume: ``src``'s chain collapsed."""
    vol = model.Volume(image_id=image.id, format=model.VolumeFormat.QCOW2,
                       size_bytes=src.volumes[-1].size_bytes)
    copy = optional(m.driver("storage", dom.type), "copy_volume", dom.type, "copy volumes")
    add_volume(m, dom, image, vol, lambda d, i, v: copy(d, src, src.volumes[-1], i, v))


def overlay_onto(m: Manager, dom: model.StorageDomain, base: model.Image,
                 image: model.Image) -> None:
    """``image`` gets one qcow2 overlay on ``base``'s leaf (a thin VM on a template)."""
    add_volume(m, dom, image, model.Volume(
        image_id=image.id, format=model.VolumeFormat.QCOW2,
        size_bytes=base.volumes[-1].size_bytes, parent_id=base.volumes[-1].id,
        base_image_id=base.id))


def create_template(m: Manager, vm_name: str, name: str) -> model.Template:
    vm = m.get_vm(vm_name)
    if vm.status != model.VmStatus.DOWN:
        raise InvalidState(f"VM {vm_name!r} is {vm.status.value}; a template needs it Down")
    m.store.require_free(model.Template, name)
    created, disks = _new_images(m, vm.spec.disks, lambda d: f"template {name}/{d.name}",
                                 copy_into)
    template = model.Template(name=name, spec=attrs.evolve(vm.spec, name=name, disks=disks),
                              image_ids=[i.id for i in created])
    _record(m, created, template)
    return template


def vm_from_template(m: Manager, template_name: str, name: str, cluster: str,
                     clone: bool) -> model.Vm:
    template = m.store.find(model.Template, template_name)
    cl = m.store.find(model.Cluster, cluster)
    spec = attrs.evolve(template.spec, name=name)
    m.validate_vm_spec(spec, cl)
    m.store.require_free(model.Vm, name, "VM")
    vm_id = model.Vm(spec=spec, cluster_id=cl.id).id
    created, disks = _new_images(m, template.spec.disks, lambda d: f"{vm_id}/{d.name}",
                                 copy_into if clone else overlay_onto)
    vm = model.Vm(spec=attrs.evolve(spec, disks=disks), cluster_id=cl.id, id=vm_id)
    _record(m, created, vm)
    m.store.add_event(vm.id, f"created from template {template_name} "
                      f"({'full clone' if clone else 'thin, on the template volumes'})")
    return vm


def remove_template(m: Manager, name: str) -> None:
    template = m.store.find(model.Template, name)
    based = set(template.image_ids)
    dependants = sorted(
        v.name for v in m.store.list(model.Vm)
        if any(vol.base_image_id in based
               for d in v.spec.disks if d.image_id
               for vol in m.store.get(model.Image, d.image_id).volumes))
    if dependants:
        raise InvalidState(f"template {name!r} is in use by {', '.join(dependants)}; "
                           "remove them or make full clones first")
    images = [m.store.get(model.Image, i) for i in template.image_ids]
    drop(m, images, [(model.Template, template.id)])


def drop(m: Manager, images: list[model.Image], removals: list[tuple[type, str]]) -> None:
    """Forget ``images`` and the objects in ``removals`` in one transaction, then delete
    the images from their storage (the store never points at deleted files)."""
    with m.store.transaction():
        for cls, obj_id in removals:
            m.store.remove(cls, obj_id)
        for image in images:
            m.store.remove(model.Image, image.id)
    for image in images:
        dom = m.store.get(model.StorageDomain, image.domain_id)
        m.driver("storage", dom.type).delete_image(dom, image)


def image_in_use(m: Manager, image: model.Image) -> list[str]:
    """Names of the VMs and templates whose disks use ``image`` or are based on it."""
    users = _users(m, {image.id})
    users += [f"template {t.name}" for t in m.store.list(model.Template)
              if image.id in t.image_ids]
    for other in m.store.list(model.Image):
        if other.id != image.id and any(v.base_image_id == image.id for v in other.volumes):
            users.append(f"image {other.alias or other.id}")
    return users


# ----------------------------------------------------------------- volumes


def add_volume(m: Manager, dom: model.StorageDomain, image: model.Image, vol: model.Volume,
               make: Any = None) -> None:
    """Make ``vol`` the new leaf of ``image`` (or its first volume), in VDSM's order.

    The volume is recorded *illegal* first (state store, then the metadata on
    the storage), then created by ``make(dom, image, vol)`` (default: the
    driver's ``create_volume``), then marked legal. A failure removes the file
    and the record again; a process killed in between leaves an illegal
    volume that ``storage verify`` reports and ``storage repair`` removes, never
    a file nobody knows about.
    """
    drv = m.driver("storage", dom.type)
    first = not image.volumes
    vol.legal = False
    image.volumes.append(vol)
    try:
        if first:
            m.store.add(image)
        else:
            m.store.update(image)
        m.sync_image(image, dom)
    except BaseException:
        _forget_volume(m, dom, image, vol, first)
        raise
    try:
        (make or drv.create_volume)(dom, image, vol)
    except BaseException:
        try:
            drv.delete_volume(dom, image, vol)
        except VirtplaneError as cleanup:
            # cannot tell what is left on the storage: keep the illegal record for repair
            m.store.add_event(dom.id, f"volume {vol.id} of image {image.id} left illegal; "
                              f"removing it failed: {cleanup}", "error")
            raise
        _forget_volume(m, dom, image, vol, first)
        raise
    vol.legal = True
    m.store.update(image)
    m.sync_image(image, dom)


def _forget_volume(m: Manager, dom: model.StorageDomain, image: model.Image,
                   vol: model.Volume, whole_image: bool) -> None:
    image.volumes = [v for v in image.volumes if v.id != vol.id]
    if whole_image:
        if m.store.has(model.Image, image.id):
            m.store.remove(model.Image, image.id)
        m.driver("storage", dom.type).delete_image(dom, image)
        return
    m.store.update(image)
    m.sync_image(image, dom)


def remove_leaf(m: Manager, dom: model.StorageDomain, image: model.Image,
                vol: model.Volume) -> None:
    """Delete a leaf volume that nothing uses and drop it from the image's chain."""
    m.driver("storage", dom.type).delete_volume(dom, image, vol)
    _forget_volume(m, dom, image, vol, whole_image=len(image.volumes) == 1)


def repair(m: Manager, name: str) -> list[str]:
    """Remove the illegal volumes a killed operation left (files, records, metadata).

    Returns what was done, one line per volume.
    """
    dom = m.store.find(model.StorageDomain, name)
    m.driver("storage", dom.type).connect(dom)
    done = []
    for image in _images_of(m, dom):
        for vol in [v for v in image.volumes if not v.legal]:
            if any(v.parent_id == vol.id and v.legal for v in image.volumes):
                done.append(f"image {image.id}: volume {vol.id} is illegal but has a legal "
                            "layer on top; left alone (needs an administrator)")
                continue
            remove_leaf(m, dom, image, vol)
            done.append(f"image {image.id}: removed illegal volume {vol.id}"
                        + ("" if image.volumes else " (and the now empty image)"))
    return done


def illegal_volumes(images: list[model.Image]) -> list[str]:
    return [f"image {i.id}: volume {v.id} is illegal (its creation did not finish); "
            "`virtplane storage repair` removes it" for i in images for v in i.volumes
            if not v.legal]


def refresh(m: Manager, name: str) -> model.StorageDomain:
    """Ask the driver whether the domain answers; record Active or Inactive with the reason."""
    dom = m.store.find(model.StorageDomain, name)
    drv = m.driver("storage", dom.type)
    probe = getattr(drv, "health", lambda d: None)
    reason = probe(dom)
    if reason:
        # one reconnect (remount, log in again), as VDSM's monitor does
        try:
            drv.connect(dom)
            reason = probe(dom)
        except VirtplaneError as exc:
            reason = f"{reason}; reconnecting failed: {exc}"
    if reason:
        status = model.DomainStatus.INACTIVE
    elif dom.datacenter_id:
        status = model.DomainStatus.ACTIVE
    else:
        status = model.DomainStatus.UNATTACHED
    if (status, reason or "") != (dom.status, dom.status_reason):
        dom.status, dom.status_reason = status, reason or ""
        m.store.update(dom)
        m.store.add_event(dom.id, f"storage domain {dom.name} is {status.value}"
                          + (f": {reason}" if reason else ""),
                          "error" if reason else "info")
    return dom


def deactivate(m: Manager, name: str) -> model.StorageDomain:
    """Take a domain out of use (maintenance); refused while running VMs use it."""
    dom = m.store.find(model.StorageDomain, name)
    running = running_users(m, {i.id for i in _images_of(m, dom)})
    if running:
        raise InvalidState(f"storage domain {name!r} is in use by running VMs "
                           f"{', '.join(running)}; stop them first")
    dom.status, dom.status_reason = model.DomainStatus.INACTIVE, "deactivated by the administrator"
    m.store.update(dom)
    m.store.add_event(dom.id, f"storage domain {dom.name} deactivated")
    disconnect(m.driver("storage", dom.type), dom)
    return dom


def activate(m: Manager, name: str) -> model.StorageDomain:
    """Connect the host again and probe: Active, or Inactive with the reason."""
    dom = m.store.find(model.StorageDomain, name)
    drv = m.driver("storage", dom.type)
    try:
        drv.connect(dom)
    except VirtplaneError as exc:
        dom.status, dom.status_reason = model.DomainStatus.INACTIVE, str(exc)
        m.store.update(dom)
        raise
    dom.status_reason = ""
    dom.status = model.DomainStatus.ACTIVE if dom.datacenter_id else model.DomainStatus.UNATTACHED
    m.store.update(dom)
    return refresh(m, name)


def require_active(m: Manager, dom: model.StorageDomain) -> None:
    if dom.status == model.DomainStatus.INACTIVE:
        raise StorageUnavailable(f"storage domain {dom.name!r} is Inactive: "
                                 f"{dom.status_reason}")
