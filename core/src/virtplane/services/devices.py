"""Devices of running VMs: NIC, disk and memory hot(un)plug, vCPUs, CD media, console
tickets. Each goes through the one operation skeleton with VDSM's hook points."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable

import attrs

from virtplane import domxml, drivers, model, osrules
from virtplane.domxml.devices import USER_ALIAS_PREFIX
from virtplane.errors import InvalidInput, InvalidState
from virtplane.events import Code
from virtplane.payloads import XmlPayload
from virtplane.services._ops import operation
from virtplane.services.arch import Architectures
from virtplane.services.context import Context
from virtplane.services.disks import Isos
from virtplane.services.vms import Vms
from virtplane.services.volumes import Volumes


def _live_devices(conn: drivers.HypervisorConnection, vm: model.Vm) -> domxml.Devices | None:
    """The running VM's ``<devices>``, typed (None: the hypervisor has no domain XML,
    e.g. OVM3's ``vm.cfg``)."""
    xml = conn.live_xml(vm.name)
    if not xml.lstrip().startswith("<"):
        return None
    return domxml.Domain.from_xml(xml).devices


def _user_device(devices: domxml.Devices | None, tag: str, name: str) -> domxml.Device | None:
    """The ``<tag>`` device whose alias is exactly ``ua-<name>`` (virtplane's device
    ``name``): never a prefix or substring, never a hypervisor-given alias."""
    if devices is None:
        return None
    alias = USER_ALIAS_PREFIX + name
    for dev in devices:
        if dev.element.tag == tag and dev.alias_name == alias:
            return dev
    return None


