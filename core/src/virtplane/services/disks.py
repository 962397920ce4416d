"""Standalone (floating) disks and ISO images.

Every volume is made through :meth:`Volumes.add_volume`, so a killed command
leaves an illegal, recorded volume rather than a stray file. A disk joins a VM
with ``DiskSpec(image_id=..., domain_id=...)`` (``vm create --disk image=NAME``
or hot-plug).
"""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

from virtplane import drivers, model
from virtplane.errors import InvalidInput, InvalidState, VirtplaneError
from virtplane.names import check_name
from virtplane.services.context import Context
from virtplane.services.volumes import Volumes, check_size, unsupported


class Disks:
    """Named disks on data domains."""

    def __init__(self, ctx: Context, volumes: Volumes) -> None:
        self.ctx = ctx
        self.volumes = volumes

    def get(self, name: str) -> model.Image:
        """A disk by name (alias) or image id."""
        return self.ctx.store.find(model.Image, name)

    def list(self) -> builtins.list[dict[str, Any]]:
        """Every image (named disks and VM disks) with its domain, size and users.

        An image whose domain, owner or users cannot be read (a damaged row in the
        store) is still listed, with ``?`` where the damaged row stood and the store's
        message under ``problem``: one damaged row does not hide every disk.
        """
        from virtplane.state import UnreadableRow

        out = []
        for image in self.ctx.store.list(model.Image):
            try:
                out.append(self.describe(image))
            except UnreadableRow as exc:
                leaf = image.volumes[-1] if image.volumes else None
                out.append({"name": image.alias or image.id, "id": image.id, "domain": "?",
                            "size_bytes": leaf.size_bytes if leaf else 0,
                            "format": leaf.format.value if leaf else "",
                            "volumes": len(image.volumes),
                            "legal": all(v.legal for v in image.volumes),
                            "owner": "?", "shareable": image.shareable, "used_by": ["?"],
                            "problem": str(exc)})
        return out

    def describe(self, image: model.Image) -> dict[str, Any]:
        dom = self.volumes.domain_of(image)
        leaf = image.volumes[-1] if image.volumes else None
        return {"name": image.alias or image.id, "id": image.id, "domain": dom.name,
                "size_bytes": leaf.size_bytes if leaf else 0,
                "format": leaf.format.value if leaf else "",
                "volumes": len(image.volumes),
                "legal": all(v.legal for v in image.volumes),
                "owner": self.volumes.owner_text(image), "shareable": image.shareable,
                "used_by": self.volumes.in_use(image)}

    def create(self, name: str, domain: str, size_bytes: int, format: str = "qcow2",
               allocation: str = "thin", shareable: bool = False) -> model.Image:
        """A named disk on a data domain, outside any VM; ``shareable`` (raw only, never
        snapshotted, VDSM's rule) lets several VMs attach it at once."""
        check_name("disk", name)
        self.ctx.store.require_free(model.Image, name, "disk")
        check_size(size_bytes, "disk")
        try:
            vf, al = model.VolumeFormat(format), model.Allocation(allocation)
        except ValueError:
            raise InvalidInput(
                f"format must be one of {', '.join(f.value for f in model.VolumeFormat)} and "
                f"allocation one of {', '.join(a.value for a in model.Allocation)}; got "
                f"{format!r}/{allocation!r}") from None
        if shareable and vf != model.VolumeFormat.RAW:
            raise InvalidInput(f"a shareable disk must be raw (several VMs write it; a qcow2 "
                               f"layer cannot be shared); got format {format!r}")
        dom = self.ctx.store.find(model.StorageDomain, domain)
        if dom.domain_class != model.DomainClass.DATA:
            raise InvalidInput(f"storage domain {domain!r} is a {dom.domain_class.value} "
                               "domain; disks live on data domains")
        self.volumes.require_active(dom)
        image = model.Image(domain_id=dom.id, alias=name, description=f"disk {name}",
                            shareable=shareable)
        self.volumes.add_volume(dom, image, model.Volume(
            image_id=image.id, format=vf, allocation=al, size_bytes=size_bytes))
        return image

    def import_file(self, name: str, domain: str, path: str,
                    format: str = "qcow2") -> model.Image:
        """A named disk filled from an image file (raw, qcow2, vmdk ... anything qemu-img
        reads)."""
        check_name("disk", name)
        self.ctx.store.require_free(model.Image, name, "disk")
        try:
            vf = model.VolumeFormat(format)
        except ValueError:
            raise InvalidInput(f"format must be one of "
                               f"{', '.join(f.value for f in model.VolumeFormat)}; "
                               f"got {format!r}") from None
        dom = self.ctx.store.find(model.StorageDomain, domain)
        drv = self.volumes.driver(dom)
        if not isinstance(drv, drivers.SupportsImport):
            raise unsupported(dom.type, "import disk files", "import_volume(), image_file_size()")
        try:
            size = int(drv.image_file_size(path))
        except VirtplaneError as exc:
            raise InvalidInput(f"cannot import {path!r}: {exc}") from None
        self.volumes.require_active(dom)
        image = model.Image(domain_id=dom.id, alias=name, description=f"imported from {path}")
        vol = model.Volume(image_id=image.id, format=vf, size_bytes=size)
        self.volumes.add_volume(dom, image, vol,
                                lambda d, i, v: drv.import_volume(d, i, v, path))
        return image

    def _require_offline(self, image: model.Image, name: str, hint: str) -> None:
        running = self.volumes.running_users({image.id})
        if running:
            raise InvalidState(f"disk {name!r} is in use by running VM(s) "
                               f"{', '.join(running)}; " + hint)

    def snapshot(self, name: str) -> model.Volume:
        """A new qcow2 leaf on the disk; the old leaf is frozen (refused while a running VM
        uses the disk: take a VM snapshot instead, which switches the guest over)."""
        image = self.get(name)
        self.volumes.require_writable(image, "snapshot")
        if image.shareable:
            raise InvalidState(f"disk {name!r} is shareable; shareable disks have no "
                               "snapshots (several VMs write them)")
        self._require_offline(image, name, "use `virtplane vm snapshot` for a running guest")
        dom = self.volumes.domain_of(image)
        self.volumes.require_active(dom)
        leaf = image.volumes[-1]
        vol = model.Volume(image_id=image.id, format=model.VolumeFormat.QCOW2,
                           size_bytes=leaf.size_bytes, parent_id=leaf.id)
        self.volumes.add_volume(dom, image, vol)
        return vol

    def clone(self, name: str, new_name: str) -> model.Image:
        """A standalone copy (the chain collapsed into one qcow2 volume) in the same domain."""
        src = self.get(name)
        check_name("disk", new_name)
        self.ctx.store.require_free(model.Image, new_name, "disk")
        dom = self.volumes.domain_of(src)
        self.volumes.require_active(dom)
        image = model.Image(domain_id=dom.id, alias=new_name, description=f"clone of {name}")
        self.volumes.copy_into(dom, src, image)
        return image

    def extend(self, name: str, size_bytes: int) -> model.Volume:
        """Grow a disk's leaf volume (offline: not while a running VM uses it)."""
        image = self.get(name)
        self.volumes.require_writable(image, "extend")
        check_size(size_bytes, f"disk {name!r}")
        leaf = image.volumes[-1]
        if size_bytes <= leaf.size_bytes:
            raise InvalidInput(f"disk {name!r} is {leaf.size_bytes} bytes; the new size must "
                               f"be larger (got {size_bytes}); shrinking is not supported")
        self._require_offline(image, name, "stop them first")
        dom = self.volumes.domain_of(image)
        self.volumes.require_active(dom)
        drv = self.volumes.driver(dom)
        if not isinstance(drv, drivers.SupportsResize):
            raise unsupported(dom.type, "resize volumes", "resize_volume()")
        # intent first: a kill after the resize and before the record would leave the
        # store with the old size; repair resizes again (same size) and records it
        image.intent = model.Intent(op="extend", size_bytes=size_bytes)
        self.volumes.record([image])
        self.volumes.finish_or_roll_back(image)
        return image.volumes[-1]

    def merge(self, name: str) -> model.Volume:
        """Fold the disk's top layer into the one below (offline), undoing a disk snapshot;
        returns the new leaf. Layers frozen by VM snapshots are merged by deleting those."""
        image = self.get(name)
        self.volumes.require_writable(image, "merge")
        if len(image.volumes) < 2:
            raise InvalidInput(f"disk {name!r} has a single volume; there is no layer to merge")
        self._require_offline(image, name, "merging needs the disk offline")
        # only the snapshots whose JSON names the image are parsed
        vms = sorted({self.ctx.store.get(model.Vm, s.vm_id).name
                      for s in self.ctx.store.mentioning(model.Snapshot, {image.id})
                      if image.id in s.volumes})
        if vms:
            raise InvalidState(f"disk {name!r} has layers of VM snapshots of {', '.join(vms)}; "
                               "delete those snapshots (`virtplane vm snapshot-delete`) instead")
        dom = self.volumes.domain_of(image)
        self.volumes.require_active(dom)
        child = image.volumes[-1]
        parent = next(v for v in image.volumes if v.id == child.parent_id)
        self.volumes.merge_layer(image, child, parent)  # recorded and committed there
        return parent

    def remove(self, name: str) -> None:
        """Delete a disk nothing uses (VMs, templates and thin images are listed if any)."""
        image = self.get(name)
        users = self.volumes.in_use(image)
        if users:
            raise InvalidState(f"disk {name!r} is in use by {', '.join(users)}; detach it first")
        self.volumes.drop([image], [])


