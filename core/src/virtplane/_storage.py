"""Storage domain life (attach, verify, detach, remove) and templates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from virtplane import model
from virtplane.errors import InvalidInput, InvalidState, NotFound

if TYPE_CHECKING:
    from virtplane.manager import Manager


def _images_of(m: Manager, dom: model.StorageDomain) -> list[model.Image]:
    return [i for i in m.store.list(model.Image) if i.domain_id == dom.id]


def _users(m: Manager, image_ids: set[str]) -> list[str]:
    return sorted(v.name for v in m.store.list(model.Vm)
                  if any(d.image_id in image_ids for d in v.spec.disks))


def attach(m: Manager, name: str, type: str, connection: dict[str, Any],
           datacenter: str | None) -> model.StorageDomain:
    m.store.require_free(model.StorageDomain, name, "storage domain")
    drv = m.driver("storage", type)
    probe = model.StorageDomain(name=name, type=type, connection=dict(connection))
    drv.connect(probe)
    found = [d for d in drv.find_domains(probe) if d.get("name") == name or d.get("uuid") == name]
    if not found:
        names = [d.get("name") for d in drv.find_domains(probe)]
        raise NotFound(f"no storage domain {name!r} on that {type} storage; found: "
                       + (", ".join(str(n) for n in names) or "none"))
    md = found[0]
    dc_id = m.store.find(model.DataCenter, datacenter).id if datacenter else None
    dom = model.StorageDomain(name=str(md["name"]), type=type, datacenter_id=dc_id,
                              domain_class=model.DomainClass(md.get("class", "data")),
                              connection=dict(connection),
                              status=model.DomainStatus.ACTIVE if dc_id
                              else model.DomainStatus.UNATTACHED, id=str(md["uuid"]))
    images = [model.structure(data, model.Image) for data in drv.read_images(dom)]
    with m.store.transaction():
        m.store.add(dom)
        for image in images:
            m.store.add(image)
    return dom


def verify(m: Manager, name: str) -> list[str]:
    dom = m.store.find(model.StorageDomain, name)
    drv = m.driver("storage", dom.type)
    drv.connect(dom)
    problems: list[str] = drv.verify(dom, _images_of(m, dom))
    return problems


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
    drv.disconnect(dom)


Created = list[tuple[model.StorageDomain, model.Image]]


def _new_images(m: Manager, disks: list[model.DiskSpec], describe: Any,
                make: Any) -> tuple[Created, list[model.DiskSpec]]:
    """One new image per managed disk, its volume written by ``make(drv, dom, src, image)``;
    on any failure the images made so far are deleted again."""
    created: Created = []
    out = []
    try:
        for disk in disks:
            if not (disk.image_id and disk.domain_id):
                raise InvalidInput(f"disk {disk.name!r} is not on a storage domain; only "
                                   "managed disks can be copied")
            src = m.store.get(model.Image, disk.image_id)
            dom = m.store.get(model.StorageDomain, disk.domain_id)
            image = model.Image(domain_id=dom.id, description=describe(disk))
            image.volumes.append(make(m.driver("storage", dom.type), dom, src, image))
            created.append((dom, image))
            out.append(attrs.evolve(disk, image_id=image.id))
    except BaseException:
        for dom, image in created:
            m.driver("storage", dom.type).delete_image(dom, image)
        raise
    return created, out


def _record(m: Manager, created: Created, obj: Any) -> None:
    """Store the new images and the object using them in one transaction; then write
    the images' metadata to their domains."""
    with m.store.transaction():
        for _dom, image in created:
            m.store.add(image)
        m.store.add(obj)
    for _dom, image in created:
        m.sync_image(image)


def _copy(drv: Any, dom: model.StorageDomain, src: model.Image,
          image: model.Image) -> model.Volume:
    vol = model.Volume(image_id=image.id, format=model.VolumeFormat.QCOW2,
                       size_bytes=src.volumes[-1].size_bytes)
    drv.copy_volume(dom, src, src.volumes[-1], image, vol)
    return vol


def _overlay(drv: Any, dom: model.StorageDomain, base: model.Image,
             image: model.Image) -> model.Volume:
    vol = model.Volume(image_id=image.id, format=model.VolumeFormat.QCOW2,
                       size_bytes=base.volumes[-1].size_bytes,
                       parent_id=base.volumes[-1].id, base_image_id=base.id)
    drv.create_volume(dom, image, vol)
    return vol


def create_template(m: Manager, vm_name: str, name: str) -> model.Template:
    vm = m.get_vm(vm_name)
    if vm.status != model.VmStatus.DOWN:
        raise InvalidState(f"VM {vm_name!r} is {vm.status.value}; a template needs it Down")
    m.store.require_free(model.Template, name)
    created, disks = _new_images(m, vm.spec.disks, lambda d: f"template {name}/{d.name}", _copy)
    template = model.Template(name=name, spec=attrs.evolve(vm.spec, name=name, disks=disks),
                              image_ids=[i.id for _d, i in created])
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
                                 _copy if clone else _overlay)
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
