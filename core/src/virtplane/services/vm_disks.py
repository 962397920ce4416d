"""The disks of a VM on storage domains: a new disk's image, how a disk reaches the
hypervisor, and a VM's managed disks with their images and domains."""

from __future__ import annotations

from typing import Any

from virtplane import model
from virtplane.errors import InvalidState
from virtplane.services.volume_base import check_size
from virtplane.services.volume_chains import VolumeChainsMixin


class VmDisksMixin(VolumeChainsMixin):
    """Images of VM disks."""

    # ------------------------------------------------------------ VM disks

    def new_disk(self, vm_id: str, disk: model.DiskSpec) -> model.Image | None:
        """Create the image of a VM disk that asks for one (a size on a domain)."""
        if disk.domain_id is None or disk.image_id is not None or disk.path:
            return None
        check_size(disk.size_bytes, f"disk {disk.name!r}")
        dom = self.ctx.store.get(model.StorageDomain, disk.domain_id)
        self.require_active(dom)
        image = model.Image(domain_id=dom.id, description=f"{vm_id}/{disk.name}",
                            owner=f"vm:{vm_id}")
        if not self.ctx.store.has(model.Vm, vm_id):
            image.intent = model.Intent(op="create")  # cleared by commit_created
        vol = model.Volume(image_id=image.id, format=disk.format,
                           allocation=disk.allocation, size_bytes=disk.size_bytes)
        self.add_volume(dom, image, vol)
        disk.image_id = image.id
        return image

    def disk_source(self, disk: model.DiskSpec) -> dict[str, Any]:
        """How a VM disk reaches the hypervisor (the storage driver's ``volume_source``)."""
        if disk.path:
            return {"type": "file", "source": {"@file": disk.path}}
        if disk.domain_id is None or disk.image_id is None:
            return {"type": "file", "source": {}}
        dom = self.ctx.store.get(model.StorageDomain, disk.domain_id)
        image = self.ctx.store.get(model.Image, disk.image_id)
        bad = [v.id for v in image.volumes if not v.legal]
        if bad:
            raise InvalidState(f"disk {disk.name!r}: volume {bad[0]} of image {image.id} is "
                               "illegal (an operation on it did not finish); run `virtplane "
                               f"storage repair {dom.name}` first")
        self.require_active(dom)
        return self.driver(dom).volume_source(dom, image, image.volumes[-1])

    def managed(self, vm: model.Vm) -> list[tuple[model.DiskSpec, model.Image,
                                                  model.StorageDomain]]:
        """A VM's disks that live on storage domains, with their image and domain."""
        out = []
        for disk in vm.spec.disks:
            if disk.image_id and disk.domain_id:
                out.append((disk, self.ctx.store.get(model.Image, disk.image_id),
                            self.ctx.store.get(model.StorageDomain, disk.domain_id)))
        return out
