"""VM snapshots as volume chains, the way VDSM keeps them.

A snapshot freezes each managed disk's current leaf volume and puts a new
qcow2 leaf on top of it (prepared by the storage driver; a running VM is
switched onto the new leaves by the hypervisor, atomically, with its memory
saved when asked). Reverting drops every layer above the frozen ones and
starts a fresh leaf on them (restoring the saved memory if there is one);
deleting merges the frozen layer's child into it. Revert and delete need the
VM Down (live merge is not implemented yet).
"""

from __future__ import annotations

import builtins
import os
import time
import uuid
from typing import Any

from virtplane import domxml, drivers, model
from virtplane.errors import AlreadyExists, InvalidInput, InvalidState, NotFound
from virtplane.events import Code
from virtplane.names import check_name
from virtplane.payloads import XmlPayload
from virtplane.services._ops import operation
from virtplane.services.arch import Architectures
from virtplane.services.context import Context
from virtplane.services.vms import Vms
from virtplane.services.volumes import Volumes


class Snapshots:
    """Take, list, revert to and delete VM snapshots."""

    def __init__(self, ctx: Context, vms: Vms, volumes: Volumes, arch: Architectures) -> None:
        self.ctx = ctx
        self.vms = vms
        self.volumes = volumes
        self.arch = arch

    def list(self, vm_name: str) -> builtins.list[model.Snapshot]:
        vm = self.vms.get(vm_name)
        return self.ctx.store.owned(model.Snapshot, vm.id)

    def get(self, vm: model.Vm, name: str) -> model.Snapshot:
        """VM ``vm``'s snapshot ``name`` (its snapshots found by the store's owner index)."""
        snaps = self.ctx.store.owned(model.Snapshot, vm.id)
        for snap in snaps:
            if snap.name == name:
                return snap
        known = [s.name for s in snaps]
        raise NotFound(f"VM {vm.name!r} has no snapshot named {name!r} (known: "
                       f"{', '.join(known) or 'none'})")

    def _source(self, dom: model.StorageDomain, image: model.Image,
                vol: model.Volume) -> dict[str, Any]:
        src = self.volumes.driver(dom).volume_source(dom, image, vol)
        if src.get("type") not in ("file", "block", "network"):
            raise InvalidInput(f"storage domain {dom.name!r} presents {src.get('type')} "
                               "volumes, which a running VM cannot be snapshotted onto")
        return src

    def take(self, name: str, snapshot: str, description: str = "",
             with_memory: bool = False) -> model.Snapshot:
        """Take a snapshot: a new qcow2 leaf on each managed disk (see docs/lifecycle.md).

        A running VM is switched onto the new leaves atomically, and its memory
        is saved too with ``with_memory`` (where the architecture allows it).
        """
        check_name("snapshot", snapshot)  # memory files are named after it
        vm = self.vms.get(name)
        if self.ctx.store.exists(model.Snapshot, f"{vm.id}/{snapshot}"):
            raise AlreadyExists(f"VM {name!r} already has a snapshot named {snapshot!r}")
        running = vm.status in (model.VmStatus.UP, model.VmStatus.PAUSED)
        if with_memory:
            if not running:
                raise InvalidInput(f"VM {name!r} is {vm.status.value}: memory can only be "
                                   "saved from a running VM")
            cl = self.vms.cluster(vm)
            if not self.arch.features_of(cl).memory_snapshot:
                raise InvalidInput(f"snapshots with memory are not supported on "
                                   f"{cl.architecture} at compatibility {cl.compat_version}")
        # shareable disks are never snapshotted (VDSM); a template's base is read-only
        disks = [(d, i, dom) for d, i, dom in self.volumes.managed(vm)
                 if not i.shareable and self.volumes.owner_of(i)[0] != "template"]
        memory_path = None
        frozen: dict[str, str] = {}
        with operation(self.ctx, vm, None, failure_event=f"snapshot {snapshot}",
                       failure_code=Code.SNAPSHOT_FAILED) as op:
            op.store = False
            created: builtins.list[tuple[model.StorageDomain, model.Image, model.Volume]] = []
            for _disk, image, dom in disks:
                leaf = image.volumes[-1]
                new = model.Volume(image_id=image.id, format=model.VolumeFormat.QCOW2,
                                   allocation=model.Allocation.THIN,
                                   size_bytes=leaf.size_bytes, parent_id=leaf.id)
                self.volumes.add_volume(dom, image, new)
                op.undo.callback(self.volumes.remove_leaf, dom, image, new)
                created.append((dom, image, new))
                frozen[image.id] = leaf.id
            if running:
                _host, conn = self.vms.host_of(vm)
                if not drivers.live_snapshots(conn):
                    raise InvalidInput(f"VM {name!r} runs on a hypervisor that cannot snapshot "
                                       "a running VM; stop it first")
                targets = domxml.disk_aliases(conn.live_xml(vm.name))
                switch = []
                for (disk, image, dom), (_d, _i, new) in zip(disks, created, strict=True):
                    target = targets.get("ua-" + disk.name)
                    if target is None:
                        raise InvalidState(f"disk {disk.name!r} of VM {name!r} is not plugged")
                    switch.append((target, self._source(dom, image, new)))
                if with_memory:
                    self.ctx.paths.saved.mkdir(parents=True, exist_ok=True, mode=0o700)
                    # named by ids, never by the user's name (a file name has 255 bytes)
                    memory_path = str(self.ctx.paths.saved / f"{vm.id}.{uuid.uuid4()}.mem")
                conn.snapshot_disks(vm.name, switch, memory_path)
        snap = model.Snapshot(name=snapshot, vm_id=vm.id, created=time.time(),
                              with_memory=with_memory, description=description,
                              volumes=frozen, memory_path=memory_path, spec=vm.spec)
        with self.ctx.store.transaction():
            if running:
                vm.started_xml = self.vms.host_of(vm)[1].live_xml(vm.name)
                self.ctx.store.update(vm)
            self.ctx.store.add(snap)
        included = {d.name for d, _i, _dom in disks}
        skipped = [d.name for d in vm.spec.disks if d.name not in included]
        note = (f" (not included, not on a storage domain, shareable or read-only: "
                f"{', '.join(skipped)})" if skipped else "")
        self.ctx.event(vm.id, f"snapshot {snapshot} taken"
                       + (" with memory" if with_memory else "") + note, code=Code.SNAPSHOT_TAKEN)
        return snap

    def _file_or_id(self, dom: model.StorageDomain, image: model.Image,
                    vol: model.Volume) -> str:
        src = self.volumes.driver(dom).volume_source(dom, image, vol)
        return str(src.get("source", {}).get("@file") or vol.id)

    def revert(self, name: str, snapshot: str, host: str | None = None) -> model.Vm:
        """Revert a Down VM's disks (and memory, if saved) to a snapshot.

        Snapshots taken after it are dropped. With memory the VM comes back Up.
        """
        vm = self.vms.get(name)
        if vm.status != model.VmStatus.DOWN:
            raise InvalidState(f"VM {name!r} is {vm.status.value}; revert needs Down")
        snap = self.get(vm, snapshot)
        later = [s for s in self.ctx.store.owned(model.Snapshot, vm.id)
                 if s.created > snap.created]
        # whatever can refuse the revert is asked before anything changes (an unreadable
        # memory image used to fail it after later snapshots were dropped)
        memory = self._memory_source(vm, snap.memory_path, host) if snap.memory_path else None
        renames: dict[str, str] = {}
        images = []
        for image_id, frozen_id in snap.volumes.items():
            image = self.ctx.store.get(model.Image, image_id)
            dom = self.volumes.domain_of(image)
            ids = [v.id for v in image.volumes]
            if frozen_id not in ids:
                raise InvalidState(f"snapshot {snapshot!r}: volume {frozen_id} is missing from "
                                   f"image {image_id}")
            idx = ids.index(frozen_id)
            new = model.Volume(image_id=image.id, format=model.VolumeFormat.QCOW2,
                               allocation=model.Allocation.THIN,
                               size_bytes=image.volumes[idx].size_bytes, parent_id=frozen_id)
            for vol in image.volumes[idx + 1:]:
                renames[self._file_or_id(dom, image, vol)] = self._file_or_id(dom, image, new)
            image.intent = model.Intent(op="revert", frozen=frozen_id, leaf=new,
                                        snapshot=snap.id)
            images.append(image)
        if images:
            # every image's revert is recorded before any file is touched; the last one
            # done drops the later snapshots and their memory (Volumes.finish)
            self.volumes.record(images)
            for image in images:
                self.volumes.finish(image)
        else:
            with self.ctx.store.transaction():
                for s in later:
                    self.ctx.store.remove(model.Snapshot, s.id)
            for s in later:
                if s.memory_path and os.path.exists(s.memory_path):
                    os.unlink(s.memory_path)
        self.ctx.event(vm.id, f"reverted to snapshot {snapshot}"
                       + (f"; later snapshots dropped: {', '.join(s.name for s in later)}"
                          if later else ""), code=Code.SNAPSHOT_REVERTED)
        if snap.memory_path and memory is not None:
            self._restore_memory(vm, snap.memory_path, memory, renames)
        return vm

    def _memory_source(self, vm: model.Vm, memory_path: str, host: str | None) -> tuple[
            model.Host, drivers.HypervisorConnection, str]:
        """The host to restore saved memory on, its connection and the saved domain XML;
        refused (before a revert changes anything) when any of them is missing."""
        h = self.vms.pick_host(vm, host)
        conn = self.ctx.connections.get(h)
        if not isinstance(conn, drivers.SupportsMemorySnapshots):
            raise InvalidInput(f"the {h.driver} driver cannot restore saved memory")
        if not os.access(memory_path, os.R_OK):
            raise InvalidState(f"the saved memory of this snapshot ({memory_path}) cannot be "
                               "read; nothing was reverted")
        return h, self.ctx.connections.get(h), conn.saved_xml(memory_path)

    def _restore_memory(self, vm: model.Vm, memory_path: str,
                        memory: tuple[model.Host, drivers.HypervisorConnection, str],
                        renames: dict[str, str]) -> None:
        h, conn, xml = memory
        for old, new_path in renames.items():
            xml = xml.replace(old, new_path)
        payload = XmlPayload(xml)
        with operation(self.ctx, vm, "vm_dehibernate",
                       before_args={"domxml": payload, "from_snapshot": True},
                       transitional=model.VmStatus.RESTORING_STATE) as op:
            live = conn.restore(vm.name, memory_path, payload.xml)
            vm.host_id = h.id
            vm.started_xml = live
            op.status = model.VmStatus.UP
            op.after_args = {"domxml": XmlPayload(live), "from_snapshot": True}

    def delete(self, name: str, snapshot: str) -> None:
        """Delete a snapshot of a Down VM, merging its layer into the one below."""
        vm = self.vms.get(name)
        if vm.status != model.VmStatus.DOWN:
            raise InvalidState(f"VM {name!r} is {vm.status.value}; deleting a snapshot needs "
                               "Down (live merge is not implemented yet)")
        snap = self.get(vm, snapshot)
        images = []
        for image_id, frozen_id in snap.volumes.items():
            image = self.ctx.store.get(model.Image, image_id)
            child = next((v for v in image.volumes if v.parent_id == frozen_id), None)
            if child is not None:
                image.intent = model.Intent(op="merge", child=child.id, parent=frozen_id,
                                            snapshot=snap.id)
                images.append(image)
        if images:
            # every merge is recorded before any file is touched; each image is then
            # merged and committed (later snapshots pointed at the parent), and the last
            # one done removes the snapshot record and its memory (Volumes.finish)
            self.volumes.record(images)
            for image in images:
                self.volumes.finish(image)
        else:
            self.ctx.store.remove(model.Snapshot, snap.id)
            if snap.memory_path and os.path.exists(snap.memory_path):
                os.unlink(snap.memory_path)
        self.ctx.event(vm.id, f"snapshot {snapshot} deleted (layers merged)",
                       code=Code.SNAPSHOT_DELETED)
