"""x86_64 architecture strategy for virtplane (driver ``x86_64``).

First version: CPU models (oVirt 4.8's ServerCPUList families, Intel and AMD,
with their Secure variants), machine types, disk interfaces, NIC models,
display/video, watchdog models and per-compatibility-version features, and
the validation and rendering of a VmSpec. The osinfo-driven per-OS rules come
with issue #8.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from virtplane.model import Cluster, VmSpec

_INTEL = [
    "Nehalem", "Westmere", "SandyBridge", "IvyBridge", "Haswell-noTSX", "Broadwell-noTSX",
    "Skylake-Client", "Skylake-Server", "Cascadelake-Server", "Icelake-Server",
    "SapphireRapids",
]
_AMD = ["Opteron_G4", "Opteron_G5", "EPYC", "EPYC-Rome", "EPYC-Milan", "EPYC-Genoa"]
_SECURE = [
    "Nehalem-IBRS", "Westmere-IBRS", "SandyBridge-IBRS", "IvyBridge-IBRS",
    "Haswell-noTSX-IBRS", "Broadwell-noTSX-IBRS", "Skylake-Client-IBRS",
    "Skylake-Server-IBRS", "EPYC-IBPB",
]

#: libvirt bus per disk interface.
DISK_INTERFACES = {"virtio": "virtio", "virtio-scsi": "scsi", "sata": "sata", "ide": "ide"}
NIC_MODELS = ["virtio", "e1000", "e1000e", "rtl8139"]
WATCHDOG_MODELS = ["i6300esb", "ib700"]
DISPLAYS = ["vnc", "spice"]
PCIE_ROOT_PORTS = 8
VIDEO_MODELS = ["vga", "qxl", "virtio", "bochs", "cirrus"]


class X86_64:
    """The x86_64 architecture driver."""

    VIRTPLANE_PLUGIN_API = ">=1.0,<2"
    name = "x86_64"

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings

    def cpu_models(self) -> list[str]:
        return [*_INTEL, *_AMD, *_SECURE]

    def machine_types(self) -> list[str]:
        return ["q35", "pc"]

    def features(self, compat_version: str) -> dict[str, bool]:
        major_minor = tuple(int(x) for x in compat_version.split(".")[:2])
        return {
            "live_migration": True,
            "memory_snapshot": True,
            "hibernate": True,
            "cpu_hotplug": True,
            "cpu_hotunplug": True,
            "memory_hotplug": True,
            "memory_hotunplug": True,
            "nic_hotplug": True,
            "disk_hotplug": True,
            "tpm": major_minor >= (4, 6),
            "uefi": True,
            "secure_boot": True,
        }

    def validate(self, spec: VmSpec, cluster: Cluster) -> list[str]:
        problems = []
        for disk in spec.disks:
            if disk.interface not in DISK_INTERFACES:
                problems.append(
                    f"disk {disk.name!r}: interface {disk.interface!r} is not available on "
                    f"x86_64; allowed: {', '.join(DISK_INTERFACES)}"
                )
        for nic in spec.nics:
            if nic.model not in NIC_MODELS:
                problems.append(
                    f"nic {nic.name!r}: model {nic.model!r} is not available on x86_64; "
                    f"allowed: {', '.join(NIC_MODELS)}"
                )
        machine = spec.machine or "q35"
        if machine.startswith(("q35", "pc-q35")):
            for disk in spec.disks:
                if disk.interface == "ide":
                    problems.append(
                        f"disk {disk.name!r}: IDE is not available on the q35 machine type; "
                        "use virtio, virtio-scsi or sata (or machine type pc)")
            if spec.cd is not None and spec.cd.interface == "ide":
                problems.append("CD: IDE is not available on the q35 machine type; use sata")
        if spec.machine is not None and not any(
            spec.machine == m or spec.machine.startswith(m + "-") for m in ["q35", "pc"]
        ):
            problems.append(
                f"machine type {spec.machine!r} is not available on x86_64; allowed: q35, pc "
                "(or a versioned pc-q35-*/pc-i440fx-*)"
            )
        cpu = spec.cpu_model or cluster.cpu_model
        if cpu is not None and cpu not in self.cpu_models():
            problems.append(
                f"CPU model {cpu!r} is not an x86_64 model; allowed: {', '.join(self.cpu_models())}"
            )
        if spec.display is not None:
            if spec.display.type not in DISPLAYS:
                problems.append(
                    f"display {spec.display.type!r} is not available; allowed: {', '.join(DISPLAYS)}"
                )
            if spec.display.video is not None and spec.display.video not in VIDEO_MODELS:
                problems.append(
                    f"video {spec.display.video!r} is not available; allowed: "
                    + ", ".join(VIDEO_MODELS)
                )
        if spec.watchdog is not None and spec.watchdog.model not in WATCHDOG_MODELS:
            problems.append(
                f"watchdog {spec.watchdog.model!r} is not available on x86_64; allowed: "
                + ", ".join(WATCHDOG_MODELS)
            )
        return problems

    def render(self, spec: VmSpec, cluster: Cluster, domain: dict[str, Any]) -> None:
        ostype = domain["os"]["type"]
        ostype["@arch"] = "x86_64"
        ostype.setdefault("@machine", spec.machine or "q35")
        cpu = spec.cpu_model or cluster.cpu_model
        if cpu is not None:
            domain["cpu"] = {"@mode": "custom", "@match": "exact", "model": cpu}
        domain["features"] = {"acpi": None, "apic": None}
        q35 = ostype["@machine"].startswith(("q35", "pc-q35"))
        for disk in domain["devices"].get("disk", []):
            # the CD interface follows the chipset: q35 has no IDE controller
            if disk.get("@device") == "cdrom" and (spec.cd is None or spec.cd.interface is None):
                disk["target"] = ({"@dev": "sdz", "@bus": "sata"} if q35
                                  else {"@dev": "hdc", "@bus": "ide"})
        if q35:
            # q35 has no hotpluggable slots of its own: give it PCIe root ports, as oVirt
            # does (NumOfPciExpressPorts), so disks and NICs can be hot-plugged.
            controllers = domain["devices"].setdefault("controller", [])
            controllers.append({"@type": "pci", "@index": "0", "@model": "pcie-root"})
            controllers.extend({"@type": "pci", "@index": str(i), "@model": "pcie-root-port"}
                               for i in range(1, PCIE_ROOT_PORTS + 1))
