"""Live migration between hosts of one cluster."""

from __future__ import annotations

from typing import Any

from virtplane import domxml, drivers, model
from virtplane.domxml.devices import USER_ALIAS_PREFIX
from virtplane.errors import InvalidInput, InvalidState
from virtplane.events import Code
from virtplane.services._guard import require_hooks
from virtplane.services._ops import operation
from virtplane.services.arch import Architectures
from virtplane.services.context import Context
from virtplane.services.vms import Vms


class Migrations:
    """Moves running VMs between hosts (VDSM's source/destination hook points)."""

    def __init__(self, ctx: Context, vms: Vms, arch: Architectures) -> None:
        self.ctx = ctx
        self.vms = vms
        self.arch = arch

    def migrate(self, name: str, dest_host: str, *, bandwidth_mib: int | None = None,
                max_downtime_ms: int | None = None, unsafe: bool = False,
                migration_uri: str | None = "tcp://127.0.0.1", progress: Any = None,
                cancel: Any = None) -> model.Vm:
        """Live-migrate a running VM to another host of its cluster.

        Fires ``before_vm_migrate_source``/``_destination`` (and the device forms
        for devices with custom properties), then ``after_*`` on success. The VM's
        host changes in the store only when the hypervisor reports success; a
        failed or cancelled migration leaves it Up on its source.
        """
        vm = self.vms.get(name)
        if vm.status != model.VmStatus.UP:
            raise InvalidState(f"VM {name!r} is {vm.status.value}; migration needs Up")
        src, conn = self.vms.host_of(vm)
        dst = self.ctx.store.find(model.Host, dest_host)
        if dst.id == src.id:
            raise InvalidInput(f"VM {name!r} already runs on {dst.name!r}")
        if dst.cluster_id != vm.cluster_id:
            raise InvalidInput(f"host {dst.name!r} is not in the VM's cluster; migration stays "
                               "inside a cluster")
        if dst.driver != src.driver:
            raise InvalidInput(f"cannot migrate from a {src.driver} host to a {dst.driver} host")
        cl = self.vms.cluster(vm)
        if not self.arch.features_of(cl).live_migration:
            raise InvalidInput(f"live migration is not supported on {cl.architecture} at "
                               f"compatibility {cl.compat_version}")
        if not isinstance(conn, drivers.SupportsMigration):
            raise InvalidInput(f"the {src.driver} driver cannot migrate VMs")
        # the destination prepares the VM's volumes (shared storage: the same sources,
        # unless after_disk_prepare hands the destination another path, as VDSM's may)
        sources = self.vms.disk_sources(vm)
        live_xml = conn.live_xml(vm.name)
        prepared_xml = with_disk_sources(live_xml, vm.spec.disks, sources)
        options: dict[str, Any] = {}
        if prepared_xml is not None:
            if not isinstance(conn, drivers.SupportsDestinationXml):
                raise InvalidInput(
                    f"VM {name!r}: a prepared disk has another path on {dst.name!r}, and the "
                    f"{src.driver} driver cannot migrate with a destination domain XML "
                    "(it has no migratable_xml() and migrate(dest_xml=...))")
            dest_xml = with_disk_sources(conn.migratable_xml(vm.name), vm.spec.disks, sources)
            if dest_xml is not None:
                options["dest_xml"] = dest_xml
            live_xml = prepared_xml  # the hooks see the disks the destination will use
        payload = self.vms.payload(conn, live_xml)
        hooks = self.ctx.hooks
        require_hooks(self.ctx.plugins, f"migrate VM {name!r}")  # a veto must not be skipped
        hooks.fire("before_vm_migrate_source", vm=vm, domxml=payload, destination=dst.uri)
        self.vms.device_hook("before_device_migrate_source", vm, payload.xml, failing=True)
        hooks.fire("before_vm_migrate_destination", vm=vm, domxml=payload, source=src.uri)
        self.vms.device_hook("before_device_migrate_destination", vm, payload.xml, failing=True)
        def back_from_hypervisor() -> None:
            # a failed or cancelled migration: the VM stays where the hypervisor says
            status, _ = conn.state(vm.name)
            vm.status = model.VmStatus(status) if status != "Down" else model.VmStatus.UP
            self.ctx.store.update(vm)

        with operation(self.ctx, vm, None, transitional=model.VmStatus.MIGRATION_SOURCE,
                       failure_event=f"migration to {dst.name}",
                       keep_status_on_failure=True,
                       failure_code=Code.VM_MIGRATION_FAILED) as op:
            self.ctx.event(vm.id, f"migrating to {dst.name}", code=Code.VM_MIGRATION_START)
            op.undo.callback(back_from_hypervisor)
            self.ctx.expected_stops.add(vm.name)
            op.undo.callback(self.ctx.expected_stops.discard, vm.name)
            conn.migrate(vm.name, dst.uri, migration_uri=migration_uri,
                         bandwidth_mib=bandwidth_mib, max_downtime_ms=max_downtime_ms,
                         unsafe=unsafe, progress=progress, cancel=cancel, **options)
            self.ctx.expected_stops.discard(vm.name)
            op.store = False
        dconn = self.ctx.connections.get(dst)
        vm.host_id = dst.id
        vm.status = model.VmStatus.UP
        vm.status_reason = ""
        vm.started_xml = dconn.live_xml(vm.name)
        self.ctx.record(vm, f"migrated from {src.name} to {dst.name}",
                        code=Code.VM_MIGRATION_DONE)
        sink = self.ctx.hook_error_sink(vm.id)
        live = self.vms.payload(dconn, vm.started_xml)
        hooks.fire("after_vm_migrate_source", on_error=sink, vm=vm, domxml=live,
                   destination=dst.uri)
        hooks.fire("after_vm_migrate_destination", on_error=sink, vm=vm, domxml=live,
                   source=src.uri)
        self.vms.device_hook("after_device_migrate_source", vm, vm.started_xml, failing=False)
        self.vms.device_hook("after_device_migrate_destination", vm, vm.started_xml,
                             failing=False)
        return vm


def with_disk_sources(xml: str, disks: list[model.DiskSpec],
                      sources: list[dict[str, Any]]) -> str | None:
    """The domain XML ``xml`` with each disk's prepared source (``Vms.disk_sources``)
    applied to the ``<disk>`` whose alias is ``ua-<name>``, exactly; None when every
    source is already what ``xml`` says (or ``xml`` is a native configuration).

    Only the source attributes the storage driver and ``after_disk_prepare`` give
    (``file``, ``dev``, ``name`` ...) change; the rest of the live ``<source>`` stays.
    """
    if not xml.lstrip().startswith("<"):
        return None
    dom = domxml.Domain.from_xml(xml)
    by_alias = {d.alias_name: d for d in dom.devices.disks if d.alias_name}
    changed = False
    for disk, prepared in zip(disks, sources, strict=True):
        elem = by_alias.get(USER_ALIAS_PREFIX + disk.name)
        wanted = prepared.get("source") or {}
        if elem is None or not isinstance(wanted, dict):
            continue
        for key, value in wanted.items():
            if not key.startswith("@") or elem.source.get(key[1:]) == str(value):
                continue
            elem.source.set(key[1:], str(value))
            changed = True
    return dom.to_xml() if changed else None
