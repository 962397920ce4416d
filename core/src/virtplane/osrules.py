"""What a guest OS allows on an architecture, checked from OS info (no ``if arch ==``).

The rules read the cluster's compatibility version and the VM's chipset
(``i440fx``/``q35``, from the architecture driver) and compare the VmSpec
with the OS entry: architecture, memory and CPU bounds, disk, CD and NIC
interfaces, display, watchdog, TPM, q35 support and unsupported CPU models. Memory
(``memory_mib``, and ``max_memory_mib`` from the memory up) is bounded by the OS's
``resources.maximum.ram``, and always by :data:`MAX_MEMORY_MIB`
(:func:`max_memory_bound_mib`, which the REST API also uses to show a maximum).
Every message names the rule, the OS, the architecture and what is allowed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from virtplane.model import Cluster, VmSpec
    from virtplane.osinfo import OsRepository

#: virtplane disk interface -> osinfo name
DISK = {"ide": "IDE", "virtio": "VirtIO", "virtio-scsi": "VirtIO_SCSI",
        "spapr-vscsi": "SPAPR_VSCSI", "sata": "SATA"}
#: virtplane NIC model -> osinfo name
NIC = {"virtio": "pv", "e1000": "e1000", "e1000e": "e1000e", "rtl8139": "rtl8139",
       "spapr-vlan": "spaprVlan"}
#: the most memory a VM may have or grow to (``memory_mib``, ``max_memory_mib``) whatever
#: its OS entry says, and the bound of an entry without ``resources.maximum.ram``:
#: 16 TiB, four times what osinfo's ``other`` allows, far beyond any host virtplane
#: runs on, and well inside what the domain XML (KiB) and the state store hold
MAX_MEMORY_MIB = 16 << 20
_DISK_BACK = {v: k for k, v in DISK.items()}
_NIC_BACK = {v: k for k, v in NIC.items()}


def allowed_disk_interfaces(repo: OsRepository, os_name: str, version: str,
                            chipset: str | None) -> list[str]:
    return [_DISK_BACK[i] for i in repo.get_list(os_name, "devices.diskInterfaces", version,
                                                 chipset) if i in _DISK_BACK]


def hotpluggable_disk_interfaces(repo: OsRepository, os_name: str, version: str,
                                 chipset: str | None) -> list[str]:
    return [_DISK_BACK[i] for i in repo.get_list(
        os_name, "devices.disk.hotpluggableInterfaces", version, chipset) if i in _DISK_BACK]


def allowed_nic_models(repo: OsRepository, os_name: str, version: str) -> list[str]:
    return [_NIC_BACK[i] for i in repo.get_list(os_name, "devices.network", version)
            if i in _NIC_BACK]


def max_memory_bound_mib(repo: OsRepository, os_name: str, version: str) -> int:
    """The most memory (MiB) a VM of ``os_name`` may have or grow to at compatibility
    ``version``: the OS's ``resources.maximum.ram``, never above :data:`MAX_MEMORY_MIB`,
    which is also the bound of an OS without a maximum or one osinfo does not know.
    :func:`check` bounds ``memory_mib`` and ``max_memory_mib`` with it."""
    if os_name not in repo.entries:
        return MAX_MEMORY_MIB
    return min(repo.get_int(os_name, "resources.maximum.ram", version) or MAX_MEMORY_MIB,
               MAX_MEMORY_MIB)


def check(spec: VmSpec, cluster: Cluster, repo: OsRepository, os_name: str,
          chipset: str | None, cpu_model: str | None) -> list[str]:
    """Violations of the OS rules (an empty list when the spec is fine)."""
    arch = cluster.architecture
    ver = cluster.compat_version
    if os_name not in repo.entries:
        known = ", ".join(repo.list_for(arch)) or "none"
        return [f"OS {os_name!r} is not known to osinfo; OSes for {arch}: {known}"]
    where = f"on {os_name} ({arch}, compatibility {ver})"
    problems: list[str] = []
    os_arch = repo.arch_of(os_name)
    if os_arch != arch:
        problems.append(f"OS {os_name} is a {os_arch} OS but cluster {cluster.name!r} is "
                        f"{arch}; OSes for {arch}: {', '.join(repo.list_for(arch))}")
        return problems
    lo = repo.get_int(os_name, "resources.minimum.ram", ver)
    hi = max_memory_bound_mib(repo, os_name, ver)  # the absolute bound at most
    if lo and spec.memory_mib < lo or spec.memory_mib > hi:
        problems.append(f"memory {spec.memory_mib} MiB is outside what {os_name} allows "
                        f"({arch}, compatibility {ver}): {lo}..{hi} MiB")
    top = spec.max_memory_mib
    if top is not None and not spec.memory_mib <= top <= max(hi, spec.memory_mib):
        problems.append(f"max_memory_mib {top} MiB is outside what {os_name} allows "
                        f"({arch}, compatibility {ver}): from the VM's memory_mib "
                        f"({spec.memory_mib}) to {hi} MiB")
    min_cpus = repo.get_int(os_name, "resources.minimum.numberOfCpus", ver)
    if min_cpus and spec.vcpus < min_cpus:
        problems.append(f"{os_name} needs at least {min_cpus} vCPUs ({arch}); got {spec.vcpus}")
    max_cpus = repo.get_int(os_name, "resources.maximum.numberOfCpus", ver)
    most = max(spec.vcpus, spec.max_vcpus or 0)
    if max_cpus and most > max_cpus:
        problems.append(f"{os_name} allows at most {max_cpus} vCPUs ({arch}, compatibility "
                        f"{ver}); got {most}")
    disks = allowed_disk_interfaces(repo, os_name, ver, chipset)
    for disk in spec.disks:
        if disk.interface not in disks:
            problems.append(f"disk {disk.name!r}: interface {disk.interface!r} is not allowed "
                            f"{where}{_chip(chipset)}; allowed: {', '.join(disks) or 'none'}")
    if spec.cd is not None and spec.cd.interface is not None:
        cds = repo.get_list(os_name, "devices.cdInterface", ver, chipset)
        if spec.cd.interface not in cds:
            problems.append(f"CD interface {spec.cd.interface!r} is not allowed {where}"
                            f"{_chip(chipset)}; allowed: {', '.join(cds)}")
    nics = allowed_nic_models(repo, os_name, ver)
    for nic in spec.nics:
        if nic.model not in nics:
            problems.append(f"nic {nic.name!r}: model {nic.model!r} is not allowed {where}; "
                            f"allowed: {', '.join(nics) or 'none'}")
    max_pci = repo.get_int(os_name, "devices.maxPciDevices", ver)
    pci = (sum(1 for d in spec.disks if d.interface == "virtio")
           + sum(1 for n in spec.nics if n.model != "spapr-vlan")
           + (1 if any(d.interface == "virtio-scsi" for d in spec.disks) else 0))
    if max_pci and pci > max_pci:
        problems.append(f"{pci} PCI devices (virtio disks, PCI NICs, a VirtIO-SCSI controller) "
                        f"exceed the {max_pci} that {os_name} allows ({arch})")
    if spec.display is not None:
        pairs = repo.get_list(os_name, "devices.display.protocols", ver)
        ok = [p for p in pairs if p.split("/")[0] == spec.display.type and (
            spec.display.video is None or p.split("/")[-1] == spec.display.video)]
        if not ok:
            problems.append(f"display {spec.display.type}/{spec.display.video or '*'} is not "
                            f"allowed {where}; allowed: {', '.join(pairs)}")
    if spec.watchdog is not None:
        models = repo.get_list(os_name, "devices.watchdog.models", ver)
        if spec.watchdog.model not in models:
            problems.append(f"watchdog {spec.watchdog.model!r} is not allowed {where}; "
                            f"allowed: {', '.join(models)}")
    tpm = repo.get(os_name, "devices.tpm", ver) or "unsupported"
    if tpm == "required" and not spec.tpm:
        problems.append(f"{os_name} requires a TPM device ({arch}); set tpm on the VM")
    if tpm == "unsupported" and spec.tpm:
        problems.append(f"TPM is not supported {where}")
    if chipset == "q35" and repo.get(os_name, "q35Support", ver) == "false":
        problems.append(f"{os_name} does not support the q35 chipset ({arch}); use machine pc")
    unsupported = [c.strip().lower() for c in
                   repo.get(os_name, "cpu.unsupported", ver).split(",") if c.strip()]
    if cpu_model and _family(cpu_model) in unsupported:
        problems.append(f"CPU model {cpu_model} is not supported by {os_name} ({arch}); "
                        f"unsupported: {', '.join(unsupported)}")
    return problems


def _chip(chipset: str | None) -> str:
    return f" with the {chipset} chipset" if chipset else ""


def _family(cpu_model: str) -> str:
    """``Nehalem-IBRS`` -> ``nehalem``, ``POWER9`` -> ``power9`` (osinfo's spelling)."""
    return cpu_model.split("-")[0].lower()
