"""VMs: created from specs, started, stopped, paused, hibernated, reported on, removed."""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any, cast

from virtplane import drivers, model, scheduling
from virtplane.errors import Conflict, InvalidInput, InvalidState, NotFound
from virtplane.events import Code
from virtplane.names import check_name, check_property_name
from virtplane.payloads import JsonPayload, XmlPayload
from virtplane.services._guard import require_hooks
from virtplane.services._ops import operation
from virtplane.services._vdsm import VmStatsShaper
from virtplane.services.arch import Architectures
from virtplane.services.context import Context
from virtplane.services.disks import Isos
from virtplane.services.vm_xml import VmXmlMixin
from virtplane.services.volumes import Volumes

#: event messages that mark a new guest process (VDSM's elapsedTime restarts there; a
#: migration carries it over, as VDSM's does)
_START_EVENTS = ("started on ", "restored", "reverted to snapshot")


def _change_properties(target: dict[str, str], changes: Mapping[str, str | None],
                       owner: str) -> None:
    """Apply ``changes`` to one owner's custom properties (None removes a property)."""
    for key, value in changes.items():
        if value is None:
            if key not in target:
                raise InvalidInput(f"{owner} has no custom property {key!r} to remove; it "
                                   f"has: {', '.join(sorted(target)) or 'none'}")
            del target[key]
            continue
        check_property_name(key)
        if not isinstance(value, str):
            raise InvalidInput(f"custom property {key!r} of {owner}: the value must be "
                               f"text, not {type(value).__name__}")
        target[key] = value


def _device_named(spec: model.VmSpec, name: str) -> model.DiskSpec | model.NicSpec:
    """The disk or NIC of ``spec`` called ``name`` (exactly one)."""
    found: list[model.DiskSpec | model.NicSpec] = [
        *(d for d in spec.disks if d.name == name), *(n for n in spec.nics if n.name == name)]
    if len(found) == 1:
        return found[0]
    if found:
        raise InvalidInput(f"VM {spec.name!r} has both a disk and a NIC named {name!r}; "
                           "rename one to give it custom properties")
    have = [d.name for d in spec.disks] + [n.name for n in spec.nics]
    raise InvalidInput(f"VM {spec.name!r} has no disk or NIC named {name!r}; it has: "
                       + (", ".join(have) or "none"))


def _check_ha_priority(priority: int) -> None:
    """oVirt's HA priority range (its UI: Low 1, Medium 50, High 100)."""
    if isinstance(priority, bool) or not isinstance(priority, int) or \
            not 0 <= priority <= 100:
        raise InvalidInput(f"HA priority {priority!r} is not allowed; it must be a whole "
                           "number from 0 to 100 (higher restarts first)")


