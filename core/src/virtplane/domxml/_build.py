"""The generic domain for a VmSpec, as oVirt's engine writes it (``LibvirtVmXmlBuilder``).

Hook scripts written for oVirt look for what that builder writes, so the
generic part has it too: a ``<cpu>`` element always (with the topology), SMBIOS
``<sysinfo>`` selected by ``<os><smbios mode='sysinfo'/>``, vNICs on a VM
network as ``type='bridge'`` (an oVirt VM network is a Linux bridge of the same
name), and per-device ``<boot order='N'/>`` instead of ``<os><boot dev=...>``.
The hypervisor type is left unset: the hypervisor connection's
``adapt_domain`` sets it, the architecture driver's ``customize_domain`` adds
its machine, CPU and device details.
"""

from __future__ import annotations

import secrets
from typing import Any

from virtplane.domxml._dictform import element_from_dict
from virtplane.domxml.devices import (
    USER_ALIAS_PREFIX,
    Cdrom,
    Disk,
    DiskSource,
    Graphics,
    Interface,
    Serial,
    Video,
    Watchdog,
)
from virtplane.domxml.domain import Domain
from virtplane.errors import InvalidInput
from virtplane.model import DiskSpec, NicSpec, VmSpec

#: ``<sysinfo>`` values oVirt's engine writes; VDSM (here: the hypervisor connection,
#: :meth:`virtplane.domxml.Sysinfo` via ``fill_sysinfo``) replaces the placeholders
#: with the host's OS name, OS version and serial before hooks run.
SYSINFO_MANUFACTURER = "oVirt"
SYSINFO_FAMILY = "oVirt"
OS_NAME_PLACEHOLDER = "OS-NAME:"
OS_VERSION_PLACEHOLDER = "OS-VERSION:"
HOST_SERIAL_PLACEHOLDER = "HOST-SERIAL:"

#: Network names that are not bridges: ``user`` is QEMU's SLIRP; ``default`` (the
#: NicSpec default) is libvirt's NAT network of that name; ``network:NAME`` names
#: any libvirt network explicitly. Every other name is a VM network = a bridge.
USER_NETWORK = "user"
LIBVIRT_NETWORK_PREFIX = "network:"
LIBVIRT_DEFAULT_NETWORK = "default"

#: oVirt's boot sequence letters (``BootSequence``): hard disk, CD-ROM, network.
BOOT_DEVICES = {"C": "disks", "D": "CD-ROM", "N": "network"}
DEFAULT_BOOT_SEQUENCE = "CD"


def target_name(disk: DiskSpec, index: int) -> str:
    """The target device name of a disk at a position (``vda``, ``sdb`` ...)."""
    if not 0 <= index < 26:
        raise InvalidInput(f"disk {disk.name!r}: position {index} has no target name; "
                           "a VM has at most 26 disks per interface prefix")
    prefix = {"virtio": "vd", "ide": "hd"}.get(disk.interface, "sd")
    return prefix + "abcdefghijklmnopqrstuvwxyz"[index]


def bus(interface: str) -> str:
    """The libvirt ``<target bus>`` of a virtplane disk interface."""
    return {"virtio": "virtio", "ide": "ide", "sata": "sata", "virtio-scsi": "scsi",
            "spapr-vscsi": "scsi", "scsi": "scsi"}.get(interface, interface)


def new_disk(disk: DiskSpec, index: int, source: dict[str, Any]) -> Disk:
    """A ``<disk>`` for a VM disk and its storage driver's source description
    (``{"type": "file", "source": {"@file": path}}``, see ``volume_source``)."""
    elem = Disk()
    elem.type = str(source.get("type", "file"))
    elem.device = "disk"
    elem.driver_name, elem.driver_type = "qemu", disk.format.value
    elem.source = DiskSource(element_from_dict("source", source.get("source") or {}))
    elem.target_dev, elem.target_bus = target_name(disk, index), bus(disk.interface)
    elem.serial = disk.name[:20]
    if disk.readonly:
        elem.readonly = True
    return elem


def new_interface(nic: NicSpec) -> Interface:
    """An ``<interface>`` for a vNIC: a bridge named after its network, SLIRP for
    ``user``, a libvirt network for ``default`` and ``network:NAME``."""
    elem = Interface()
    net = nic.network
    if not net:
        raise InvalidInput(f"NIC {nic.name!r} has no network; give a network (a bridge) "
                           f"name, {USER_NETWORK!r} or {LIBVIRT_NETWORK_PREFIX}NAME")
    if net == USER_NETWORK:
        elem.type = "user"
    elif net == LIBVIRT_DEFAULT_NETWORK or net.startswith(LIBVIRT_NETWORK_PREFIX):
        elem.type = "network"
        elem.source_network = net.removeprefix(LIBVIRT_NETWORK_PREFIX)
        if not elem.source_network:
            raise InvalidInput(f"NIC {nic.name!r}: {net!r} names no libvirt network; "
                               f"write {LIBVIRT_NETWORK_PREFIX}NAME")
    else:
        elem.type, elem.source_bridge = "bridge", net
    if nic.mac:
        elem.mac = nic.mac
    elem.model = nic.model
    elem.alias_name = USER_ALIAS_PREFIX + nic.name
    return elem


