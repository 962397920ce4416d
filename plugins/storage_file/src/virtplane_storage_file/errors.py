"""The file domains' own error (re-exported by :mod:`virtplane_storage_file.filedomain`)."""

from __future__ import annotations

from virtplane.errors import VirtplaneError


class StorageError(VirtplaneError):
    """A storage operation failed (the message says which and why)."""
