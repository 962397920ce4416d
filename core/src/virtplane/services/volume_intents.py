"""Intents, the crash-safety journal: an operation that removes, merges, reverts or
extends records its intent with the image first, then touches files, then commits
and clears it; :meth:`VolumeIntentsMixin.finish` carries an intent through from
wherever a (maybe killed) run left it."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from virtplane import drivers, faults, model
from virtplane.errors import InvalidState, VirtplaneError
from virtplane.services.image_owners import ImageOwnersMixin
from virtplane.services.volume_base import unsupported
from virtplane.services.volume_chains import VolumeChainsMixin


class VolumeIntentsMixin(VolumeChainsMixin, ImageOwnersMixin):
    """Crash-safe removal, merge, revert and extend, and creations rolled back."""

    def drop(self, images: list[model.Image],
             removals: list[tuple[type[Any], str]],
             updates: list[Any] | None = None) -> None:
        """Remove ``images`` from the store and their storage, and the objects in
        ``removals``, crash-safe: one transaction removes the objects, stores ``updates``
        and records each image's ``remove`` intent; then each image's files go, then its
        record (a kill in between leaves an intent ``storage repair`` finishes). Every
        image's chain is compared with the storage's first (:meth:`changing`): nothing is
        removed when another engine moved one."""
        if not images and not updates and len(removals) == 1:
            self.ctx.store.remove(*removals[0])  # one statement, atomic by itself
            faults.point("intent recorded")
            return
        with ExitStack() as held:
            for image in sorted(images, key=lambda i: i.domain_id):  # one lock order
                held.enter_context(self.changing(image))
            with self.ctx.store.transaction():
                for cls, obj_id in removals:
                    self.ctx.store.remove(cls, obj_id)
                for obj in updates or []:
                    self.ctx.store.update(obj)
                for image in images:
                    image.intent = model.Intent(op="remove")
                    self.ctx.store.update(image)
            faults.point("intent recorded")
            for image in images:
                self.finish(image)

    # ---------------------------------------------------- intents (crash safety)

    def record(self, images: list[model.Image]) -> None:
        """Store ``images`` with their intents in one transaction (intents live in the
        state store only: the metadata on the storage is unchanged until a commit),
        once every image's chain on the storage is found to be this engine's
        (:meth:`changing`; :meth:`finish` compares again)."""
        with ExitStack() as held:
            for image in sorted(images, key=lambda i: i.domain_id):  # one lock order
                held.enter_context(self.changing(image))
            self._store_intents(images)

    def _store_intents(self, images: list[model.Image]) -> None:
        with self.ctx.store.transaction():
            for image in images:
                self.ctx.store.update(image)
        faults.point("intent recorded")

    def merge_layer(self, image: model.Image, child: model.Volume, parent: model.Volume,
                    snapshot: str | None = None) -> None:
        """Commit ``child`` into ``parent`` (the layer above it, if any, then sits on
        ``parent``), crash-safe; ``snapshot``: the VM snapshot the merge deletes once
        every image with an intent for it is done. Nothing to record afterwards."""
        with self.changing(image):
            image.intent = model.Intent(op="merge", child=child.id, parent=parent.id,
                                        snapshot=snapshot)
            self.record([image])
            self.finish_or_roll_back(image)

    def finish_or_roll_back(self, image: model.Image) -> None:
        """:meth:`finish`; when a merge or extend fails before anything was committed
        (``qemu-img`` refused), the intent is dropped again: the chain is as it was (a
        commit into the parent left it readable through the child, unchanged)."""
        try:
            self.finish(image)
        except VirtplaneError:
            intent = image.intent
            if intent is not None and intent.op in ("merge", "extend") and not intent.doomed:
                image.intent = None
                self._store_intents([image])
            raise

    def commit_created(self, images: list[model.Image], owner: Any) -> None:
        """Store ``owner`` (a new VM or template) and clear the ``create`` intents of the
        images made for it, in one transaction (their metadata never held the intent:
        nothing to write on the storage)."""
        if not images:  # one statement, atomic by itself
            self.ctx.store.add(owner)
            faults.point("owner recorded")
            return
        with self.ctx.store.transaction():
            self.ctx.store.add(owner)
            for image in images:
                image.intent = None
                self.ctx.store.update(image)
        faults.point("owner recorded")

    def pending(self, dom: model.StorageDomain) -> list[str]:
        """One line per unfinished operation on a domain (for ``storage verify``)."""
        return [f"image {i.id}: {i.intent.op} did not finish; `virtplane storage repair` "
                "finishes it" for i in self.images_of(dom) if i.intent is not None]

    def finish(self, image: model.Image) -> str:
        """Carry ``image``'s intent through from wherever a (maybe killed) run left it;
        returns what was done. Each step is safe to repeat.

        :raises VirtplaneError: a step failed; the intent stays, for a later repair.
        """
        intent = image.intent
        if intent is None:
            return ""
        dom = self.domain_of(image)
        with self.changing(image, dom):
            return self._finish(dom, image, intent)

    def _finish(self, dom: model.StorageDomain, image: model.Image,
                intent: model.Intent) -> str:
        drv = self.driver(dom)
        if intent.op == "create":
            kind, owner_id = self.owner_of(image)
            cls = {"vm": model.Vm, "template": model.Template}.get(kind)
            if cls is not None and (owner_id is None or not self.ctx.store.has(cls, owner_id)):
                intent.op = "remove"  # the owner was never recorded: roll the creation back
        if intent.op == "remove":
            drv.delete_image(dom, image)
            self.ctx.store.remove(model.Image, image.id)
            return f"image {image.id}: removed"
        if intent.op == "merge":
            self._finish_merge(dom, image, intent)
        elif intent.op == "revert":
            self._finish_revert(dom, image, intent)
        elif intent.op == "extend":
            leaf = image.volumes[-1]
            resizer = drv
            if not isinstance(resizer, drivers.SupportsResize):
                raise unsupported(dom.type, "resize volumes", "resize_volume()")
            resizer.resize_volume(dom, image, leaf, intent.size_bytes)
            leaf.size_bytes = intent.size_bytes
        elif intent.op not in ("drop", "create"):
            raise InvalidState(f"image {image.id}: unknown intent {intent.op!r}")
        for vol in intent.doomed:
            drv.delete_volume(dom, image, vol)
        what = intent.op
        image.intent = None
        with self.ctx.store.transaction():
            self.ctx.store.update(image)
            # another image still busy with the snapshot names it in its intent
            if intent.snapshot and not any(
                    i.intent is not None and i.intent.snapshot == intent.snapshot
                    for i in self.ctx.store.mentioning(model.Image, {intent.snapshot},
                                                       exclude_id=image.id)):
                self._snapshot_done(what, intent.snapshot)
        faults.point("intent cleared")
        self.sync_image(image, dom)
        return f"image {image.id}: {what} finished"

    def _finish_merge(self, dom: model.StorageDomain, image: model.Image,
                      intent: model.Intent) -> None:
        """Merge phase: commit the child (again, if a kill came first: committing the
        same layer twice gives the same parent), then one transaction takes the child
        out of the chain, points snapshots at the parent and leaves its file doomed."""
        child = next((v for v in image.volumes if v.id == intent.child), None)
        if child is None:
            return  # committed already: only the doomed file is left
        parent = next(v for v in image.volumes if v.id == intent.parent)
        self.driver(dom).merge_volume(dom, image, child, parent)
        for v in image.volumes:
            if v.parent_id == child.id:
                v.parent_id = parent.id
        image.volumes = [v for v in image.volumes if v.id != child.id]
        intent.doomed.append(child)
        with self.ctx.store.transaction():
            self.ctx.store.update(image)
            # the snapshots that froze the child name its id
            for snap in self.ctx.store.mentioning(model.Snapshot, {child.id}):
                if snap.volumes.get(image.id) == child.id:
                    snap.volumes[image.id] = parent.id
                    self.ctx.store.update(snap)
        faults.point("merge committed")
        self.sync_image(image, dom)

    def _finish_revert(self, dom: model.StorageDomain, image: model.Image,
                       intent: model.Intent) -> None:
        """Revert phase: delete every layer above the frozen volume (a new leaf a killed
        run made included), cut the chain there, then put the new leaf on it."""
        ids = [v.id for v in image.volumes]
        idx = ids.index(intent.frozen) if intent.frozen in ids else len(ids) - 1
        drv = self.driver(dom)
        for vol in reversed(image.volumes[idx + 1:]):
            drv.delete_volume(dom, image, vol)
        if len(image.volumes) > idx + 1:
            image.volumes = image.volumes[:idx + 1]
            self.ctx.store.update(image)
            faults.point("revert cut")
        if intent.leaf is not None:
            # a copy: add_volume changes the volume it is given, the intent keeps its own
            self.add_volume(dom, image, model.structure(model.unstructure(intent.leaf),
                                                        model.Volume))

    def _snapshot_done(self, op: str, snapshot_id: str) -> None:
        """The last image of a snapshot merge or revert is done: a merge deletes the
        snapshot; a revert drops the snapshots taken after it (with their memory)."""
        import os

        if not self.ctx.store.has(model.Snapshot, snapshot_id):
            return
        snap = self.ctx.store.get(model.Snapshot, snapshot_id)
        if op == "merge":
            gone = [snap]
        else:
            gone = [s for s in self.ctx.store.owned(model.Snapshot, snap.vm_id)
                    if s.created > snap.created]
        for s in gone:
            self.ctx.store.remove(model.Snapshot, s.id)
            if s.memory_path and os.path.exists(s.memory_path):
                os.unlink(s.memory_path)