class Isos:
    """ISO images on iso-class domains."""

    def __init__(self, ctx: Context, volumes: Volumes) -> None:
        self.ctx = ctx
        self.volumes = volumes

    def _domain(self, domain: str) -> tuple[model.StorageDomain, drivers.SupportsIso]:
        dom = self.ctx.store.find(model.StorageDomain, domain)
        if dom.domain_class != model.DomainClass.ISO:
            raise InvalidInput(f"storage domain {domain!r} is a {dom.domain_class.value} "
                               "domain; ISOs go to iso domains (storage add --class iso)")
        self.volumes.require_active(dom)
        base = self.volumes.driver(dom)
        if not isinstance(base, drivers.SupportsIso):
            raise InvalidInput(f"storage type {dom.type!r} cannot hold ISO images")
        base.connect(dom)
        return dom, base

    def upload(self, domain: str, path: str, name: str | None = None) -> str:
        """Copy an ISO file onto an iso-class domain; returns its name there."""
        src = Path(path)
        if not src.is_file():
            raise InvalidInput(f"ISO file {path!r} does not exist")
        # the name becomes a file name on the domain: never a path (the file's own
        # name is checked too, since it is the default)
        check_name("ISO", name or src.name)
        dom, drv = self._domain(domain)
        target = drv.import_iso(dom, src, name or src.name)
        self.ctx.event(dom.id, f"ISO {target.name} uploaded")
        return str(target.name)

    def list(self, domain: str) -> builtins.list[str]:
        """The ISO images on an iso-class domain."""
        dom, drv = self._domain(domain)
        return drv.list_isos(dom)

    def media_path(self, ref: str) -> str:
        """``iso:DOMAIN/NAME`` -> the ISO's path on this host; anything else is a path."""
        if not ref.startswith("iso:"):
            return ref
        domain, sep, name = ref[4:].partition("/")
        if not sep or not name:
            raise InvalidInput(f"CD reference {ref!r} is not iso:DOMAIN/NAME")
        # NAME is a file name on the domain; ``iso:DOM/../../etc/shadow`` is no ISO
        check_name("ISO", name)
        dom, drv = self._domain(domain)
        return str(drv.iso_path(dom, name))
