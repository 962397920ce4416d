"""Volume chains of a file domain: creating, copying, importing, resizing, merging and
deleting volumes with qemu-img, and the backing file names qcow2 layers carry."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from virtplane.errors import NotFound, VirtplaneError
from virtplane_storage_file.confinement import confined, require_uuid
from virtplane_storage_file.errors import StorageError
from virtplane_storage_file.locking import LockingMixin
from virtplane_storage_file.qcow2 import check_backing, read_header
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
        inside the domain, or whose qcow2 header names another backing file than the
        metadata's parent (or any external data file): qemu-img opens every backing
        file of a chain by the name in its header and follows links, so a volume
        replaced by a link, or a header rewritten to name ``/etc/shadow`` or
        ``json:{...}``, would make it read a file outside the domain (and a folder or
        a missing file gives a confusing qemu-img error). A layer over a template is
        checked down the template's chain, as the template's metadata records it."""
        by_id = {v.id: v for v in image.volumes}
        for vol in image.volumes:
            path = self._volume_file(domain, image, vol)
            if vol.format.value == "qcow2":
                check_backing(path, self.backing_name(image, vol)
                              if vol.parent_id is not None else None,
                              self._lower_names(image, vol, by_id))
            if vol.parent_id is not None and vol.base_image_id \
                    and vol.base_image_id != image.id:
                self._base_format(domain, image, vol)

    def _lower_names(self, image: Image, volume: Volume,
                     by_id: dict[str, Volume]) -> tuple[str, ...]:
        """The backing names of the layers below ``volume``'s parent in its image's
        chain (what a finished rebase onto them writes), the template's layer included."""
        names: list[str] = []
        parent = by_id.get(volume.parent_id or "")
        while parent is not None and parent.parent_id is not None and len(names) < len(by_id):
            names.append(self.backing_name(image, parent))
            parent = by_id.get(parent.parent_id)
        return tuple(names)

    def _base_format(self, domain: StorageDomain, image: Image, volume: Volume) -> str:
        """The format of a layer's parent in a template's image, from the template's
        metadata (never probed: a raw volume may hold anything a guest wrote, a qcow2
        header too), after checking that parent and every layer below it.

        :raises StorageError: the template's metadata does not list the parent, or a
            layer of its chain fails the checks of :meth:`_chain_files`.
        """
        assert volume.parent_id is not None and volume.base_image_id is not None
        base_id, want = volume.base_image_id, volume.parent_id
        data = cast("_ReadsImages", self).read_image(domain, base_id)
        if data is None:
            raise NotFound(f"template image {base_id} of volume {volume.id} has no "
                           "metadata on storage domain " f"{domain.name!r}")
        layers = {v["id"]: v for v in data["volumes"]}
        found = None
        for _ in range(len(layers)):
            layer = layers.get(want)
            if layer is None:
                raise StorageError(f"template image {base_id}: its metadata lists no volume "
                                   f"{want} (the parent of volume {volume.id}); refusing "
                                   "the chain")
            fmt = layer.get("format")
            if fmt not in ("raw", "qcow2"):
                raise StorageError(f"template image {base_id}: volume {want} has format "
                                   f"{fmt!r}, not 'raw' or 'qcow2'; refusing the chain")
            found = found or fmt
            path = confined(self.root(domain), "images", base_id, want)
            _regular(path)
            parent = layer.get("parent_id")
            if parent is not None and layer.get("base_image_id") not in (None, base_id):
                raise StorageError(f"template image {base_id}: volume {want} lies over "
                                   "another template; refusing the chain")
            if fmt == "qcow2":
                check_backing(path, require_uuid(parent, "parent_id", f"volume {want}")
                              if parent is not None else None)
            if parent is None:
                return str(found)
            want = parent
        raise StorageError(f"template image {base_id}: its volumes' parents form a loop; "
                           "refusing the chain")

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
            _regular(parent)
            if not any(v.id == volume.parent_id for v in image.volumes) \
                    and not volume.base_image_id:
                raise NotFound(f"backing volume {parent} is not in image {image.id}")
            # the parent's format is in the model when it is in this image; a template's
            # volume (another image) is read from the template's metadata, its chain
            # checked on the way
            known = next((v.format.value for v in image.volumes if v.id == volume.parent_id
                          and not volume.base_image_id), None)
            # -u and the size: qemu-img writes the header without opening the chain
            # below (every use of the chain checks it first: _chain_files), so a
            # snapshot costs the same at any depth
            args += ["-u", "-b", self.backing_name(image, volume), "-F",
                     known or self._base_format(domain, image, volume)]
        elif volume.allocation.value == "preallocated":
            self.require_space(domain, volume.size_bytes, f"preallocated volume {volume.id}")
            args += ["-o", "preallocation=falloc"]
        args.append(self.create_target(domain, image, volume))
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
            qemu_img("convert", "-q", "-f", src.format.value, "-O", dst.format.value,
                     str(self._volume_file(domain, src_image, src)), str(target))
        except StorageError:
            target.unlink(missing_ok=True)
            raise

    @staticmethod
    def image_file_size(src: str) -> int:
        """The virtual size of an image file (any format qemu-img reads, standalone)."""
        _standalone(src)
        size: int = json.loads(qemu_img("info", "--output=json", src))["virtual-size"]
        return size

    def import_volume(self, domain: StorageDomain, image: Image, volume: Volume,
                      src: str) -> None:
        """Fill a new volume from an image file (any format qemu-img reads)."""
        target = self.volume_path(domain, image, volume)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.require_space(domain, 0, f"importing {src}")
        _standalone(src)
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
        qemu_img("commit", "-q", "-f", child.format.value, "-d",
                 str(self._volume_file(domain, image, child)))
        for v in image.volumes:
            if v.parent_id == child.id:
                # relative backing name, as create_volume writes it
                base = require_uuid(parent.id, "parent id", f"volume {v.id}")
                qemu_img("rebase", "-q", "-u", "-f", v.format.value, "-b", base, "-F",
                         parent.format.value,
                         str(self._volume_file(domain, image, v)))

    def volume_source(self, domain: StorageDomain, image: Image, volume: Volume) -> dict[str, Any]:
        # QEMU opens the chain by the names in its headers, as qemu-img does: a VM is
        # not handed a tampered one. Where the volume does not exist (yet, or any more)
        # this stays what it is for every caller, its path
        if os.path.lexists(self.volume_path(domain, image, volume)):
            self._chain_files(domain, image)
        return {"type": "file", "source": {"@file": str(self.volume_path(domain, image, volume))}}



class _ReadsImages(Protocol):
    def read_image(self, domain: StorageDomain, image_id: str) -> dict[str, Any] | None: ...


def _regular(path: Path) -> None:
    """``path`` is a regular file (not a link, a folder or a device), else an error."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise NotFound(f"backing volume {path} does not exist") from None
    if not stat.S_ISREG(st.st_mode):
        raise StorageError(f"{path} is not a regular file; refusing to work on a chain "
                           "through it")


def _standalone(src: str) -> None:
    """Refuse to import a qcow2 file that names a backing or external data file:
    qemu-img would copy what that name points at (any file this host can read) into
    the new volume. A chain is imported flattened (``qemu-img convert`` it first)."""
    path = Path(src)
    if not path.is_file():
        return  # not a local file (a URL qemu-img reads, or missing: qemu-img says so)
    header = read_header(path, follow=True)
    if header.backing is not None or header.data_file is not None:
        what = "a backing file" if header.backing is not None else "an external data file"
        raise StorageError(f"{src} is a qcow2 layer that names {what}; import a standalone "
                           "image (flatten it first: qemu-img convert -O qcow2 SRC NEW)")

