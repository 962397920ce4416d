"""What every file-based domain type shares: layout, metadata on storage, qemu-img.

Layout (VDSM's file domains)::

    <mount point>/<domain uuid>/dom_md/metadata.json       the domain
    <mount point>/<domain uuid>/images/<image uuid>/image.json   an image and its chain
    <mount point>/<domain uuid>/images/<image uuid>/<volume uuid>

The metadata lives on the storage, so another engine can attach the domain and
find its images; the state store is a cache of it. Every metadata file is a
JSON document ``{"data": ..., "sha256": ...}`` written to a temporary file,
flushed and renamed into place: a crash leaves the old or the new file, never a
mix, and ``verify`` finds a file whose checksum does not match.

Metadata on shared storage is **untrusted input**: anyone who can write the
export can rewrite it and recompute the checksum (which guards against
corruption, not against a writer). So:

* every id read from storage must be a canonical UUID, and an image's id must
  match its folder and its volumes' ``image_id`` (:func:`checked_image`,
  :func:`require_uuid`); otherwise the metadata is refused with an error naming
  the file and the field;
* every path made from ids goes through :func:`confined`: one plain name per
  component, no symlink on the way (virtplane never makes one inside a domain),
  and the resolved result inside the domain's folder;
* temporary files are created ``O_EXCL | O_NOFOLLOW`` (a planted symlink is
  never written through) and metadata is read ``O_NOFOLLOW``;
* metadata writes hold ``dom_md/metadata.lock`` (``flock``) for a bounded time
  (:meth:`FileDomain.metadata_lock`), so two engines on one domain take turns.

The parts, one module each: :mod:`~virtplane_storage_file.metadata` (the JSON
files), :mod:`~virtplane_storage_file.confinement` (untrusted ids and paths),
:mod:`~virtplane_storage_file.locking` (the metadata lock),
:mod:`~virtplane_storage_file.layout` (the folders made from ids),
:mod:`~virtplane_storage_file.domains` (domain and image metadata, verify),
:mod:`~virtplane_storage_file.isos`, :mod:`~virtplane_storage_file.volumes` (volume
chains) and :mod:`~virtplane_storage_file.qemuimg`; :class:`FileDomain` puts them
together, and this module re-exports what other modules import from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from virtplane.errors import InvalidInput
from virtplane_storage_file.confinement import checked_image, confined, require_uuid
from virtplane_storage_file.domains import DomainsMixin
from virtplane_storage_file.errors import (
    StorageError,
    StorageInputError,
    StorageNotReady,
    StorageUnreachable,
)
from virtplane_storage_file.isos import IsosMixin
from virtplane_storage_file.layout import ISO_IMAGE_ID
from virtplane_storage_file.locking import LOCK_NAME, LOCK_TIMEOUT
from virtplane_storage_file.metadata import METADATA_VERSION, read_json, write_json
from virtplane_storage_file.qemuimg import qemu_img
from virtplane_storage_file.volumes import VolumesMixin

if TYPE_CHECKING:
    from virtplane.model import StorageDomain

__all__ = ["ISO_IMAGE_ID", "LOCK_NAME", "LOCK_TIMEOUT", "METADATA_VERSION", "FileDomain",
           "StorageError", "StorageInputError", "StorageNotReady", "StorageUnreachable",
           "checked_image", "confined", "qemu_img", "read_json", "require",
           "require_uuid", "write_json"]


class FileDomain(VolumesMixin, DomainsMixin, IsosMixin):
    """Base of the file-based drivers; subclasses say where the domain's folder is."""

    VIRTPLANE_PLUGIN_API = ">=2.0,<3"
    name = "file"


def require(domain: StorageDomain, key: str, what: str) -> str:
    value = domain.connection.get(key)
    if not value:
        raise InvalidInput(f"{domain.type} domain {domain.name!r} needs connection.{key} "
                           f"({what}); got: {', '.join(sorted(domain.connection)) or 'nothing'}")
    return str(value)
