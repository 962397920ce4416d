"""File-based storage domains for virtplane: drivers ``localfs``, ``posixfs`` and ``nfs``.

All three share :class:`~virtplane_storage_file.filedomain.FileDomain` (VDSM's
file-domain layout, metadata on the storage with checksums, qemu-img); they
differ in how the host reaches the folder: a local path, or a mount.
"""

from __future__ import annotations

from virtplane_storage_file.filedomain import (
    FileDomain,
    StorageError,
    StorageInputError,
    StorageNotReady,
    StorageUnreachable,
)
from virtplane_storage_file.localfs import LocalFs
from virtplane_storage_file.posixfs import Nfs, PosixFs

__all__ = ["FileDomain", "LocalFs", "Nfs", "PosixFs", "StorageError", "StorageInputError",
           "StorageNotReady", "StorageUnreachable"]
