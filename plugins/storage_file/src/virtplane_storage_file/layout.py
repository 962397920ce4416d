"""Where a file domain keeps things: the folder of a domain, its images and volumes.

:class:`FileDomainCore` is what every part of
:class:`~virtplane_storage_file.filedomain.FileDomain` builds on: the methods a
subclass overrides (where the domain's folder is, connecting), the paths made from
ids (each through :func:`~virtplane_storage_file.confinement.confined`) and the
free-space check.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtplane.errors import NoSpace, NotFound
from virtplane_storage_file.confinement import _fresh, confined, require_uuid
from virtplane_storage_file.errors import StorageError

if TYPE_CHECKING:
    from virtplane.model import Image, StorageDomain, Volume

#: the image folder of an ISO domain (VDSM's well-known "blank" image id)
ISO_IMAGE_ID = "11111111-1111-1111-1111-111111111111"


class FileDomainCore:
    """Layout of a file domain: the folders and files made from its ids."""

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings
        # locks this thread holds: lock file -> (fd, depth), so nested writes re-enter
        self._held = threading.local()

    # ------------------------------------------------------- to override

    def mount_point(self, domain: StorageDomain) -> Path:
        """The folder holding ``<domain uuid>/`` on this host."""
        raise NotImplementedError

    def connect(self, domain: StorageDomain) -> None:
        raise NotImplementedError

    def disconnect(self, domain: StorageDomain) -> None:
        """Release the host's connection (unmount); a no-op for local folders."""

    # ------------------------------------------------------------ layout

    def root(self, domain: StorageDomain) -> Path:
        """``<mount point>/<domain uuid>``; the id must be a UUID and the folder no link."""
        dom_id = require_uuid(domain.id, "id", f"storage domain {domain.name!r}")
        return confined(self.mount_point(domain), dom_id)

    def image_dir(self, domain: StorageDomain, image_id: str) -> Path:
        require_uuid(image_id, "image id", f"storage domain {domain.name!r}")
        return confined(self.root(domain), "images", image_id)

    def volume_path(self, domain: StorageDomain, image: Image, volume: Volume | str) -> Path:
        vol_id = volume if isinstance(volume, str) else volume.id
        require_uuid(image.id, "image id", f"storage domain {domain.name!r}")
        require_uuid(vol_id, "volume id", f"image {image.id}")
        return confined(self.root(domain), "images", image.id, vol_id)

    def _parent_path(self, domain: StorageDomain, image: Image, volume: Volume) -> Path:
        """A volume's backing file: in its own image, or a template's image (base_image_id)."""
        assert volume.parent_id is not None
        image_id = require_uuid(volume.base_image_id or image.id, "base image id",
                                f"volume {volume.id}")
        parent = require_uuid(volume.parent_id, "parent id", f"volume {volume.id}")
        return confined(self.root(domain), "images", image_id, parent)

    @staticmethod
    def _claim(path: Path) -> None:
        """Create a new volume's file ourselves (``O_EXCL | O_NOFOLLOW``, after removing a
        link planted under its name) before qemu-img, which follows links, writes it:
        the volume's id is in the metadata before the file exists (recorded illegal
        first), so a writer of the export could otherwise plant a link there in time."""
        try:
            os.close(_fresh(path))
        except OSError as exc:
            raise StorageError(f"cannot create {path}: {exc.strerror or exc}") from None

    def _volume_file(self, domain: StorageDomain, image: Image, volume: Volume) -> Path:
        """The path of an existing volume, for commands that follow links (qemu-img): it
        must be a regular file, not a link or a device someone put in its place."""
        path = self.volume_path(domain, image, volume)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise NotFound(f"volume file {path} does not exist") from None
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(f"{path} is not a regular file; refusing to work on it")
        return path

    def free_bytes(self, domain: StorageDomain) -> int:
        import shutil

        return shutil.disk_usage(self.root(domain)).free

    def require_space(self, domain: StorageDomain, needed: int, what: str) -> None:
        """NoSpace naming what needed how much, unless the domain has room for it."""
        free = self.free_bytes(domain)
        if needed > free:
            raise NoSpace(f"storage domain {domain.name!r} has {_mib(free)} free; "
                          f"{what} needs {_mib(needed)}")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"
