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
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

import attrs

from virtplane import drivers, faults, model
from virtplane.errors import InvalidInput, InvalidState, StorageUnavailable, VirtplaneError
from virtplane.services.context import Context

T = TypeVar("T")

#: the status reason ``StorageDomains.deactivate`` records: the administrator took the
#: domain out of use, so a monitor (the engine's storage probe) must not bring it back
#: to Active by itself, and using it is refused as a state (:meth:`Volumes.require_active`);
#: compare with this, never with a copy of the text (also importable from
#: ``virtplane.services.storage``)
ADMIN_DEACTIVATED = "deactivated by the administrator"

#: ``make(domain, image, volume)``: fills a new volume (default: the driver's create_volume)
Maker = Callable[[model.StorageDomain, model.Image, model.Volume], None]


def unsupported(dom_type: str, what: str, members: str) -> InvalidInput:
    """The error for a storage type whose driver lacks an optional contract."""
    return InvalidInput(f"storage type {dom_type!r} cannot {what} (its driver has no "
                        f"{members})")


#: the largest volume size accepted (1 EiB): far above any disk, far below what the state
#: store's 64-bit integers and qemu-img take
MAX_SIZE = 1 << 60


def check_size(size_bytes: int, what: str) -> None:
    """Refuse a volume size that is not a positive number of bytes up to :data:`MAX_SIZE`."""
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) \
            or not 0 < size_bytes <= MAX_SIZE:
        raise InvalidInput(f"{what} size must be a positive number of bytes up to 1 EiB; "
                           f"got {size_bytes!r}")


class ChainConflict(InvalidState):
    """An image's volume chain on the storage is not the one this engine's state store
    has: another engine on the same domain changed it (or this engine was killed between
    a record and its metadata write). The change asked for is refused before it touches
    anything; the message names the image and what to do."""


#: up to this many ids, "which objects name one of these ids" parses only the objects
#: whose stored JSON names one (:meth:`~virtplane.state.StateStore.mentioning`: one LIKE
#: term per id over every row of the kind); for more (a whole domain's images) every
#: object is parsed instead: on SQLite, 5,000 VMs list in about 105 ms, while each id
#: adds about 4.5 ms to the statement (VMs that ran, holding their domain XML, more)
MENTION_LIMIT = 8


def _chain(volumes: list[model.Volume]) -> str:
    return " -> ".join(v.id[:8] + ("" if v.legal else " (illegal)") for v in volumes) \
        or "no volumes"


def illegal_volumes(images: list[model.Image]) -> list[str]:
    """One line per volume whose creation did not finish."""
    return [f"image {i.id}: volume {v.id} is illegal (its creation did not finish); "
            "`virtplane storage repair` removes it" for i in images for v in i.volumes
            if not v.legal]


