"""Turn a VmSpec into libvirt domain XML (through xmltodict).

The core builds the generic part; the hypervisor driver sets the domain type
and emulator, the architecture driver its machine type, CPU and device
details, and storage drivers the source of each disk. Then the
``adjust_domain_xml`` hook runs, then ``before_device_create`` (per device)
and ``before_vm_start``.
"""

from __future__ import annotations

from typing import Any

import xmltodict

from virtplane.model import DiskSpec, NicSpec, VmSpec

DEVICE_TAGS = ("disk", "interface", "graphics", "video", "watchdog", "controller", "memory",
               "serial")


def target_name(disk: DiskSpec, index: int) -> str:
    """The target device name of a disk at a position (``vda``, ``sdb`` ...)."""
    return _target(disk, index)


def disk_targets(xml: str) -> list[str]:
    """Target device names used by the disks of a domain XML."""
    if not xml.lstrip().startswith("<"):
        return []
    doc = parse(xml)
    disks = (doc["domain"].get("devices") or {}).get("disk", [])
    return [d["target"]["@dev"] for d in disks if "target" in d]


def disk_aliases(xml: str) -> dict[str, str]:
    """User alias (``ua-<name>``) -> target device, for the disks of a domain XML."""
    if not xml.lstrip().startswith("<"):
        return {}
    doc = parse(xml)
    out = {}
    for d in (doc["domain"].get("devices") or {}).get("disk", []):
        alias = (d.get("alias") or {}).get("@name")
        if alias and "target" in d:
            out[alias] = d["target"]["@dev"]
    return out


def _target(disk: DiskSpec, index: int) -> str:
    prefix = {"virtio": "vd", "ide": "hd"}.get(disk.interface, "sd")
    return prefix + "abcdefghijklmnopqrstuvwxyz"[index]


def _bus(interface: str) -> str:
    return {"virtio": "virtio", "ide": "ide", "sata": "sata", "virtio-scsi": "scsi",
            "spapr-vscsi": "scsi", "scsi": "scsi"}.get(interface, interface)


def disk_element(disk: DiskSpec, index: int, source: dict[str, Any]) -> dict[str, Any]:
    """A ``<disk>`` element (xmltodict form) for a VM disk and its source."""
    kind = source.get("type", "file")
    elem: dict[str, Any] = {
        "@type": kind,
        "@device": "disk",
        "driver": {"@name": "qemu", "@type": disk.format.value},
        "source": source.get("source", {}),
        "target": {"@dev": _target(disk, index), "@bus": _bus(disk.interface)},
        "serial": disk.name[:20],
    }
    if disk.readonly:
        elem["readonly"] = None
    return elem


def nic_element(nic: NicSpec) -> dict[str, Any]:
    """An ``<interface>`` element for a VM NIC."""
    elem: dict[str, Any]
    if nic.network == "user":
        elem = {"@type": "user"}
    else:
        elem = {"@type": "network", "source": {"@network": nic.network}}
    if nic.mac:
        elem["mac"] = {"@address": nic.mac}
    elem["model"] = {"@type": nic.model}
    elem["alias"] = {"@name": "ua-" + nic.name}
    return elem


