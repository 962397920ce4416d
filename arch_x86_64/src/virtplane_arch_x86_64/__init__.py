"""x86_64 architecture strategy for virtplane (driver ``x86_64``).

CPU models (oVirt 4.8's ServerCPUList families, Intel and AMD, with their
Secure variants), machine types q35 (default) and pc, the chipset each implies,
per-compatibility-version features, structural validation and rendering. What
each guest OS allows (disk interfaces per chipset, NIC models, display ...)
comes from ``osinfo/x86_64.properties`` and is checked by the core.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from virtplane.domxml import Domain
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

PCIE_ROOT_PORTS = 8


class X86_64:
    """The x86_64 architecture driver."""

    VIRTPLANE_PLUGIN_API = ">=2.0,<3"
    name = "x86_64"
    default_os = "other"
    memory_granularity_mib = 1
    #: the most vCPUs a VM may have (oVirt's MaxNumOfVmCpus on x86_64); the core refuses more
    max_vcpus = 710

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

    def chipset(self, spec: VmSpec) -> str | None:
        machine = spec.machine or "q35"
        return "q35" if machine.startswith(("q35", "pc-q35")) else "i440fx"

    def osinfo_files(self) -> list[Path]:
        return [Path(__file__).with_name("osinfo") / "x86_64.properties"]

    def disk_hotplug_refusal(self, interface: str) -> str | None:
        if interface in ("ide", "sata"):
            return f"{interface.upper()} disks cannot be hot-plugged on x86_64; use virtio or virtio-scsi"
        return None

    def validate(self, spec: VmSpec, cluster: Cluster) -> list[str]:
        """Structural x86_64 rules; what each OS allows comes from osinfo (core)."""
        problems = []
        if spec.arch is not None and spec.arch not in ("x86_64", "i686"):
            problems.append(f"guest architecture {spec.arch!r} does not belong to an x86_64 "
                            "cluster; allowed: x86_64, i686")
        if self.chipset(spec) == "q35":
            for disk in spec.disks:
                if disk.interface == "ide":
                    problems.append(
                        f"disk {disk.name!r}: IDE is not available on the q35 machine type; "
                        "use virtio, virtio-scsi or sata (or machine type pc)")
            if spec.cd is not None and spec.cd.interface == "ide":
                problems.append("CD: IDE is not available on the q35 machine type; use sata")
        if spec.machine is not None and not any(
            spec.machine == m or spec.machine.startswith(p)
            for m, p in (("q35", "pc-q35-"), ("pc", "pc-i440fx-"))
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
        if spec.tpm and not self.features(cluster.compat_version)["tpm"]:
            problems.append(f"TPM needs compatibility 4.6 or later on x86_64 "
                            f"(cluster is {cluster.compat_version})")
        return problems

    def customize_domain(self, spec: VmSpec, cluster: Cluster, domain: Domain) -> None:
        """x86_64's part of the domain: machine type, CPU model, ACPI/APIC, the CD
        interface the chipset has, and PCIe root ports on q35 (plugin API 2.0)."""
        from virtplane.domxml import Controller

        os_ = domain.os
        os_.arch = "x86_64"
        if os_.machine is None:
            os_.machine = spec.machine or "q35"
        cpu = spec.cpu_model or cluster.cpu_model
        if cpu is not None:
            domain.cpu.set_model(cpu)
        features = domain.features
        features.acpi = features.apic = True
        q35 = (os_.machine or "").startswith(("q35", "pc-q35"))
        if spec.cd is None or spec.cd.interface is None:
            # the CD interface follows the chipset: q35 has no IDE controller
            for cd in domain.devices.cdroms:
                cd.target_dev, cd.target_bus = ("sdz", "sata") if q35 else ("hdc", "ide")
        if q35:
            # q35 has no hotpluggable slots of its own: give it PCIe root ports, as oVirt
            # does (NumOfPciExpressPorts), so disks and NICs can be hot-plugged.
            devices = domain.devices
            devices.add(Controller.new("pci", 0, "pcie-root"))
            for i in range(1, PCIE_ROOT_PORTS + 1):
                devices.add(Controller.new("pci", i, "pcie-root-port"))

    def render(self, spec: VmSpec, cluster: Cluster, domain: dict[str, Any]) -> None:
        """Plugin API 1.x form of :meth:`customize_domain` (deprecated), kept while the
        core and the plugin kit still call it."""
        from virtplane.domxml import render_through

        render_through(domain, lambda dom: self.customize_domain(spec, cluster, dom))
