"""Images and their volume chains, in VDSM's crash-safe order.

Every volume is made through :meth:`Volumes.add_volume`: recorded *illegal*
first (state store, then the metadata on the storage), then created, then
marked legal. A failure removes the file and the record again; a process
killed in between leaves an illegal volume that ``storage verify`` reports and
``storage repair`` removes, never a file nobody knows about.

Every operation that deletes, merges or resizes records its
:class:`~virtplane.model.Intent` with the image first (in the same transaction
as the records it removes), then touches files, then commits and clears it:
removal (disks, VMs, templates), merge (disk merge, snapshot delete), revert,
extend. :meth:`Volumes.finish` carries an intent through from wherever it is,
so the operation itself and ``storage repair`` after a killed process run the
same code. Images made for a VM or template that is not stored yet carry a
``create`` intent until the owner's record is stored, in the same transaction
(:meth:`Volumes.commit_created`): a creation killed in between is rolled back.

Another engine may use the same domain (its own state store, the same storage).
Every change of a chain (a new volume, merge, revert, extend, removal, any
metadata write) runs under the domain's metadata lock (:meth:`Volumes.changing`,
when the driver has one: ``drivers.SupportsMetadataLock``) and first compares
the chain on the storage with this engine's; when they differ, the change is
refused with :class:`ChainConflict` before any file is touched, instead of
forking the chain. ``storage repair`` alone writes the store's chains back
without comparing (:meth:`Volumes.trusting_store`).

:class:`Volumes` is put together from one module per part:
:mod:`~virtplane.services.volume_base` (context, drivers, the Active check, sizes),
:mod:`~virtplane.services.chain_locks` (the metadata lock and chain comparison),
:mod:`~virtplane.services.image_owners` (owners and users of images),
:mod:`~virtplane.services.volume_chains` (adding and removing volumes),
:mod:`~virtplane.services.volume_intents` (intents: removal, merge, revert, extend)
and :mod:`~virtplane.services.vm_disks` (the images of VM disks). This module
re-exports what other modules import from it.
"""

from __future__ import annotations

from virtplane.services.chain_locks import ChainConflict
from virtplane.services.image_owners import MENTION_LIMIT
from virtplane.services.vm_disks import VmDisksMixin
from virtplane.services.volume_base import (
    ADMIN_DEACTIVATED,
    MAX_SIZE,
    Maker,
    check_size,
    illegal_volumes,
    unsupported,
)
from virtplane.services.volume_intents import VolumeIntentsMixin

__all__ = ["ADMIN_DEACTIVATED", "ChainConflict", "MAX_SIZE", "MENTION_LIMIT", "Maker",
           "Volumes", "check_size", "illegal_volumes", "unsupported"]


class Volumes(VolumeIntentsMixin, VmDisksMixin):
    """Images, volume chains and who uses them."""
