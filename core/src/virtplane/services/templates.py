"""Templates: a Down VM's disks copied once; VMs made from them thin or as full clones."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import attrs

from virtplane import model
from virtplane.errors import InvalidInput, InvalidState
from virtplane.names import check_name
from virtplane.services.arch import Architectures
from virtplane.services.context import Context
from virtplane.services.volumes import Volumes

Make = Callable[[model.StorageDomain, model.Image, model.Image], None]


class Templates:
    """Templates and the VMs made from them."""

    def __init__(self, ctx: Context, volumes: Volumes, arch: Architectures) -> None:
        self.ctx = ctx
        self.volumes = volumes
        self.arch = arch

    def get(self, name: str) -> model.Template:
        return self.ctx.store.find(model.Template, name)

    def list(self) -> builtins.list[model.Template]:
        return self.ctx.store.list(model.Template)

    def _new_images(self, disks: builtins.list[model.DiskSpec], describe: Callable[[model.DiskSpec], str],
                    make: Make, owner: str) -> tuple[builtins.list[model.Image],
                                                     builtins.list[model.DiskSpec]]:
        """One new image per managed disk, its volume made by ``make(dom, src, image)``
        (recorded illegal first); on any failure the images made so far are dropped."""
        created: builtins.list[model.Image] = []
        out = []
        try:
            for disk in disks:
                if not (disk.image_id and disk.domain_id):
                    raise InvalidInput(f"disk {disk.name!r} is not on a storage domain; only "
                                       "managed disks can be copied")
                src = self.ctx.store.get(model.Image, disk.image_id)
                dom = self.ctx.store.get(model.StorageDomain, disk.domain_id)
                self.volumes.require_active(dom)
                image = model.Image(domain_id=dom.id, description=describe(disk), owner=owner,
                                    intent=model.Intent(op="create"))  # commit_created
                make(dom, src, image)
                created.append(image)
                out.append(attrs.evolve(disk, image_id=image.id))
        except BaseException:
            self.volumes.drop(created, [])
            raise
        return created, out

    def _record(self, created: builtins.list[model.Image], obj: Any) -> None:
        """Store the object using the new (already recorded) images; drop them on failure."""
        try:
            self.volumes.commit_created(created, obj)
        except BaseException:
            self.volumes.drop(created, [])
            raise

    def create(self, vm_name: str, name: str) -> model.Template:
        """Make a template from a Down VM: each managed disk copied (collapsed) once."""
        check_name("template", name)
        vm = self.ctx.store.find(model.Vm, vm_name)
        if vm.status != model.VmStatus.DOWN:
            raise InvalidState(f"VM {vm_name!r} is {vm.status.value}; a template needs it Down")
        self.ctx.store.require_free(model.Template, name)
        template_id = model.Template(name=name, spec=vm.spec).id
        created, disks = self._new_images(vm.spec.disks, lambda d: f"template {name}/{d.name}",
                                          self.volumes.copy_into, f"template:{template_id}")
        template = model.Template(name=name, spec=attrs.evolve(vm.spec, name=name, disks=disks),
                                  image_ids=[i.id for i in created], id=template_id)
        self._record(created, template)
        return template

    def create_vm(self, template: str, name: str, cluster: str,
                  clone: bool = False) -> model.Vm:
        """A VM from a template: thin (qcow2 overlays on the template's volumes) or a full
        clone (standalone copies)."""
        check_name("VM", name)
        tpl = self.get(template)
        cl = self.ctx.store.find(model.Cluster, cluster)
        spec = attrs.evolve(tpl.spec, name=name)
        self.arch.validate(spec, cl)
        self.ctx.store.require_free(model.Vm, name, "VM")
        vm_id = model.Vm(spec=spec, cluster_id=cl.id).id
        created, disks = self._new_images(
            tpl.spec.disks, lambda d: f"{vm_id}/{d.name}",
            self.volumes.copy_into if clone else self.volumes.overlay_onto, f"vm:{vm_id}")
        vm = model.Vm(spec=attrs.evolve(spec, disks=disks), cluster_id=cl.id, id=vm_id)
        self._record(created, vm)
        self.ctx.event(vm.id, f"created from template {template} "
                       f"({'full clone' if clone else 'thin, on the template volumes'})")
        return vm

    def remove(self, name: str) -> None:
        """Remove a template; refused while VMs are based on it (they are listed)."""
        tpl = self.get(name)
        based = set(tpl.image_ids)
        # the images with a volume on the template's (only the images whose JSON names
        # one of them are parsed), then the VMs with a disk on one of those
        thin = {i.id for i in self.volumes.naming(model.Image, based)
                if any(vol.base_image_id in based for vol in i.volumes)}
        dependants = self.volumes.users(thin) if thin else []
        if dependants:
            raise InvalidState(f"template {name!r} is in use by {', '.join(dependants)}; "
                               "remove them or make full clones first")
        images = [self.ctx.store.get(model.Image, i) for i in tpl.image_ids]
        self.volumes.drop(images, [(model.Template, tpl.id)])
