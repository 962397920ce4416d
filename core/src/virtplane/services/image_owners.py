"""Who owns an image and who uses it: the owner recorded with each image (a VM, a
template, or nobody for a standalone disk), the VMs, templates and images that
use it, and the checks that keep a disk to one VM unless it is shareable."""

from __future__ import annotations

from typing import TypeVar

from virtplane import model
from virtplane.errors import InvalidInput, InvalidState
from virtplane.services.volume_base import VolumesBase

T = TypeVar("T")

#: up to this many ids, "which objects name one of these ids" parses only the objects
#: whose stored JSON names one (:meth:`~virtplane.state.StateStore.mentioning`: one LIKE
#: term per id over every row of the kind); for more (a whole domain's images) every
#: object is parsed instead: on SQLite, 5,000 VMs list in about 105 ms, while each id
#: adds about 4.5 ms to the statement (VMs that ran, holding their domain XML, more)
MENTION_LIMIT = 8


class ImageOwnersMixin(VolumesBase):
    """Owners and users of images."""

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
