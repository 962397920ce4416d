"""Volume chains: a new volume made in VDSM's crash-safe order (recorded illegal,
created, marked legal), a leaf deleted, an image copied or overlaid on another."""

from __future__ import annotations

from virtplane import drivers, model
from virtplane.errors import VirtplaneError
from virtplane.services.chain_locks import ChainLocksMixin
from virtplane.services.volume_base import Maker, unsupported


class VolumeChainsMixin(ChainLocksMixin):
    """Adding and removing the volumes of a chain."""

    # ---------------------------------------------------------------- volumes

    def add_volume(self, dom: model.StorageDomain, image: model.Image, vol: model.Volume,
                   make: Maker | None = None) -> None:
        """Make ``vol`` the new leaf of ``image`` (or its first volume), in VDSM's order
        (see the module docstring), under the domain's metadata lock (:meth:`changing`)."""
        with self.changing(image, dom):
            self._add_volume(dom, image, vol, make)

    def _add_volume(self, dom: model.StorageDomain, image: model.Image, vol: model.Volume,
                    make: Maker | None) -> None:
        drv = self.driver(dom)
        first = not image.volumes
        vol.legal = False
        image.volumes.append(vol)
        try:
            if first:
                self.ctx.store.add(image)
            else:
                self.ctx.store.update(image)
            self.sync_image(image, dom)
        except BaseException:
            self._forget_volume(dom, image, vol, first)
            raise
        try:
            (make or drv.create_volume)(dom, image, vol)
        except BaseException as exc:
            try:
                drv.delete_volume(dom, image, vol)
            except VirtplaneError as cleanup:
                # cannot tell what is left on the storage: keep the illegal record for repair
                self.ctx.event(dom.id, f"volume {vol.id} of image {image.id} left illegal; "
                               f"removing it failed: {cleanup}", "error")
                # the creation's own error is the one raised: a driver's message (an
                # orphan LUN's id ...) is what the user must see; the rollback's failure
                # is appended to it
                _append(exc, f"removing volume {vol.id} again failed too ({cleanup}); its "
                             "record is kept illegal for `virtplane storage repair`")
                raise exc from cleanup
            self._forget_volume(dom, image, vol, first)
            raise
        vol.legal = True
        self.ctx.store.update(image)
        self.sync_image(image, dom)

    def _forget_volume(self, dom: model.StorageDomain, image: model.Image,
                       vol: model.Volume, whole_image: bool) -> None:
        image.volumes = [v for v in image.volumes if v.id != vol.id]
        if whole_image:
            # files first: a kill in between leaves a record repair finds, never a folder
            # nobody knows about; a storage that refuses the deletion (unreachable) has
            # its error raised, and the record goes anyway, as it always did
            try:
                self.driver(dom).delete_image(dom, image)
            finally:
                if self.ctx.store.has(model.Image, image.id):
                    self.ctx.store.remove(model.Image, image.id)
            return
        self.ctx.store.update(image)
        self.sync_image(image, dom)

    def remove_leaf(self, dom: model.StorageDomain, image: model.Image,
                    vol: model.Volume) -> None:
        """Delete a leaf volume that nothing uses and drop it from the image's chain."""
        with self.changing(image, dom):
            self.driver(dom).delete_volume(dom, image, vol)
            self._forget_volume(dom, image, vol, whole_image=len(image.volumes) == 1)

    def copy_into(self, dom: model.StorageDomain, src: model.Image, image: model.Image) -> None:
        """``image`` gets one standalone qcow2 volume: ``src``'s chain collapsed."""
        vol = model.Volume(image_id=image.id, format=model.VolumeFormat.QCOW2,
                           size_bytes=src.volumes[-1].size_bytes)
        copier = self.driver(dom)
        if not isinstance(copier, drivers.SupportsCopy):
            raise unsupported(dom.type, "copy volumes", "copy_volume()")
        self.add_volume(dom, image, vol,
                        lambda d, i, v: copier.copy_volume(d, src, src.volumes[-1], i, v))

    def overlay_onto(self, dom: model.StorageDomain, base: model.Image,
                     image: model.Image) -> None:
        """``image`` gets one qcow2 overlay on ``base``'s leaf (a thin VM on a template)."""
        self.add_volume(dom, image, model.Volume(
            image_id=image.id, format=model.VolumeFormat.QCOW2,
            size_bytes=base.volumes[-1].size_bytes, parent_id=base.volumes[-1].id,
            base_image_id=base.id))


def _append(exc: BaseException, text: str) -> None:
    """Add ``text`` to ``exc``'s message (a one-argument error: what the CLI and the API
    show), or as a note to any other exception."""
    if isinstance(exc, VirtplaneError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        exc.args = (f"{exc.args[0]}; {text}",)
    else:
        exc.add_note(text)
