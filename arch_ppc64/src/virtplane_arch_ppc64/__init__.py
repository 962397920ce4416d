"""ppc64/ppc64le (POWER, machine type pseries) architecture strategy (driver ``ppc64``).

Device layout follows oVirt (``VmInfoBuildUtils``): the sPAPR VSCSI controller
(libvirt model ``ibmvscsi``) is SCSI controller 0 on the ``spapr-vio`` bus, a
VirtIO-SCSI controller is 1; on controller 0 units 0 and 1 are reserved (unit
1 for a payload CD) and unit 2 is the CD, so disks start at unit 3; on
VirtIO-SCSI disks start at unit 0. sPAPR VLAN NICs get ``spapr-vio`` addresses.
Memory comes in 256 MiB blocks; hot-plugging an sPAPR VSCSI disk is refused, as
oVirt does. What each guest OS allows comes from ``osinfo/ppc64.properties``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from virtplane.domxml import Domain
    from virtplane.model import Cluster, VmSpec

MEMORY_BLOCK_MIB = 256
CPU_MODELS = ["POWER8", "POWER9", "POWER10"]
ARCHES = ("ppc64", "ppc64le")
VSCSI_REG = 0x2000
NIC_REG_BASE = 0x1000
#: compatibility version a CPU model needs (oVirt: POWER8 4.2, POWER9 4.3, POWER10 4.8)
CPU_SINCE = {"POWER8": (4, 2), "POWER9": (4, 3), "POWER10": (4, 8)}


def _ver(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


class Ppc64:
    """The ppc64 architecture driver."""

    VIRTPLANE_PLUGIN_API = ">=2.0,<3"
    name = "ppc64"
    default_os = "other_ppc64"
    memory_granularity_mib = MEMORY_BLOCK_MIB
    #: the most vCPUs a VM may have (oVirt's MaxNumOfVmCpus on ppc64); the core refuses more
    max_vcpus = 384

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings

    def cpu_models(self) -> list[str]:
        return list(CPU_MODELS)

    def machine_types(self) -> list[str]:
        return ["pseries"]

    def chipset(self, spec: VmSpec) -> str | None:
        return None  # pseries has no i440fx/q35 distinction

    def osinfo_files(self) -> list[Path]:
        return [Path(__file__).with_name("osinfo") / "ppc64.properties"]

    def features(self, compat_version: str) -> dict[str, bool]:
        return {
            "live_migration": True, "memory_snapshot": True, "hibernate": True,
            "cpu_hotplug": True, "cpu_hotunplug": True, "memory_hotplug": True,
            "memory_hotunplug": True, "nic_hotplug": True, "disk_hotplug": True,
            "tpm": _ver(compat_version) >= (4, 6), "uefi": False, "secure_boot": False,
        }

    def disk_hotplug_refusal(self, interface: str) -> str | None:
        if interface == "spapr-vscsi":
            return ("hot-plugging an sPAPR VSCSI disk is not supported on ppc64 (oVirt refuses "
                    "it too); plug it as virtio or virtio-scsi, or attach it while the VM is Down")
        return None

    def validate(self, spec: VmSpec, cluster: Cluster) -> list[str]:
        problems = []
        if spec.memory_mib % MEMORY_BLOCK_MIB:
            problems.append(
                f"memory {spec.memory_mib} MiB is not a multiple of {MEMORY_BLOCK_MIB} MiB, "
                f"which ppc64 requires; e.g. {max(1, round(spec.memory_mib / 256)) * 256} MiB")
        if spec.machine is not None and not (spec.machine == "pseries"
                                             or spec.machine.startswith("pseries-")):
            problems.append(f"machine type {spec.machine!r} is not available on ppc64; "
                            "allowed: pseries (or a versioned pseries-*)")
        if spec.arch is not None and spec.arch not in ARCHES:
            problems.append(f"guest architecture {spec.arch!r} does not belong to a ppc64 "
                            f"cluster; allowed: {', '.join(ARCHES)}")
        cpu = spec.cpu_model or cluster.cpu_model
        if cpu is not None:
            if cpu not in CPU_MODELS:
                problems.append(f"CPU model {cpu!r} is not a ppc64 model; allowed: "
                                f"{', '.join(CPU_MODELS)}")
            elif _ver(cluster.compat_version) < CPU_SINCE[cpu]:
                since = ".".join(map(str, CPU_SINCE[cpu]))
                problems.append(f"CPU model {cpu} needs compatibility {since} or later "
                                f"(cluster {cluster.name!r} is {cluster.compat_version})")
        if spec.tpm and not self.features(cluster.compat_version)["tpm"]:
            problems.append(f"TPM needs compatibility 4.6 or later on ppc64 "
                            f"(cluster is {cluster.compat_version})")
        return problems

    def customize_domain(self, spec: VmSpec, cluster: Cluster, domain: Domain) -> None:
        """pseries' part of the domain (plugin API 2.0): machine, CPU, no ACPI and no
        SMBIOS (oVirt writes both on x86 only), oVirt's SCSI controllers and drive
        addresses, sPAPR VLAN addresses, a VGA video when there is a display."""
        from virtplane.domxml import Address, Controller, Video

        os_ = domain.os
        os_.arch = spec.arch if spec.arch in ARCHES else "ppc64"
        os_.machine = spec.machine or "pseries"
        os_.smbios_mode = None
        domain.features = None
        domain.sysinfo = None
        cpu = spec.cpu_model or cluster.cpu_model
        if cpu is not None:
            domain.cpu.set_model(cpu)
        devices = domain.devices
        by_name = {d.name: d for d in spec.disks}
        if any(d.interface == "spapr-vscsi" for d in spec.disks) or spec.cd is not None:
            vscsi = Controller.new("scsi", 0, "ibmvscsi")
            vscsi.address = Address.spapr_vio(VSCSI_REG)
            devices.add(vscsi)
        if any(d.interface == "virtio-scsi" for d in spec.disks):
            devices.add(Controller.new("scsi", 1, "virtio-scsi"))
        vscsi_unit, virtio_unit = 3, 0
        for disk in devices.disks:
            if disk.is_cdrom:
                disk.target_dev, disk.target_bus = "sdz", "scsi"
                disk.address = Address.drive(0, 2)
                continue
            spec_disk = by_name.get(disk.user_name() or "")
            if spec_disk is None:
                continue
            if spec_disk.interface == "spapr-vscsi":
                disk.address = Address.drive(0, vscsi_unit)
                vscsi_unit += 1
            elif spec_disk.interface == "virtio-scsi":
                disk.address = Address.drive(1, virtio_unit)
                virtio_unit += 1
        for i, nic in enumerate(devices.interfaces):
            if nic.model == "spapr-vlan":
                nic.address = Address.spapr_vio(NIC_REG_BASE + i)
        if spec.display is not None and not devices.videos:
            video = Video()
            video.model = "vga"
            devices.add(video)

    def render(self, spec: VmSpec, cluster: Cluster, domain: dict[str, Any]) -> None:
        """Plugin API 1.x form of :meth:`customize_domain` (deprecated), kept while the
        core and the plugin kit still call it."""
        from virtplane.domxml import render_through

        render_through(domain, lambda dom: self.customize_domain(spec, cluster, dom))
