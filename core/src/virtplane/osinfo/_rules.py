"""The osinfo grammar's rules: the attributes an OS entry may have and what each
allows, the attributes oVirt retired (and what became of them), and comma lists
with chipset prefixes."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_VERSION = re.compile(r"[34]\.[0-9]")
_BOOL = {"true", "false"}

#: attribute -> kind: "str", "int", "bool", or a frozenset of allowed values, or
#: ("list", allowed) for comma lists (items may carry an ``i440fx/``/``q35/`` prefix).
ATTRIBUTES: dict[str, object] = {
    "id": "int", "name": "str", "description": "str", "derivedFrom": "str",
    "family": "str",
    # any architecture name: a new architecture plugin brings its own OS entries
    "cpuArchitecture": "str",
    "bus": frozenset({"32", "64"}), "cpu.unsupported": "str", "cpu.hotplugSupport": "bool",
    "cpu.hotunplugSupport": "bool", "isTimezoneTypeInteger": "bool",
    "q35Support": frozenset({"true", "false", "insecure"}), "sysprepPath": "str",
    "sysprepFileName": "str", "productKey": "str", "vmInitType": "str", "deprecated": "bool",
    "resources.minimum.ram": "int", "resources.maximum.ram": "int",
    "resources.minimum.disksize": "int", "resources.maximum.disksize": "int",
    "resources.minimum.numberOfCpus": "int", "resources.maximum.numberOfCpus": "int",
    "devices.display.protocols": ("list", None), "devices.display.vramMultiplier": "int",
    "devices.display.vgamemMultiplier": "int",
    "devices.watchdog.models": ("list", frozenset({"i6300esb", "diag288"})),
    "devices.network": ("list", frozenset({"rtl8139_pv", "rtl8139", "e1000", "e1000e", "pv",
                                           "spaprVlan", "pciPassthrough"})),
    "devices.network.hotplugSupport": "bool",
    "devices.disk.hotpluggableInterfaces": ("list", frozenset(
        {"IDE", "VirtIO", "VirtIO_SCSI", "SPAPR_VSCSI", "SATA"})),
    "devices.diskInterfaces": ("list", frozenset(
        {"IDE", "VirtIO", "VirtIO_SCSI", "SPAPR_VSCSI", "SATA"})),
    "devices.audio": ("list", frozenset({"ich6", "ich9", "ac97"})),
    "devices.audio.enabled": "bool",
    "devices.cdInterface": ("list", frozenset({"ide", "scsi", "sata"})),
    "devices.maxPciDevices": "int", "devices.hyperv.enabled": "bool",
    "devices.floppy.support": "bool", "devices.usb.controller": ("list", None),
    "devices.console.target.type": frozenset({"serial", "virtio", "sclp"}),
    "devices.memoryHotplug.specialBlock": "bool", "devices.legacyVirtio": "bool",
    "devices.ovirtGuestAgentChannel": "bool",
    "devices.tpm": frozenset({"unsupported", "supported", "required"}),
}
CHIPSETS = ("i440fx", "q35")


@dataclass(frozen=True)
class Retired:
    """An attribute oVirt once read and later removed (from ovirt-engine's history of
    ``packaging/conf/osinfo-defaults.properties`` and ``osinfo.jj``).

    :ivar era: when oVirt had it (dates of the commits adding and removing it).
    :ivar successor: the attribute that replaced it, or None when nothing did.
    :ivar convert: the retired value -> the successor's value (None: the same text).
    :ivar why: what happened to it, shown in the warning.
    """

    era: str
    successor: str | None
    why: str
    convert: Callable[[str], str] | None = None


def _tpm(value: str) -> str:
    # oVirt's own rename (2021-12, "Add Windows 11 support"): true -> supported,
    # false -> unsupported; "required" did not exist before the rename
    return "supported" if value.lower() == "true" else "unsupported"


def _spice(value: str) -> str:
    # oVirt's own replacement (2013-12, "VM Device Type for Display Type") gave OSes
    # with spiceSupport=false VNC only and the others SPICE as well
    return "vnc/cirrus,spice/qxl" if value.lower() == "true" else "vnc/cirrus"


#: retired attribute -> what became of it
RETIRED: dict[str, Retired] = {
    "resources.minimum.numberOsCpus": Retired(
        "2013-05..2014-08 (oVirt 3.3-3.4)", None,
        "never read by the engine and removed as unused; resources.minimum.numberOfCpus "
        "(2021-12) is a new, enforced rule, so it is not carried over"),
    "resources.recommended.ram": Retired(
        "2013-05..2013-07 (oVirt 3.3)", None, "never read by the engine"),
    "spiceSupport": Retired(
        "2013-05..2014-01 (oVirt 3.3-3.4)", "devices.display.protocols",
        "replaced by the display protocol list", _spice),
    "displayProtocols": Retired(
        "2013-12..2014-01 (oVirt 3.4)", "devices.display.protocols", "renamed"),
    "watchDogModels": Retired(
        "2013-11..2014-01 (oVirt 3.4)", "devices.watchdog.models", "renamed"),
    "devices.balloon.enabled": Retired(
        "2014-06..2021-02 (oVirt 3.5-4.4.4)", None,
        "the memory balloon is allowed for every OS since (oVirt 'refactor ballooning "
        "support')"),
    "devices.tpmAllowed": Retired(
        "2021-04..2021-12 (oVirt 4.4.6-4.4.9)", "devices.tpm",
        "became devices.tpm (true -> supported, false -> unsupported)", _tpm),
}
#: retired spellings of display protocol items (graphics part): 2013's "qxl" was SPICE
_RETIRED_GRAPHICS = {"qxl": "spice"}


def split_list(text: str, chipset: str | None = None) -> list[str]:
    """Items of a comma list; ``i440fx/X``/``q35/X`` items only for that chipset."""
    out = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        prefix, sep, rest = item.partition("/")
        if sep and prefix in CHIPSETS:
            if chipset is None or chipset == prefix:
                out.append(rest.strip())
            continue
        out.append(item)
    return out