class Vms(VmXmlMixin):
    """VM lifecycle (VDSM's hook points around each operation)."""

    def __init__(self, ctx: Context, arch: Architectures, volumes: Volumes, isos: Isos,
                 scheduler: scheduling.Scheduler | None = None) -> None:
        self.ctx = ctx
        self.arch = arch
        self.volumes = volumes
        self.isos = isos
        self.scheduler: scheduling.Scheduler = scheduler or scheduling.FirstUpHost(
            _StoreRows(ctx))
        #: adds VDSM's getAllVmStats keys to the drivers' stats (keeps CPU samples for rates)
        self.vdsm_stats = VmStatsShaper()

    # ---------------------------------------------------------------- records

    def get(self, name: str) -> model.Vm:
        """A VM by name or id."""
        return self.ctx.store.find(model.Vm, name)

    def list(self) -> builtins.list[model.Vm]:
        return self.ctx.store.list(model.Vm)

    def events(self, name: str) -> builtins.list[tuple[float, str, str]]:
        """A VM's event log: (time, level, message)."""
        return self.ctx.store.events(self.get(name).id)

    def create(self, spec: model.VmSpec, cluster: str) -> model.Vm:
        """Validate a spec, create its disks on their storage domains and record the VM.

        A failure part way removes the disks made so far (nothing half-made).
        """
        check_name("VM", spec.name)
        _check_ha_priority(spec.ha_priority)
        cl = self.ctx.store.find(model.Cluster, cluster)
        self.arch.validate(spec, cl)
        self.ctx.store.require_free(model.Vm, spec.name, "VM")
        if spec.cd is not None and spec.cd.path:
            spec.cd.path = self.isos.media_path(spec.cd.path)
        vm = model.Vm(spec=spec, cluster_id=cl.id)
        for disk in spec.disks:
            self.volumes.check_attach(vm.id, disk)  # another VM's disk, a template's base
        made: builtins.list[model.Image] = []
        try:
            for disk in spec.disks:
                image = self.volumes.new_disk(vm.id, disk)
                if image is not None:
                    made.append(image)
            self.volumes.commit_created(made, vm)  # the VM and its disks, at once
        except BaseException:
            self.volumes.drop(made, [])
            raise
        return vm

    def set_high_availability(self, name: str, enabled: bool | None = None,
                              priority: int | None = None) -> model.Vm:
        """Mark a VM highly available (or not) and set its restart priority (0-100); the
        engine reads both when the VM's host fails, so they may change while it runs."""
        if priority is not None:
            _check_ha_priority(priority)

        def change(vm: model.Vm) -> None:
            if enabled is not None:
                vm.spec.highly_available = enabled
            if priority is not None:
                vm.spec.ha_priority = priority

        vm = self.ctx.store.modify(model.Vm, name, change)
        self.ctx.event(vm.id, f"high availability {'on' if vm.spec.highly_available else 'off'}"
                       f", priority {vm.spec.ha_priority}", code=Code.VM_UPDATED)
        return vm

    def update_properties(self, name: str,
                          properties: Mapping[str, str | None] | None = None,
                          devices: Mapping[str, Mapping[str, str | None]] | None = None,
                          ) -> model.Vm:
        """Set or remove custom properties of a VM and of its disks and NICs.

        A value sets a property, None removes it; ``devices`` is keyed by disk or NIC
        name. Names are checked (:func:`virtplane.names.check_property_name`) and the
        changed spec is validated as a new VM's would be (the hook plugins' declared
        patterns among the rest) before anything is stored. Hook scripts of a running
        VM see the change at its next start, as VDSM's do.
        """
        def change(spec: model.VmSpec) -> None:
            _change_properties(spec.custom_properties, properties or {}, f"VM {spec.name!r}")
            for dev_name, props in (devices or {}).items():
                dev = _device_named(spec, dev_name)
                kind = "disk" if isinstance(dev, model.DiskSpec) else "NIC"
                _change_properties(dev.custom_properties, props, f"{kind} {dev_name!r}")

        trial = self.get(name)  # a fresh copy: changed and validated, never stored
        change(trial.spec)
        self.arch.validate(trial.spec, self.cluster(trial))

        def apply(vm: model.Vm) -> None:
            change(vm.spec)

        vm = self.ctx.store.modify(model.Vm, name, apply)
        names = sorted({*(properties or {}), *(k for p in (devices or {}).values() for k in p)})
        self.ctx.event(vm.id, "custom properties changed: " + ", ".join(names)
                       + (" (hook scripts see them from the next start)"
                          if vm.status != model.VmStatus.DOWN else ""), code=Code.VM_UPDATED)
        return vm

    def remove(self, name: str) -> None:
        """Remove a Down VM and the images it owns (made for it, plugged or not); disks it
        only used (standalone, shareable) are kept, as floating disks. An image it owns
        that another VM uses too (shared) is kept for that VM, as a standalone disk."""
        vm = self.get(name)
        if vm.status != model.VmStatus.DOWN:
            raise InvalidState(f"VM {name!r} is {vm.status.value}; stop it before removing it")
        # by the store's owner index: the cost follows this VM's images and snapshots,
        # not how many the store holds
        owned = self.volumes.owned_by_vm(vm.id)
        others = self.volumes.used_by_others(vm.id, {i.id for i in owned})
        kept = [i for i in owned if i.id in others]
        snaps = [(model.Snapshot, s.id) for s in self.ctx.store.owned(model.Snapshot, vm.id)]
        for image in kept:
            image.owner = ""
        # one transaction forgets the VM, hands kept images over and records the removal
        # intents; then files go (crash-safe: Volumes.drop)
        self.volumes.drop([i for i in owned if i.id not in others],
                          [*snaps, (model.Vm, vm.id)], updates=kept)
        for image in kept:
            self.volumes.sync_image(image)

    # ------------------------------------------------------------ placement

    def host_of(self, vm: model.Vm) -> tuple[model.Host, drivers.HypervisorConnection]:
        """The host a VM runs on and its connection."""
        if vm.host_id is None:
            raise InvalidState(f"VM {vm.name!r} is not running on any host")
        host = self.ctx.store.get(model.Host, vm.host_id)
        return host, self.ctx.connections.get(host)

    def pick_host(self, vm: model.Vm, host_name: str | None) -> model.Host:
        """The named host (which must be in the VM's cluster) or the scheduler's choice."""
        if host_name is not None:
            host = self.ctx.store.find(model.Host, host_name)
            if host.cluster_id != vm.cluster_id:
                from virtplane.errors import InvalidInput

                raise InvalidInput(f"host {host.name!r} is not in the VM's cluster")
            return host
        return self.scheduler.pick(vm, self.ctx.store.list(model.Host))

    # ------------------------------------------------------------- domain XML

    # -------------------------------------------------------------- lifecycle

    def start(self, name: str, host: str | None = None) -> model.Vm:
        """Start a VM (Down -> Powering up/Up). A failed start leaves it Down, nothing
        defined on the host."""
        vm = self.get(name)
        if vm.status != model.VmStatus.DOWN:
            raise InvalidState(f"VM {name!r} is {vm.status.value}; only a Down VM can be "
                               "started")
        if vm.saved_state:
            raise InvalidState(f"VM {name!r} is hibernated; restore it instead of starting it")
        require_hooks(self.ctx.plugins, f"start VM {name!r}")  # a veto must not be skipped
        h = self.pick_host(vm, host)
        scheduling.check_memory(vm, h)
        conn = self.ctx.connections.get(h)
        native = drivers.implements(conn, drivers.NativeConfig)
        # the skeleton: a failure anywhere below leaves the VM Down with the reason and
        # an event; the before points are fired here because the payload is built first
        with operation(self.ctx, vm, None, failure_event="start", record_reason=True,
                       code=Code.VM_STARTED, failure_code=Code.VM_START_FAILED) as op:
            xml = self.domain_xml(vm, h)
            if native:
                # a hypervisor with its own config format (OVM3 vm.cfg): hooks get that
                xml = cast("drivers.NativeConfig", conn).native_config(xml)
            else:
                xml = self.device_hook("before_device_create", vm, xml, failing=True)
            dom_payload = self.payload(conn, xml, native)
            self.ctx.hooks.fire("before_vm_start", vm=vm, domxml=dom_payload)
            start_xml = dom_payload.xml if native else self.checked_domain(
                "before_vm_start", vm, xml, dom_payload.xml)
            vm.status = model.VmStatus.WAIT_FOR_LAUNCH
            live = conn.start(vm.name, start_xml, dom_payload.launch_flags)
            # from here a failure (the state query, anything) stops what was started:
            # the store will say Down, so the host must not run it
            op.undo.callback(self._stop_started, conn, vm)
            # a hook may have asked libvirt to start it paused (launch flags)
            state, _ = conn.state(vm.name)
            op.status = model.VmStatus.PAUSED if state == "Paused" else model.VmStatus.UP
            vm.host_id = h.id
            vm.started_xml = live
            op.event = f"started on {h.name}"
        self.device_hook("after_device_create", vm, live, failing=False)
        self.ctx.hooks.fire("after_vm_start", on_error=self.ctx.hook_error_sink(vm.id), vm=vm,
                            domxml=self.payload(conn, live, native))
        return vm

    def _stop_started(self, conn: drivers.HypervisorConnection, vm: model.Vm) -> None:
        """Undo of a start that failed after the hypervisor started the VM: destroy it
        there; if even that fails, say so in the VM's event log (the monitor will find
        it running and record it Up)."""
        try:
            conn.destroy(vm.name)
        except Exception as exc:  # noqa: BLE001 - the start's own error goes on
            self.ctx.event(vm.id, f"the failed start could not stop the VM on its host: "
                           f"{exc}", "error", code=Code.VM_STOP_FAILED)

    def mark_down(self, vm: model.Vm, reason: str) -> None:
        """Record a VM Down (it stopped, for ``reason``) and fire the destroy points.

        The VM has stopped whatever else changed its record meanwhile (a monitor's
        status refresh): should the write meet a newer revision, the Down transition
        is applied to the current record instead of failing after the fact.
        """
        xml = vm.started_xml

        def down(current: model.Vm) -> None:
            current.status = model.VmStatus.DOWN
            current.status_reason = reason
            current.host_id = None

        down(vm)
        said = f"down: {reason}"
        code = Code.VM_DOWN_ERROR if reason.startswith("crashed") else Code.VM_DOWN
        try:
            self.ctx.record(vm, said, code=code)
        except Conflict:
            with self.ctx.store.transaction():
                written = self.ctx.store.modify(model.Vm, vm.id, down)
                self.ctx.event(vm.id, said, code=code)
            vm.revision = written.revision
        if xml:
            self.device_hook("after_device_destroy", vm, xml, failing=False)
        self.ctx.hooks.fire("after_vm_destroy", on_error=self.ctx.hook_error_sink(vm.id),
                            vm=vm, reason=reason)

    def destroy(self, name: str) -> model.Vm:
        """Power a VM off at once."""
        vm = self.get(name)
        _host, conn = self.host_of(vm)
        self.ctx.hooks.fire("before_vm_destroy", on_error=self.ctx.hook_error_sink(vm.id), vm=vm)
        if vm.started_xml:
            self.device_hook("before_device_destroy", vm, vm.started_xml, failing=False)
        with operation(self.ctx, vm, None, failure_event="destroy",
                       failure_code=Code.VM_STOP_FAILED) as op:
            self.ctx.expected_stops.add(vm.name)
            op.undo.callback(self.ctx.expected_stops.discard, vm.name)
            conn.destroy(vm.name)
            op.store = False
        # the hypervisor's stop event may come after conn.destroy returned: the name
        # stays expected until the store says Down, so the event thread never records
        # virtplane's own destroy as a crash (nor races this write)
        try:
            self.mark_down(vm, "destroyed")
        finally:
            self.ctx.expected_stops.discard(vm.name)
        return vm

    def shutdown(self, name: str, timeout: float = 120.0) -> str:
        """ACPI shutdown, then destroy after ``timeout``; returns how it went down."""
        vm = self.get(name)
        _host, conn = self.host_of(vm)
        self.ctx.hooks.fire("before_vm_destroy", on_error=self.ctx.hook_error_sink(vm.id), vm=vm)
        with operation(self.ctx, vm, None, transitional=model.VmStatus.POWERING_DOWN,
                       failure_event="shutdown", failure_code=Code.VM_SHUTDOWN_FAILED) as op:
            self.ctx.expected_stops.add(vm.name)
            op.undo.callback(self.ctx.expected_stops.discard, vm.name)
            how = conn.shutdown(vm.name, timeout)
            op.store = False
        try:  # as in destroy: expected until the store says Down
            self.mark_down(vm, how)
        finally:
            self.ctx.expected_stops.discard(vm.name)
        return str(how)

    def _require(self, vm: model.Vm, what: str, *allowed: model.VmStatus) -> None:
        if vm.status not in allowed:
            raise InvalidState(f"VM {vm.name!r} is {vm.status.value}; {what} needs "
                               + " or ".join(s.value for s in allowed))

    def pause(self, name: str) -> model.Vm:
        """Pause a running VM (``before/after_vm_pause``)."""
        return self._pause_or_continue(name, "vm_pause", model.VmStatus.UP,
                                       model.VmStatus.PAUSED)

    def resume(self, name: str) -> model.Vm:
        """Continue a paused VM (``before/after_vm_cont``)."""
        return self._pause_or_continue(name, "vm_cont", model.VmStatus.PAUSED,
                                       model.VmStatus.UP)

    def _pause_or_continue(self, name: str, point: str, need: model.VmStatus,
                           becomes: model.VmStatus) -> model.Vm:
        vm = self.get(name)
        what = point.removeprefix("vm_")
        self._require(vm, {"cont": "continue"}.get(what, what), need)
        _host, conn = self.host_of(vm)
        act = conn.pause if becomes == model.VmStatus.PAUSED else conn.resume
        paused = becomes == model.VmStatus.PAUSED
        with operation(self.ctx, vm, point,
                       before_args={"domxml": XmlPayload(conn.live_xml(vm.name))},
                       code=Code.VM_PAUSED if paused else Code.VM_RESUMED,
                       failure_code=Code.VM_PAUSE_FAILED if paused
                       else Code.VM_RESUME_FAILED) as op:
            act(vm.name)
            op.status, op.event = becomes, what
            op.after_args = {"domxml": XmlPayload(conn.live_xml(vm.name))}
        return vm

    def reboot(self, name: str) -> model.Vm:
        """Ask the guest to reboot."""
        vm = self.get(name)
        self._require(vm, "reboot", model.VmStatus.UP)
        _host, conn = self.host_of(vm)
        with operation(self.ctx, vm, None, code=Code.VM_REBOOT) as op:
            conn.reboot(vm.name)
            op.event, op.store = "reboot requested", False
        return vm

    def hibernate(self, name: str) -> model.Vm:
        """Save the VM's memory to a file in its state folder and stop it."""
        vm = self.get(name)
        self._require(vm, "hibernate", model.VmStatus.UP, model.VmStatus.PAUSED)
        _host, conn = self.host_of(vm)
        payload = XmlPayload(conn.live_xml(vm.name))
        path = self.ctx.paths.saved / f"{vm.id}.save"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with operation(self.ctx, vm, "vm_hibernate", before_args={"domxml": payload},
                       transitional=model.VmStatus.SAVING_STATE, code=Code.VM_HIBERNATED,
                       failure_code=Code.VM_HIBERNATE_FAILED) as op:
            self.ctx.expected_stops.add(vm.name)
            op.undo.callback(self.ctx.expected_stops.discard, vm.name)
            conn.save(vm.name, str(path))
            self.ctx.expected_stops.discard(vm.name)
            vm.saved_state = str(path)
            vm.status, vm.status_reason, vm.host_id = model.VmStatus.DOWN, "hibernated", None
            op.event = "down: hibernated"
        return vm

    def restore(self, name: str, host: str | None = None) -> model.Vm:
        """Bring a hibernated VM back from its saved memory."""
        vm = self.get(name)
        if not vm.saved_state:
            raise InvalidState(f"VM {name!r} has no saved state to restore")
        h = self.pick_host(vm, host)
        conn = self.ctx.connections.get(h)
        payload = XmlPayload(vm.started_xml or "")
        with operation(self.ctx, vm, "vm_dehibernate",
                       before_args={"domxml": payload, "from_snapshot": False},
                       transitional=model.VmStatus.RESTORING_STATE,
                       code=Code.VM_RESTORED) as op:
            # hand libvirt an XML only when a hook changed it (the saved image has its own)
            changed = self.checked_domain("before_vm_dehibernate", vm, vm.started_xml or "",
                                          payload.xml) \
                if payload.xml != (vm.started_xml or "") else None
            live = conn.restore(vm.name, vm.saved_state, changed)
            os.unlink(vm.saved_state)
            vm.saved_state = None
            vm.host_id = h.id
            vm.started_xml = live
            op.status, op.event = model.VmStatus.UP, "restored"
            op.after_args = {"domxml": XmlPayload(live), "from_snapshot": False}
        return vm

    # ------------------------------------------------------------------ stats

    def stats(self, name: str) -> dict[str, Any]:
        """Stats of one VM (from the host's bulk stats): the driver's keys with VDSM's
        beside them (``vmId``, ``cpuUser``, ``network`` ...: :mod:`._vdsm`), then
        whatever ``after_get_vm_stats`` hooks add or change."""
        vm = self.get(name)
        host, conn = self.host_of(vm)
        self.ctx.hooks.fire("before_get_vm_stats", vm=vm, payload=JsonPayload({"vm": vm.id}))
        stats = [s for s in conn.all_vm_stats() if s.get("name") == vm.name]
        if not stats:
            raise NotFound(f"host {host.name!r} reports no stats for VM {name!r}")
        payload = JsonPayload(self.vdsm_stats.shape(stats[0], vm_id=vm.id, vm_type=host.driver,
                                                    elapsed=self._elapsed(vm)))
        self.ctx.hooks.fire("after_get_vm_stats", on_error=self.ctx.hook_error_sink(vm.id),
                            vm=vm, payload=payload)
        result: dict[str, Any] = payload.data
        return result

    def _elapsed(self, vm: model.Vm) -> float | None:
        """Seconds since the VM's guest was started, from its event log (None if unknown);
        read for one VM's stats only: the bulk call uses what the driver reports."""
        for ts, _level, message in reversed(self.ctx.store.events(vm.id)):
            if message.startswith(_START_EVENTS):
                return max(time.time() - ts, 0.0)
        return None

    def all_stats(self, host_name: str) -> builtins.list[dict[str, Any]]:
        """Bulk stats of every VM on a host: one hypervisor call, never one per VM; VDSM's
        keys beside the driver's, as for :meth:`stats` (``elapsedTime`` only where the
        driver reports an uptime)."""
        host = self.ctx.store.find(model.Host, host_name)
        self.ctx.hooks.fire("before_get_all_vm_stats", host=host,
                            payload=JsonPayload({"host": host.id}))
        shape = self.vdsm_stats.shape
        payload = JsonPayload([shape(s, vm_type=host.driver)
                               for s in self.ctx.connections.get(host).all_vm_stats()])
        self.ctx.hooks.fire("after_get_all_vm_stats", on_error=self.ctx.hook_error_sink(host.id),
                            host=host, payload=payload)
        result: builtins.list[dict[str, Any]] = payload.data
        return result


class _StoreRows:
    """The context's store for :class:`~virtplane.scheduling.FirstUpHost`'s explanation,
    opened when a message needs it (building the services opens nothing)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def versions(self, cls: type[Any], *, ids: Iterable[str] | None = None,
                 cluster_ids: Iterable[str] | None = None) -> dict[str, int]:
        return self._ctx.store.versions(cls, ids=ids, cluster_ids=cluster_ids)

    def object_names(self) -> dict[str, str]:
        return self._ctx.store.object_names()

