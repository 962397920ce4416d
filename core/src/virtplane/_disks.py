"""Standalone (floating) disks: images with a name, made and used outside a VM.

Every volume is made through :func:`virtplane._storage.add_volume`, so a
killed command leaves an illegal, recorded volume rather than a stray file.
A disk joins a VM with ``DiskSpec(image_id=..., domain_id=...)`` (``vm create
--disk image=NAME`` or hot-plug).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from virtplane import _storage, model
from virtplane.errors import InvalidInput, InvalidState

if TYPE_CHECKING:
    from virtplane.manager import Manager


def find(m: Manager, name: str) -> model.Image:
    """A disk by name (alias) or image id."""
    return m.store.find(model.Image, name)


def create(m: Manager, name: str, domain: str, size_bytes: int, fmt: str = "qcow2",
           allocation: str = "thin") -> model.Image:
    m.store.require_free(model.Image, name, "disk")
    if size_bytes <= 0:
        raise InvalidInput(f"disk size must be positive; got {size_bytes} bytes")
    try:
        vf, al = model.VolumeFormat(fmt), model.Allocation(allocation)
    except ValueError:
        raise InvalidInput(
            f"format must be one of {', '.join(f.value for f in model.VolumeFormat)} and "
            f"allocation one of {', '.join(a.value for a in model.Allocation)}; got "
            f"{fmt!r}/{allocation!r}") from None
    dom = m.store.find(model.StorageDomain, domain)
    if dom.domain_class != model.DomainClass.DATA:
        raise InvalidInput(f"storage domain {domain!r} is a {dom.domain_class.value} domain; "
                           "disks live on data domains")
    _storage.require_active(m, dom)
    image = model.Image(domain_id=dom.id, alias=name, description=f"disk {name}")
    _storage.add_volume(m, dom, image, model.Volume(
        image_id=image.id, format=vf, allocation=al, size_bytes=size_bytes))
    return image


def import_file(m: Manager, name: str, domain: str, path: str, fmt: str = "qcow2") -> model.Image:
    """A named disk filled from an image file (raw, qcow2, vmdk ... anything qemu-img reads)."""
    from virtplane.errors import VirtplaneError

    m.store.require_free(model.Image, name, "disk")
    try:
        vf = model.VolumeFormat(fmt)
    except ValueError:
        raise InvalidInput(f"format must be one of "
                           f"{', '.join(f.value for f in model.VolumeFormat)}; got {fmt!r}") from None
    dom = m.store.find(model.StorageDomain, domain)
    drv = m.driver("storage", dom.type)
    load = _storage.optional(drv, "import_volume", dom.type, "import disk files")
    try:
        size = int(_storage.optional(drv, "image_file_size", dom.type,
                                     "import disk files")(path))
    except VirtplaneError as exc:
        raise InvalidInput(f"cannot import {path!r}: {exc}") from None
    _storage.require_active(m, dom)
    image = model.Image(domain_id=dom.id, alias=name, description=f"imported from {path}")
    vol = model.Volume(image_id=image.id, format=vf, size_bytes=size)
    _storage.add_volume(m, dom, image, vol,
                        lambda d, i, v: load(d, i, v, path))
    return image


def describe(m: Manager, image: model.Image) -> dict[str, Any]:
    dom = m.store.get(model.StorageDomain, image.domain_id)
    leaf = image.volumes[-1] if image.volumes else None
    return {"name": image.alias or image.id, "id": image.id, "domain": dom.name,
            "size_bytes": leaf.size_bytes if leaf else 0,
            "format": leaf.format.value if leaf else "",
            "volumes": len(image.volumes),
            "legal": all(v.legal for v in image.volumes),
            "used_by": _storage.image_in_use(m, image)}


def _require_offline(m: Manager, image: model.Image, name: str, hint: str) -> None:
    running = _storage.running_users(m, {image.id})
    if running:
        raise InvalidState(f"disk {name!r} is in use by running VM(s) {', '.join(running)}; "
                           + hint)


def snapshot(m: Manager, name: str) -> model.Volume:
    """A new qcow2 leaf on the disk; the old leaf is frozen (refused while a running VM
    uses the disk: take a VM snapshot instead, which switches the guest over)."""
    image = find(m, name)
    _require_offline(m, image, name, "use `virtplane vm snapshot` for a running guest")
    dom = m.store.get(model.StorageDomain, image.domain_id)
    _storage.require_active(m, dom)
    leaf = image.volumes[-1]
    vol = model.Volume(image_id=image.id, format=model.VolumeFormat.QCOW2,
                       size_bytes=leaf.size_bytes, parent_id=leaf.id)
    _storage.add_volume(m, dom, image, vol)
    return vol


def clone(m: Manager, name: str, new_name: str) -> model.Image:
    """A standalone copy (the chain collapsed into one qcow2 volume) in the same domain."""
    src = find(m, name)
    m.store.require_free(model.Image, new_name, "disk")
    dom = m.store.get(model.StorageDomain, src.domain_id)
    _storage.require_active(m, dom)
    image = model.Image(domain_id=dom.id, alias=new_name, description=f"clone of {name}")
    _storage.copy_into(m, dom, src, image)
    return image


def extend(m: Manager, name: str, size_bytes: int) -> model.Volume:
    """Grow a disk's leaf volume (offline: not while a running VM uses it)."""
    image = find(m, name)
    leaf = image.volumes[-1]
    if size_bytes <= leaf.size_bytes:
        raise InvalidInput(f"disk {name!r} is {leaf.size_bytes} bytes; the new size must be "
                           f"larger (got {size_bytes}); shrinking is not supported")
    _require_offline(m, image, name, "stop them first")
    dom = m.store.get(model.StorageDomain, image.domain_id)
    _storage.require_active(m, dom)
    resize = _storage.optional(m.driver("storage", dom.type), "resize_volume", dom.type,
                               "resize volumes")
    resize(dom, image, leaf, size_bytes)
    leaf.size_bytes = size_bytes
    m.store.update(image)
    m.sync_image(image)
    return leaf