class Volumes:
    """Images, volume chains and who uses them."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        # per thread: ids of the images whose chain this thread has compared and holds
        # the lock of (nested changes do not compare again), and the repair flag
        self._local = threading.local()

    def driver(self, dom: model.StorageDomain) -> drivers.StorageDriver:
        """The storage driver of a domain (with kill points around its calls when fault
        injection is on: :mod:`virtplane.faults`)."""
        return faults.wrap(self.ctx.drivers.storage(dom.type))

    def domain_of(self, image: model.Image) -> model.StorageDomain:
        return self.ctx.store.get(model.StorageDomain, image.domain_id)

    def images_of(self, dom: model.StorageDomain) -> list[model.Image]:
        """The images on ``dom``, by name (only the images whose JSON names the domain's
        id are parsed: those of other domains are not)."""
        return [i for i in self.ctx.store.mentioning(model.Image, {dom.id})
                if i.domain_id == dom.id]

    # ------------------------------------------------------------ who uses what

    def naming(self, cls: type[T], ids: set[str], exclude_id: str | None = None) -> list[T]:
        """The objects of ``cls`` (but ``exclude_id``), by name, that may refer to one of
        ``ids``: those whose stored JSON names one of them, so that only those are parsed
        (:meth:`~virtplane.state.StateStore.mentioning`; every object of ``cls`` for
        more than :data:`MENTION_LIMIT` ids). Callers check the field they mean on each."""
        if len(ids) > MENTION_LIMIT or not all(isinstance(i, str) and i for i in ids):
            return [o for o in self.ctx.store.list(cls)
                    if getattr(o, "id", None) != exclude_id]
        return self.ctx.store.mentioning(cls, ids, exclude_id=exclude_id)

    def users(self, image_ids: set[str], running_only: bool = False) -> list[str]:
        """Names of the VMs (only those not Down, with ``running_only``) using these images."""
        return sorted(v.name for v in self.naming(model.Vm, image_ids)
                      if not (running_only and v.status == model.VmStatus.DOWN)
                      and any(d.image_id in image_ids for d in v.spec.disks))

    def running_users(self, image_ids: set[str]) -> list[str]:
        return self.users(image_ids, running_only=True)

    # ----------------------------------------------------------------- owners
    # Each image has one owner (model.Image.owner): the VM it was made for, the template
    # whose base it is, or nobody (a standalone disk). Removal deletes only what the
    # removed object owns; another VM's disk or a template's base joins a VM only when
    # the disk is shareable; template images are read-only.

    def owner_of(self, image: model.Image) -> tuple[str, str | None]:
        """``("vm", id)``, ``("template", id)`` or ``("standalone", None)``."""
        kind, _, owner_id = image.owner.partition(":")
        if image.owner == model.TEMPLATE_OWNER_UNKNOWN:
            # the templates that name the image (their image_ids say which is its own)
            owner_id = next((t.id for t in self.ctx.store.mentioning(model.Template,
                                                                     {image.id})
                             if image.id in t.image_ids), "")
        if kind in ("vm", "template"):
            return kind, owner_id or None
        return "standalone", None

    def owned_by_vm(self, vm_id: str) -> list[model.Image]:
        """The images VM ``vm_id`` owns (made for it), through the store's owner index."""
        owner = f"vm:{vm_id}"
        return [i for i in self.ctx.store.owned(model.Image, vm_id) if i.owner == owner]

    def used_by_others(self, vm_id: str, image_ids: set[str]) -> set[str]:
        """Those of ``image_ids`` that a disk of a VM other than ``vm_id`` uses.

        Only the VMs whose stored JSON names one of the images are parsed
        (:meth:`naming`); their disks decide.
        """
        if not image_ids:
            return set()
        return {d.image_id for v in self.naming(model.Vm, image_ids, exclude_id=vm_id)
                for d in v.spec.disks if d.image_id in image_ids}

    def owner_text(self, image: model.Image) -> str:
        """Who owns ``image``, for messages and listings (``VM 'web'``, ``template 't'``)."""
        kind, owner_id = self.owner_of(image)
        cls = {"vm": model.Vm, "template": model.Template}.get(kind)
        if cls is None or owner_id is None:
            return "nobody (a standalone disk)" if kind == "standalone" else f"a {kind}"
        label = "VM" if kind == "vm" else "template"
        if self.ctx.store.has(cls, owner_id):
            return f"{label} {self.ctx.store.get(cls, owner_id).name!r}"
        return f"{label} {owner_id} (removed)"

    def check_attach(self, vm_id: str, disk: model.DiskSpec) -> None:
        """Refuse to give VM ``vm_id`` an existing image it may not use.

        A shareable disk may join any number of VMs. Any other disk belongs to one VM
        at a time: a template's base image is read-only (VMs are made from the template
        instead), another VM's disk stays that VM's, and a standalone disk attached to
        a VM is not attached to a second one.
        """
        if not disk.image_id or not self.ctx.store.has(model.Image, disk.image_id):
            return
        image = self.ctx.store.get(model.Image, disk.image_id)
        if image.shareable:
            return
        name = image.alias or image.id
        hint = ("only a shareable disk (raw, without snapshots: `virtplane disk create "
                "--shareable --format raw`) can be attached to several VMs")
        kind, owner_id = self.owner_of(image)
        if kind == "template":
            raise InvalidInput(f"disk {name!r} is a base image of {self.owner_text(image)}, "
                               "which is read-only; create a VM from the template instead "
                               f"(`virtplane vm create --template`); {hint}")
        if kind == "vm" and owner_id != vm_id:
            raise InvalidInput(f"disk {name!r} belongs to {self.owner_text(image)}; {hint}")
        others = sorted(v.name for v in self.naming(model.Vm, {image.id}, exclude_id=vm_id)
                        if any(d.image_id == image.id for d in v.spec.disks))
        if others:
            raise InvalidInput(f"disk {name!r} is attached to VM {', '.join(others)}; {hint}")

    def require_writable(self, image: model.Image, what: str) -> None:
        """Refuse to change a template's base image (``what``: extend, snapshot ...):
        the VMs made from the template read it."""
        if self.owner_of(image)[0] == "template":
            raise InvalidState(f"cannot {what} disk {image.alias or image.id!r}: it is a base "
                               f"image of {self.owner_text(image)}, and template images are "
                               "read-only")

    def in_use(self, image: model.Image) -> list[str]:
        """Names of the VMs and templates whose disks use ``image`` or are based on it."""
        users = self.users({image.id})
        # only the templates and images whose JSON names the image are parsed
        users += [f"template {t.name}" for t in self.ctx.store.mentioning(model.Template,
                                                                          {image.id})
                  if image.id in t.image_ids]
        for other in self.ctx.store.mentioning(model.Image, {image.id}, exclude_id=image.id):
            if any(v.base_image_id == image.id for v in other.volumes):
                users.append(f"image {other.alias or other.id}")
        return users

    # ------------------------------------------------------------------ state

    @staticmethod
    def require_active(dom: model.StorageDomain) -> None:
        """Refuse to use an Inactive domain, with its reason: :class:`InvalidState` when
        the administrator deactivated it (maintenance: a state the caller can change,
        oVirt's 409 "Storage Domain ... is not active"), :class:`StorageUnavailable` when
        its storage stopped answering (the probe's reason: an outage)."""
        if dom.status != model.DomainStatus.INACTIVE:
            return
        message = f"storage domain {dom.name!r} is Inactive: {dom.status_reason}"
        if dom.status_reason == ADMIN_DEACTIVATED:
            raise InvalidState(message)
        raise StorageUnavailable(message)

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
        except BaseException:
            try:
                drv.delete_volume(dom, image, vol)
            except VirtplaneError as cleanup:
                # cannot tell what is left on the storage: keep the illegal record for repair
                self.ctx.event(dom.id, f"volume {vol.id} of image {image.id} left illegal; "
                               f"removing it failed: {cleanup}", "error")
                raise
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

    # ------------------------------------------------------------ VM disks

    def new_disk(self, vm_id: str, disk: model.DiskSpec) -> model.Image | None:
        """Create the image of a VM disk that asks for one (a size on a domain)."""
        if disk.domain_id is None or disk.image_id is not None or disk.path:
            return None
        check_size(disk.size_bytes, f"disk {disk.name!r}")
        dom = self.ctx.store.get(model.StorageDomain, disk.domain_id)
        self.require_active(dom)
        image = model.Image(domain_id=dom.id, description=f"{vm_id}/{disk.name}",
                            owner=f"vm:{vm_id}")
        if not self.ctx.store.has(model.Vm, vm_id):
            image.intent = model.Intent(op="create")  # cleared by commit_created
        vol = model.Volume(image_id=image.id, format=disk.format,
                           allocation=disk.allocation, size_bytes=disk.size_bytes)
        self.add_volume(dom, image, vol)
        disk.image_id = image.id
        return image

    def disk_source(self, disk: model.DiskSpec) -> dict[str, Any]:
        """How a VM disk reaches the hypervisor (the storage driver's ``volume_source``)."""
        if disk.path:
            return {"type": "file", "source": {"@file": disk.path}}
        if disk.domain_id is None or disk.image_id is None:
            return {"type": "file", "source": {}}
        dom = self.ctx.store.get(model.StorageDomain, disk.domain_id)
        image = self.ctx.store.get(model.Image, disk.image_id)
        bad = [v.id for v in image.volumes if not v.legal]
        if bad:
            raise InvalidState(f"disk {disk.name!r}: volume {bad[0]} of image {image.id} is "
                               "illegal (an operation on it did not finish); run `virtplane "
                               f"storage repair {dom.name}` first")
        self.require_active(dom)
        return self.driver(dom).volume_source(dom, image, image.volumes[-1])

    def managed(self, vm: model.Vm) -> list[tuple[model.DiskSpec, model.Image,
                                                  model.StorageDomain]]:
        """A VM's disks that live on storage domains, with their image and domain."""
        out = []
        for disk in vm.spec.disks:
            if disk.image_id and disk.domain_id:
                out.append((disk, self.ctx.store.get(model.Image, disk.image_id),
                            self.ctx.store.get(model.StorageDomain, disk.domain_id)))
        return out
