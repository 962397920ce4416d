"""Volume chains of a file domain: creating, copying, importing, resizing, merging and
deleting volumes with qemu-img, and the backing file names qcow2 layers carry."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtplane.errors import NotFound, VirtplaneError
from virtplane_storage_file.confinement import require_uuid
from virtplane_storage_file.errors import StorageError
from virtplane_storage_file.locking import LockingMixin
from virtplane_storage_file.qemuimg import qemu_img

if TYPE_CHECKING:
    from virtplane.model import Image, StorageDomain, Volume


class VolumesMixin(LockingMixin):
    """The volumes of an image and the image's folder."""

    @staticmethod
    def backing_name(image: Image, volume: Volume) -> str:
        """The backing file name written into a qcow2 layer: relative to the layer's
        folder (as VDSM does), so it resolves the same through a local path, a mount
        or a network URL."""
        assert volume.parent_id is not None
        parent = require_uuid(volume.parent_id, "parent id", f"volume {volume.id}")
        if volume.base_image_id and volume.base_image_id != image.id:
            base = require_uuid(volume.base_image_id, "base image id", f"volume {volume.id}")
            return f"../{base}/{parent}"
        return parent

    def _chain_files(self, domain: StorageDomain, image: Image) -> None:
        """Refuse to run qemu-img on a chain one of whose files is not a regular file
        inside the domain: qemu-img opens every backing file of a chain and follows
        links, so a volume replaced by a link would make it read a file outside the
        domain (and a folder or a missing file gives a confusing qemu-img error)."""
        for vol in image.volumes:
            self._volume_file(domain, image, vol)
            if vol.parent_id is not None and vol.base_image_id:
                parent = self._parent_path(domain, image, vol)
                try:
                    st = os.lstat(parent)
                except FileNotFoundError:
                    raise NotFound(f"backing volume {parent} does not exist") from None
                if not stat.S_ISREG(st.st_mode):
                    raise StorageError(f"{parent} is not a regular file; refusing to work "
                                       "on a chain through it")

    def create_target(self, domain: StorageDomain, image: Image, volume: Volume) -> str:
        """Where qemu-img writes a new volume (a path; network drivers give a URL)."""
        return str(self.volume_path(domain, image, volume))

    def create_volume(self, domain: StorageDomain, image: Image, volume: Volume) -> None:
        path = self.volume_path(domain, image, volume)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._claim(path)
        args = ["create", "-q", "-f", volume.format.value]
        if volume.parent_id is not None:
            parent = self._parent_path(domain, image, volume)
            if not parent.exists():
                raise NotFound(f"backing volume {parent} does not exist")
            # qemu-img reads the whole backing chain (the new volume's file is ours)
            self._chain_files(domain, image)
            if not any(v.id == volume.parent_id for v in image.volumes) \
                    and not volume.base_image_id:
                raise NotFound(f"backing volume {parent} is not in image {image.id}")
            # the parent's format is in the model when it is in this image; a template's
            # volume (another image) is asked of qemu-img
            known = next((v.format.value for v in image.volumes if v.id == volume.parent_id
                          and not volume.base_image_id), None)
            args += ["-b", self.backing_name(image, volume), "-F", known or _format_of(parent)]
        elif volume.allocation.value == "preallocated":
            self.require_space(domain, volume.size_bytes, f"preallocated volume {volume.id}")
            args += ["-o", "preallocation=falloc"]
        args.append(self.create_target(domain, image, volume))
        if volume.parent_id is None:
            args.append(str(volume.size_bytes))
        try:
            qemu_img(*args)
        except StorageError:
            path.unlink(missing_ok=True)
            raise

    def copy_volume(self, domain: StorageDomain, src_image: Image, src: Volume,
                    dst_image: Image, dst: Volume) -> None:
        """Copy ``src`` (with everything under it) into a new, standalone ``dst``."""
        target = self.volume_path(domain, dst_image, dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._chain_files(domain, src_image)
        self._claim(target)
        try:
            qemu_img("convert", "-q", "-O", dst.format.value,
                     str(self._volume_file(domain, src_image, src)), str(target))
        except StorageError:
            target.unlink(missing_ok=True)
            raise

    @staticmethod
    def image_file_size(src: str) -> int:
        """The virtual size of an image file (any format qemu-img reads)."""
        size: int = json.loads(qemu_img("info", "--output=json", src))["virtual-size"]
        return size

    def import_volume(self, domain: StorageDomain, image: Image, volume: Volume,
                      src: str) -> None:
        """Fill a new volume from an image file (any format qemu-img reads)."""
        target = self.volume_path(domain, image, volume)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.require_space(domain, 0, f"importing {src}")
        self._claim(target)
        try:
            qemu_img("convert", "-q", "-O", volume.format.value, src, str(target))
        except VirtplaneError:
            target.unlink(missing_ok=True)
            raise

    def resize_volume(self, domain: StorageDomain, image: Image, volume: Volume,
                      size: int) -> None:
        self._chain_files(domain, image)
        qemu_img("resize", "-q", "-f", volume.format.value,
                 str(self._volume_file(domain, image, volume)), str(size))

    def delete_volume(self, domain: StorageDomain, image: Image, volume: Volume) -> None:
        # unlink removes a link itself, never its target; volume_path refuses ids that
        # are not UUIDs and folders that are links
        self.volume_path(domain, image, volume).unlink(missing_ok=True)

    def delete_image(self, domain: StorageDomain, image: Image) -> None:
        import shutil

        folder = self.image_dir(domain, image.id)
        with self.metadata_lock(domain):
            if folder.exists():
                # the folder is no link (image_dir); rmtree never follows links inside
                shutil.rmtree(folder)

    def merge_volume(self, domain: StorageDomain, image: Image, child: Volume,
                     parent: Volume) -> None:
        """Commit ``child`` into ``parent`` (same image) and rebase the layer above it."""
        self._chain_files(domain, image)
        self._volume_file(domain, image, parent)
        qemu_img("commit", "-q", "-d", str(self._volume_file(domain, image, child)))
        for v in image.volumes:
            if v.parent_id == child.id:
                # relative backing name, as create_volume writes it
                base = require_uuid(parent.id, "parent id", f"volume {v.id}")
                qemu_img("rebase", "-q", "-u", "-b", base, "-F", parent.format.value,
                         str(self._volume_file(domain, image, v)))

    def volume_source(self, domain: StorageDomain, image: Image, volume: Volume) -> dict[str, Any]:
        return {"type": "file", "source": {"@file": str(self.volume_path(domain, image, volume))}}


def _format_of(path: Path) -> str:
    # -U: the image may be in use by a running guest (its leaf holds the lock)
    out = qemu_img("info", "-U", "--output=json", str(path))
    fmt: str = json.loads(out)["format"]
    return fmt