def boot_sequence(spec: VmSpec) -> str:
    """The VM's boot sequence (oVirt letters), from custom property ``boot_sequence``."""
    seq = spec.custom_properties.get("boot_sequence", DEFAULT_BOOT_SEQUENCE).upper()
    bad = [c for c in seq if c not in BOOT_DEVICES]
    if bad or len(set(seq)) != len(seq) or not seq:
        raise InvalidInput(
            f"custom property boot_sequence={seq!r} is not a boot sequence; use each of "
            + ", ".join(f"{k} ({v})" for k, v in BOOT_DEVICES.items())
            + " at most once, e.g. 'CD' or 'DCN'")
    return seq


def _boot_orders(spec: VmSpec, disks: list[Disk], cd: Cdrom | None,
                 nics: list[Interface]) -> None:
    """``<boot order>`` per device following the boot sequence: bootable disks before
    the others, the CD, the NICs in spec order."""
    paired = list(zip(disks, spec.disks, strict=True))
    first: list[Disk | Interface] = [d for d, s in paired if s.bootable]
    groups: dict[str, list[Disk | Interface]] = {
        "C": first + [d for d, s in paired if not s.bootable],
        "D": [cd] if cd is not None else [],
        "N": list(nics),
    }
    order = 1
    for letter in boot_sequence(spec):
        for dev in groups[letter]:
            dev.boot_order = order
            order += 1


def build_domain(spec: VmSpec, vm_id: str, disk_sources: list[dict[str, Any]]) -> Domain:
    """The generic domain of a VM (before its architecture and hypervisor drivers)."""
    if len(disk_sources) != len(spec.disks):
        raise InvalidInput(f"VM {spec.name!r} has {len(spec.disks)} disks but "
                           f"{len(disk_sources)} disk sources were given")
    dom = Domain.new(spec.name, vm_id, spec.memory_mib, spec.vcpus)
    info = dom.sysinfo
    info.type = "smbios"
    info.manufacturer, info.product = SYSINFO_MANUFACTURER, OS_NAME_PLACEHOLDER
    info.version, info.serial = OS_VERSION_PLACEHOLDER, HOST_SERIAL_PLACEHOLDER
    info.uuid, info.family = vm_id, SYSINFO_FAMILY
    os_ = dom.os
    os_.type = "hvm"
    if spec.arch:
        os_.arch = spec.arch
    if spec.machine:
        os_.machine = spec.machine
    if spec.boot is not None:
        os_.kernel = spec.boot.kernel
        if spec.boot.initrd:
            os_.initrd = spec.boot.initrd
        if spec.boot.cmdline:
            os_.cmdline = spec.boot.cmdline
    os_.smbios_mode = "sysinfo"
    dom.features.acpi = True
    cpu = dom.cpu
    if spec.cpu_model:
        cpu.set_model(spec.cpu_model)
    cpu.sockets, cpu.cores, cpu.threads = spec.vcpus, 1, 1
    dom.on_poweroff, dom.on_reboot, dom.on_crash = "destroy", "restart", "destroy"
    devices = dom.devices
    disks = []
    for i, (disk, src) in enumerate(zip(spec.disks, disk_sources, strict=True)):
        elem = new_disk(disk, i, src)
        elem.alias_name = USER_ALIAS_PREFIX + disk.name
        disks.append(elem)
        devices.add(elem)
    cd = None
    if spec.cd is not None:
        cd = Cdrom()
        iface = spec.cd.interface or "ide"
        cd.target_dev, cd.target_bus = ("hdc" if iface == "ide" else "sdz"), bus(iface)
        if spec.cd.path:
            cd.source_file = spec.cd.path
        devices.add(cd)
    nics = [new_interface(n) for n in spec.nics]
    for nic in nics:
        devices.add(nic)
    if spec.boot is None:
        _boot_orders(spec, disks, cd, nics)
    if spec.display is not None:
        gfx = Graphics()
        # As VDSM does: start with a random, already expired password so the console
        # is locked until a ticket is set (and QEMU accepts tickets later at all).
        gfx.type, gfx.autoport = spec.display.type, True
        gfx.passwd, gfx.passwd_valid_to = secrets.token_hex(4), "1970-01-01T00:00:01"
        gfx.listen_type, gfx.listen_address = "address", "127.0.0.1"
        devices.add(gfx)
        if spec.display.video:
            video = Video()
            video.model = spec.display.video
            devices.add(video)
    if spec.serial_log is not None:
        serial = Serial()
        serial.type, serial.source_path, serial.target_port = "file", spec.serial_log, 0
        devices.add(serial)
    if spec.watchdog is not None:
        dog = Watchdog()
        dog.model, dog.action = spec.watchdog.model, spec.watchdog.action
        devices.add(dog)
    return dom


def fill_sysinfo(dom: Domain, os_name: str, os_version: str, host_serial: str) -> None:
    """Replace oVirt's host placeholders in ``<sysinfo>`` (what VDSM does at start);
    values someone already changed stay."""
    info = dom.sysinfo
    if not info.exists:
        return
    for attr, placeholder, value in (("product", OS_NAME_PLACEHOLDER, os_name),
                                     ("version", OS_VERSION_PLACEHOLDER, os_version),
                                     ("serial", HOST_SERIAL_PLACEHOLDER, host_serial)):
        if getattr(info, attr) == placeholder:
            setattr(info, attr, value)
