"""``localfs``: a domain in a local folder (``connection = {"path": ...}``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from virtplane_storage_file.filedomain import FileDomain, StorageError, require

if TYPE_CHECKING:
    from virtplane.model import StorageDomain


class LocalFs(FileDomain):
    """The ``localfs`` storage driver."""

    name = "localfs"
    #: the connection fields, parsed and checked by the core (unknown keys refused)
    VIRTPLANE_CONNECTION = "virtplane_storage_file.connection:LocalFsConnection"

    def mount_point(self, domain: StorageDomain) -> Path:
        return Path(require(domain, "path", "a folder"))

    def connect(self, domain: StorageDomain) -> None:
        base = self.mount_point(domain)
        base.mkdir(parents=True, exist_ok=True)
        if not os.access(base, os.W_OK):
            raise StorageError(f"localfs folder {base} is not writable")