class Devices:
    """Hot-plug and live device changes of running VMs."""

    def __init__(self, ctx: Context, vms: Vms, arch: Architectures, volumes: Volumes,
                 isos: Isos) -> None:
        self.ctx = ctx
        self.vms = vms
        self.arch = arch
        self.volumes = volumes
        self.isos = isos

    def _running(self, name: str, what: str = "hotplug") -> tuple[
            model.Vm, drivers.HypervisorConnection]:
        vm = self.vms.get(name)
        if vm.status not in (model.VmStatus.UP, model.VmStatus.PAUSED):
            raise InvalidState(f"VM {name!r} is {vm.status.value}; {what} needs Up or Paused")
        _host, conn = self.vms.host_of(vm)
        return vm, conn

    def _plug(self, vm: model.Vm, kind: str, plug: bool, dev_xml: str,
              apply: Callable[[str], None], on_success: Callable[[], str | None]) -> None:
        """One hot(un)plug: ``before_<kind>_hot(un)plug``, the driver call, then ``after_*``
        or ``after_*_fail`` (``kind`` is nic, disk or memory). ``on_success`` records the
        change; the event line it returns, if any, replaces the default one."""
        point = f"{kind}_hot{'plug' if plug else 'unplug'}"
        payload = XmlPayload(dev_xml)
        with operation(self.ctx, vm, point, before_args={"devxml": payload},
                       fail_point=f"after_{point}_fail") as op:
            apply(payload.xml)
            event = on_success()
            op.store = False
            op.event = event or f"{point}: {kind} {'plugged' if plug else 'unplugged'}"

    def _plugged(self, conn: drivers.HypervisorConnection, vm: model.Vm, tag: str,
                 name: str) -> str:
        """The live XML of the device whose alias is ``ua-<name>``, exactly."""
        dev = _user_device(_live_devices(conn, vm), tag, name)
        if dev is not None:
            return dev.to_xml()
        if drivers.implements(conn, drivers.NativeConfig) and tag == "interface":
            # no live device XML on this hypervisor: the device as the spec renders it
            for nic in vm.spec.nics:
                if nic.name == name:
                    return domxml.new_interface(nic).to_xml()
        raise InvalidInput(f"VM {vm.name!r} has no {tag} named {name!r} plugged")

    # ------------------------------------------------------------------ NICs

    def hotplug_nic(self, name: str, nic: model.NicSpec) -> model.Vm:
        """Plug a NIC into a running VM (``before/after_nic_hotplug``, ``after_nic_hotplug_fail``)."""
        vm, conn = self._running(name)
        if any(n.name == nic.name for n in vm.spec.nics):
            raise InvalidInput(f"VM {name!r} already has a NIC named {nic.name!r}")
        self.arch.validate(attrs.evolve(vm.spec, nics=[*vm.spec.nics, nic]),
                           self.vms.cluster(vm))
        xml = domxml.new_interface(nic).to_xml()  # alias ua-<name>

        def done() -> None:
            vm.spec.nics.append(nic)
            self.ctx.store.update(vm)

        self._plug(vm, "nic", True, xml, lambda x: conn.attach_device(vm.name, x), done)
        return vm

    def hotunplug_nic(self, name: str, nic_name: str) -> model.Vm:
        """Unplug a NIC from a running VM."""
        return self._unplug(name, "nic", nic_name)

    def _unplug(self, name: str, kind: str, device: str) -> model.Vm:
        """Unplug the NIC or disk ``device`` and drop it from the spec (a disk's image
        stays)."""
        vm, conn = self._running(name)
        xml = self._plugged(conn, vm, "interface" if kind == "nic" else "disk", device)

        def done() -> None:
            if kind == "nic":
                vm.spec.nics = [n for n in vm.spec.nics if n.name != device]
            else:
                vm.spec.disks = [d for d in vm.spec.disks if d.name != device]
            self.ctx.store.update(vm)

        self._plug(vm, kind, False, xml, lambda x: conn.detach_device(vm.name, x), done)
        return vm

    # ----------------------------------------------------------------- disks

    def hotplug_disk(self, name: str, disk: model.DiskSpec) -> model.Vm:
        """Plug a disk (a new volume on its storage domain, or a path) into a running VM."""
        vm, conn = self._running(name)
        if any(d.name == disk.name for d in vm.spec.disks):
            raise InvalidInput(f"VM {name!r} already has a disk named {disk.name!r}")
        cl = self.vms.cluster(vm)
        arch = self.arch.driver(cl.architecture)
        refusal = arch.disk_hotplug_refusal(disk.interface)
        if refusal:
            raise InvalidInput(refusal)
        os_name = self.arch.os_name(vm.spec, cl)
        hot = osrules.hotpluggable_disk_interfaces(self.arch.osinfo, os_name, cl.compat_version,
                                                   arch.chipset(vm.spec))
        if disk.interface not in hot:
            raise InvalidInput(f"disk interface {disk.interface!r} cannot be hot-plugged on "
                               f"{os_name} ({cl.architecture}); hot-pluggable: "
                               f"{', '.join(hot) or 'none'}")
        self.arch.validate(attrs.evolve(vm.spec, disks=[*vm.spec.disks, disk]), cl)
        self.volumes.check_attach(vm.id, disk)  # another VM's disk, a template's base
        live = _live_devices(conn, vm)
        used = set(live.disk_targets()) if live is not None else set()
        index = next(i for i in range(26) if domxml.target_name(disk, i) not in used)
        made = self.volumes.new_disk(vm.id, disk)
        try:
            source = self.volumes.disk_source(disk)
            if disk.image_id and disk.domain_id:
                source = self.vms.prepared(vm, disk, source)
            elem = domxml.new_disk(disk, index, source)
            elem.alias_name = USER_ALIAS_PREFIX + disk.name
            xml = elem.to_xml()

            def done() -> None:
                vm.spec.disks.append(disk)
                self.ctx.store.update(vm)

            self._plug(vm, "disk", True, xml, lambda x: conn.attach_device(vm.name, x), done)
        except BaseException:
            if made is not None:
                self.volumes.drop([made], [])
            raise
        return vm

    def hotunplug_disk(self, name: str, disk_name: str) -> model.Vm:
        """Unplug a disk; its image stays (remove it with the VM or reattach it)."""
        return self._unplug(name, "disk", disk_name)

    # ---------------------------------------------------------------- memory

    def _memory_feature(self, vm: model.Vm, feature: str, what: str) -> None:
        cl = self.vms.cluster(vm)
        if not self.arch.features_of(cl).supports(feature):
            raise InvalidInput(f"{what} is not supported on {cl.architecture} at "
                               f"compatibility {cl.compat_version}")

    def hotplug_memory(self, name: str, size_mib: int, node: int = 0) -> model.Vm:
        """Plug a memory module (DIMM) of ``size_mib`` into a running VM.

        The VM needs room for it: a maximum memory (``VmSpec.max_memory_mib``) above
        its current memory, as oVirt sets from the cluster's memory hotplug policy.
        """
        vm, conn = self._running(name, "memory hotplug")
        self._memory_feature(vm, "memory_hotplug", "memory hotplug")
        if size_mib <= 0:
            raise InvalidInput(f"memory to plug must be positive; got {size_mib} MiB")
        limit = vm.spec.max_memory_mib or vm.spec.memory_mib
        if vm.spec.memory_mib + size_mib > limit:
            raise InvalidInput(
                f"VM {name!r} has {vm.spec.memory_mib} MiB of at most {limit} MiB; "
                f"{size_mib} MiB more does not fit (create it with a larger max memory)")
        dimm = domxml.Memory()
        dimm.model = "dimm"
        dimm.size, dimm.size_unit, dimm.node = size_mib, "MiB", node
        xml = dimm.to_xml()

        def done() -> None:
            vm.spec.memory_mib += size_mib
            self.ctx.store.update(vm)

        self._plug(vm, "memory", True, xml, lambda x: conn.attach_device(vm.name, x), done)
        return vm

    def hotunplug_memory(self, name: str, size_mib: int) -> model.Vm:
        """Unplug a memory module of ``size_mib`` that was plugged earlier.

        The guest must release the module (ACPI eject). When the hypervisor accepts
        the request but the module is still there afterwards (the guest has not
        released it yet, or has no OS to do it), the unplug is only requested: the
        hooks' ``after_memory_hotunplug`` fires (as VDSM's does when libvirt accepts
        the request), the event says so, and the VM's memory stays what it has.
        """
        vm, conn = self._running(name, "memory hotunplug")
        self._memory_feature(vm, "memory_hotunplug", "memory hot-unplug")

        def modules() -> list[domxml.Memory]:
            live = _live_devices(conn, vm)
            return [d for d in (live.memories if live is not None else [])
                    if d.size_mib == size_mib]

        found = modules()
        if not found:
            raise InvalidInput(f"VM {name!r} has no plugged memory module of {size_mib} MiB")

        def done() -> str | None:
            if len(modules()) >= len(found):
                return (f"memory_hotunplug: unplug of a {size_mib} MiB module requested; the "
                        f"guest has not released it yet (the VM keeps {vm.spec.memory_mib} "
                        "MiB until it does)")
            vm.spec.memory_mib -= size_mib
            self.ctx.store.update(vm)
            return None

        self._plug(vm, "memory", False, found[0].to_xml(),
                   lambda x: conn.detach_device(vm.name, x), done)
        return vm

    # ----------------------------------------------------------------- vCPUs

    def set_vcpus(self, name: str, count: int) -> model.Vm:
        """Change a running VM's vCPUs (``before/after_set_num_of_cpus``), up to its maximum
        (``VmSpec.max_vcpus``); a Down VM just gets the new count for its next start."""
        vm = self.vms.get(name)
        limit = vm.spec.max_vcpus or vm.spec.vcpus
        if count < 1:
            raise InvalidInput(f"a VM needs at least one vCPU; got {count}")
        if vm.status == model.VmStatus.DOWN:
            self.arch.validate(attrs.evolve(vm.spec, vcpus=count), self.vms.cluster(vm))
            vm.spec.vcpus = count
            self.ctx.record(vm, f"vCPUs set to {count} (from the next start)",
                            code=Code.VM_CPUS_SET)
            return vm
        vm, conn = self._running(name, "vCPU hotplug")
        feature = "cpu_hotplug" if count >= vm.spec.vcpus else "cpu_hotunplug"
        self._memory_feature(vm, feature, feature.replace("_", " "))
        if count > limit:
            raise InvalidInput(f"VM {name!r} can have at most {limit} vCPUs while it runs "
                               "(create it with a larger max_vcpus)")
        if not isinstance(conn, drivers.SupportsVcpuHotplug):
            raise InvalidInput(f"the hypervisor of VM {name!r} cannot change vCPUs live")
        with operation(self.ctx, vm, "set_num_of_cpus",
                       before_args={"domxml": XmlPayload(conn.live_xml(vm.name)),
                                    "vcpus": count},
                       code=Code.VM_CPUS_SET, failure_code=Code.VM_CPUS_SET_FAILED) as op:
            conn.set_vcpus(vm.name, count)
            vm.spec.vcpus = count
            op.event = f"vCPUs set to {count}"
            op.after_args = {"domxml": XmlPayload(conn.live_xml(vm.name)), "vcpus": count}
        return vm

    # ---------------------------------------------------- CD and console ticket

    def update_device(self, vm: model.Vm, conn: drivers.HypervisorConnection,
                      xml: str) -> str:
        """Apply a live device update with ``before/after_update_device(_fail)``."""
        payload = XmlPayload(xml)
        with operation(self.ctx, vm, "update_device", before_args={"devxml": payload},
                       fail_point="after_update_device_fail") as op:
            conn.update_device(vm.name, payload.xml)
            op.store = False
        return payload.xml

    def change_cd(self, name: str, path: str | None) -> model.Vm:
        """Insert media into the VM's CD drive (``None`` ejects); live when the VM runs.

        ``path`` is a file or ``iso:DOMAIN/NAME`` (an ISO on an iso domain)."""
        vm = self.vms.get(name)
        if vm.spec.cd is None:
            raise InvalidInput(f"VM {name!r} has no CD drive (give it one when creating it)")
        if path is not None:
            path = self.isos.media_path(path)
            if not os.path.exists(path):
                raise InvalidInput(f"CD image {path!r} does not exist")
        if vm.status in (model.VmStatus.UP, model.VmStatus.PAUSED):
            _host, conn = self.vms.host_of(vm)
            live = _live_devices(conn, vm)
            cdroms = live.cdroms if live is not None else []
            if not cdroms:
                raise InvalidState(f"VM {name!r} runs without a CD drive")
            cdrom = cdroms[0]
            cdrom.source = None
            if path is not None:
                cdrom.source_file = path
            self.update_device(vm, conn, cdrom.to_xml())
        vm.spec.cd.path = path
        self.ctx.record(vm, f"CD {'ejected' if path is None else 'changed to ' + path}")
        return vm

    def set_ticket(self, name: str, password: str, expiry_seconds: int = 120) -> model.Vm:
        """Set the console (VNC/SPICE) password, valid for ``expiry_seconds``.

        Fires ``before/after_vm_set_ticket`` with the protocol and expiry, never the
        password; the event log does not record it either.
        """
        vm = self.vms.get(name)
        if vm.status not in (model.VmStatus.UP, model.VmStatus.PAUSED):
            raise InvalidState(f"VM {name!r} is {vm.status.value}; a ticket needs a running VM")
        if expiry_seconds <= 0:
            raise InvalidInput(f"expiry_seconds must be positive (got {expiry_seconds})")
        _host, conn = self.vms.host_of(vm)
        live = _live_devices(conn, vm)
        graphics = live.graphics if live is not None else []
        if not graphics:
            raise InvalidState(f"VM {name!r} has no graphical console")
        gfx = graphics[0]
        protocol = gfx.type or "vnc"
        if protocol == "vnc" and len(password) > 8:
            raise InvalidInput(f"a VNC password has at most 8 characters (got {len(password)}); "
                               "SPICE allows longer ones")
        until = (datetime.datetime.now(datetime.UTC)
                 + datetime.timedelta(seconds=expiry_seconds))
        gfx.passwd, gfx.passwd_valid_to = password, until.strftime("%Y-%m-%dT%H:%M:%S")
        params = {"protocol": protocol, "expiry_seconds": expiry_seconds}
        sink = self.ctx.hook_error_sink(vm.id)
        self.ctx.hooks.fire("before_vm_set_ticket", on_error=sink, vm=vm,
                            domxml=XmlPayload(vm.started_xml or ""), params=params)
        conn.update_device(vm.name, gfx.to_xml())
        self.ctx.event(vm.id, f"{protocol} ticket set, valid {expiry_seconds} s")
        self.ctx.hooks.fire("after_vm_set_ticket", on_error=sink, vm=vm,
                            domxml=XmlPayload(vm.started_xml or ""), params=params)
        return vm