def build(spec: VmSpec, vm_id: str, disk_sources: list[dict[str, Any]]) -> dict[str, Any]:
    """The generic domain (xmltodict dict with a ``domain`` root)."""
    devices: dict[str, Any] = {}
    devices["disk"] = [
        disk_element(d, i, src) for i, (d, src) in enumerate(zip(spec.disks, disk_sources, strict=True))
    ]
    for i, d in enumerate(spec.disks):
        devices["disk"][i]["alias"] = {"@name": "ua-" + d.name}
    if spec.cd is not None:
        cd: dict[str, Any] = {
            "@type": "file",
            "@device": "cdrom",
            "driver": {"@name": "qemu", "@type": "raw"},
            "target": {"@dev": "hdc" if (spec.cd.interface or "ide") == "ide" else "sdz",
                       "@bus": _bus(spec.cd.interface or "ide")},
            "readonly": None,
        }
        if spec.cd.path:
            cd["source"] = {"@file": spec.cd.path}
        devices["disk"].append(cd)
    devices["interface"] = [nic_element(n) for n in spec.nics]
    if spec.display is not None:
        import secrets

        # As VDSM does: start with a random, already expired password so the console
        # is locked until a ticket is set (and QEMU accepts tickets later at all).
        devices["graphics"] = {"@type": spec.display.type, "@autoport": "yes",
                               "@passwd": secrets.token_hex(4),
                               "@passwdValidTo": "1970-01-01T00:00:01",
                               "listen": {"@type": "address", "@address": "127.0.0.1"}}
        if spec.display.video:
            devices["video"] = {"model": {"@type": spec.display.video}}
    if spec.serial_log is not None:
        devices["serial"] = {"@type": "file", "source": {"@path": spec.serial_log},
                             "target": {"@port": "0"}}
    if spec.watchdog is not None:
        devices["watchdog"] = {"@model": spec.watchdog.model, "@action": spec.watchdog.action}
    domain: dict[str, Any] = {
        "@type": "kvm",
        "name": spec.name,
        "uuid": vm_id,
        "memory": {"@unit": "MiB", "#text": str(spec.memory_mib)},
        "currentMemory": {"@unit": "MiB", "#text": str(spec.memory_mib)},
        "vcpu": {"@placement": "static", "#text": str(spec.vcpus)},
        "os": {"type": {"#text": "hvm"}, "boot": {"@dev": "hd"}},
        "features": {"acpi": None},
        "on_poweroff": "destroy",
        "on_reboot": "restart",
        "on_crash": "destroy",
        "devices": {k: v for k, v in devices.items() if v},
    }
    if spec.boot is not None:
        domain["os"]["kernel"] = spec.boot.kernel
        if spec.boot.initrd:
            domain["os"]["initrd"] = spec.boot.initrd
        if spec.boot.cmdline:
            domain["os"]["cmdline"] = spec.boot.cmdline
        domain["os"].pop("boot", None)
    if spec.arch:
        domain["os"]["type"]["@arch"] = spec.arch
    if spec.machine:
        domain["os"]["type"]["@machine"] = spec.machine
    if spec.cpu_model:
        domain["cpu"] = {"@mode": "custom", "@match": "exact", "model": spec.cpu_model}
    return {"domain": domain}


def to_xml(domain: dict[str, Any]) -> str:
    """The XML text (compact: libvirt and hooks parse it; libvirt's live XML is the
    readable copy kept with the VM)."""
    return str(xmltodict.unparse(domain, full_document=False))


def parse(xml: str) -> dict[str, Any]:
    return dict(xmltodict.parse(xml, force_list=DEVICE_TAGS))


def devices_xml(xml: str) -> list[tuple[str, str]]:
    """Each device of a domain XML as ``(tag, device XML)``; none for a hypervisor's
    native configuration text (e.g. OVM3's ``vm.cfg``), which has no device XML."""
    if not xml.lstrip().startswith("<"):
        return []
    doc = parse(xml)
    out = []
    for tag, items in (doc["domain"].get("devices") or {}).items():
        for item in items if isinstance(items, list) else [items]:
            out.append((tag, str(xmltodict.unparse({tag: item}, full_document=False))))
    return out


def replace_devices(xml: str, devices: list[tuple[str, str]]) -> str:
    """Rebuild a domain XML with its devices replaced by ``devices`` (tag, XML)."""
    doc = parse(xml)
    new: dict[str, list[Any]] = {}
    for _tag, dev_xml in devices:
        parsed = xmltodict.parse(dev_xml)
        (dev_tag, body), = parsed.items()
        new.setdefault(dev_tag, []).append(body)
    doc["domain"]["devices"] = new
    return to_xml(doc)
