"""Several engines on one storage domain: every change of a chain holds the domain's
metadata lock and first compares the chain on the storage with this engine's
(:class:`ChainConflict` when another engine moved it); metadata writes go through
the same check."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import attrs

from virtplane import drivers, model
from virtplane.errors import InvalidState
from virtplane.services.volume_base import VolumesBase


class ChainConflict(InvalidState):
    """An image's volume chain on the storage is not the one this engine's state store
    has: another engine on the same domain changed it (or this engine was killed between
    a record and its metadata write). The change asked for is refused before it touches
    anything; the message names the image and what to do."""


def _chain(volumes: list[model.Volume]) -> str:
    return " -> ".join(v.id[:8] + ("" if v.legal else " (illegal)") for v in volumes) \
        or "no volumes"


class ChainLocksMixin(VolumesBase):
    """The metadata lock and the chain comparison around every change of a chain."""

    def sync_image(self, image: model.Image, dom: model.StorageDomain | None = None) -> None:
        """Write an image's metadata to its storage domain (the store is a cache of it).

        Never its intent: intents are this engine's journal, and metadata on shared
        storage is untrusted input (an intent planted there must not steer a repair).
        Called on its own (not inside a change), the chain on the storage is compared
        first (:meth:`changing`).
        """
        dom = dom or self.domain_of(image)
        drv = self.driver(dom)
        if isinstance(drv, drivers.SupportsImageMetadata):
            with self.changing(image, dom):
                drv.write_image_metadata(dom, image if image.intent is None
                                         else attrs.evolve(image, intent=None))

    # ------------------------------------------- several engines on one domain

    @contextmanager
    def trusting_store(self) -> Iterator[None]:
        """Changes in this block write the store's chains without comparing them with
        the storage's first (``storage repair``: the administrator's say-so that this
        engine's record is the one to keep). The metadata lock is still taken."""
        depth = getattr(self._local, "trust", 0)
        self._local.trust = depth + 1
        try:
            yield
        finally:
            self._local.trust = depth

    @contextmanager
    def changing(self, image: model.Image,
                 dom: model.StorageDomain | None = None) -> Iterator[None]:
        """Hold ``image``'s domain's metadata lock around a change of its chain; on
        entering (the outermost change of this image in this thread), first compare the
        chain on the storage with ``image``'s (this engine's record, before the change):
        :class:`ChainConflict` when another engine moved it. A no-op for drivers without
        a metadata lock (``drivers.SupportsMetadataLock``)."""
        dom = dom or self.domain_of(image)
        drv = self.driver(dom)
        if not isinstance(drv, drivers.SupportsMetadataLock):
            yield
            return
        held: set[str] | None = getattr(self._local, "images", None)
        if held is None:
            held = self._local.images = set()
        with drv.metadata_lock(dom):
            if image.id in held:
                yield
                return
            if not getattr(self._local, "trust", 0):
                self._compare(drv, dom, image)
            held.add(image.id)
            try:
                yield
            finally:
                held.discard(image.id)

    def _compare(self, drv: drivers.SupportsMetadataLock, dom: model.StorageDomain,
                 image: model.Image) -> None:
        """:class:`ChainConflict` unless the storage has ``image``'s chain (or, for an
        image with no volume yet, none)."""
        data = drv.read_image(dom, image.id)
        try:
            theirs = [] if data is None else model.structure(data, model.Image).volumes
        except Exception as exc:  # noqa: BLE001 - untrusted metadata: any structure error
            raise InvalidState(f"image {image.id} on storage domain {dom.name!r}: its "
                               f"metadata on the storage cannot be read ({exc}); nothing "
                               "was changed; see `virtplane storage verify "
                               f"{dom.name}`") from None
        if theirs == image.volumes:
            return
        name = f"disk {image.alias!r} (image {image.id})" if image.alias \
            else f"image {image.id}"
        raise ChainConflict(
            f"{name} on storage domain {dom.name!r}: its volume chain on the storage "
            f"({_chain(theirs) if data is not None else 'no metadata'}) is not the one this "
            f"engine's state store has ({_chain(image.volumes)}): another engine using the "
            "domain changed it (or an operation here was killed before writing it); "
            "nothing was changed. Re-read the domain's images before changing the disk "
            f"again: `virtplane storage detach {dom.name}`, then `virtplane storage attach "
            f"{dom.name} ...` (VMs using its disks must be removed first); if no other "
            f"engine uses the domain, `virtplane storage repair {dom.name}` writes this "
            "engine's chain back instead")