def merge(m: Manager, name: str) -> model.Volume:
    """Fold the disk's top layer into the one below (offline), undoing a disk snapshot;
    returns the new leaf. Layers frozen by VM snapshots are merged by deleting those."""
    image = find(m, name)
    if len(image.volumes) < 2:
        raise InvalidInput(f"disk {name!r} has a single volume; there is no layer to merge")
    _require_offline(m, image, name, "merging needs the disk offline")
    vms = sorted({m.store.get(model.Vm, s.vm_id).name for s in m.store.list(model.Snapshot)
                  if image.id in s.volumes})
    if vms:
        raise InvalidState(f"disk {name!r} has layers of VM snapshots of {', '.join(vms)}; "
                           "delete those snapshots (`virtplane vm snapshot-delete`) instead")
    dom = m.store.get(model.StorageDomain, image.domain_id)
    _storage.require_active(m, dom)
    child = image.volumes[-1]
    parent = next(v for v in image.volumes if v.id == child.parent_id)
    _storage.merge_layer(m, dom, image, child, parent)
    m.store.update(image)
    m.sync_image(image)
    return parent


def remove(m: Manager, name: str) -> None:
    image = find(m, name)
    users = _storage.image_in_use(m, image)
    if users:
        raise InvalidState(f"disk {name!r} is in use by {', '.join(users)}; detach it first")
    _storage.drop(m, [image], [])


# ------------------------------------------------------------------ ISO domains


def _iso_domain(m: Manager, domain: str) -> tuple[model.StorageDomain, Any]:
    dom = m.store.find(model.StorageDomain, domain)
    if dom.domain_class != model.DomainClass.ISO:
        raise InvalidInput(f"storage domain {domain!r} is a {dom.domain_class.value} domain; "
                           "ISOs go to iso domains (storage add --class iso)")
    _storage.require_active(m, dom)
    drv = m.driver("storage", dom.type)
    if not hasattr(drv, "import_iso"):
        raise InvalidInput(f"storage type {dom.type!r} cannot hold ISO images")
    drv.connect(dom)
    return dom, drv


def upload_iso(m: Manager, domain: str, path: str, name: str | None = None) -> str:
    from pathlib import Path

    src = Path(path)
    if not src.is_file():
        raise InvalidInput(f"ISO file {path!r} does not exist")
    dom, drv = _iso_domain(m, domain)
    target = drv.import_iso(dom, src, name or src.name)
    m.store.add_event(dom.id, f"ISO {target.name} uploaded")
    return str(target.name)


def list_isos(m: Manager, domain: str) -> list[str]:
    dom, drv = _iso_domain(m, domain)
    names: list[str] = drv.list_isos(dom)
    return names


def media_path(m: Manager, ref: str) -> str:
    """``iso:DOMAIN/NAME`` -> the ISO's path on this host; anything else is a path."""
    if not ref.startswith("iso:"):
        return ref
    domain, sep, name = ref[4:].partition("/")
    if not sep or not name:
        raise InvalidInput(f"CD reference {ref!r} is not iso:DOMAIN/NAME")
    dom, drv = _iso_domain(m, domain)
    return str(drv.iso_path(dom, name))
