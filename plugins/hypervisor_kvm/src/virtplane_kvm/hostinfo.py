"""What the ``kvm`` driver tells about a host (capabilities, CPU models, stats) and how
it adapts a domain to that host (domain type, CPU mode, SMBIOS values)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import libvirt
import xmltodict

from virtplane.errors import HypervisorError
from virtplane_kvm.connection import KvmConnectionCore, _fail, log

if TYPE_CHECKING:
    from virtplane.domxml import Domain


class HostInfoMixin(KvmConnectionCore):
    """Capabilities, usable CPU models and host stats; rendering for this host."""

    def capabilities(self) -> dict[str, Any]:
        conn = self.conn
        try:
            caps = xmltodict.parse(conn.getCapabilities(),
                                   force_list=("guest", "cell", "feature", "domain", "cpu"))
            info = conn.getInfo()
            libver = conn.getLibVersion()
            hvver = conn.getVersion()
            drv = conn.getType()
        except libvirt.libvirtError as exc:
            raise _fail(f"reading capabilities of {self.uri}", exc) from None
        host = caps["capabilities"]["host"]
        cpu = host["cpu"][0] if isinstance(host["cpu"], list) else host["cpu"]
        topo = cpu.get("topology") or {}
        guests: dict[str, set[str]] = {}
        for g in caps["capabilities"].get("guest", []):
            arch = g["arch"]
            types = {d["@type"] for d in arch.get("domain", [])}
            guests.setdefault(arch["@name"], set()).update(types)
        cells = ((host.get("topology") or {}).get("cells") or {}).get("cell", [])

        def ver(v: int) -> str:
            return f"{v // 1000000}.{v // 1000 % 1000}.{v % 1000}"

        return {
            "uri": self.uri,
            "driver_type": drv.lower(),
            "arch": cpu.get("arch"),
            "cpu_model": cpu.get("model") if isinstance(cpu.get("model"), str)
            else (cpu.get("model") or {}).get("#text"),
            "cpu_vendor": cpu.get("vendor"),
            "cpu_features": sorted(f["@name"] for f in cpu.get("feature", []) if "@name" in f),
            "cpus": info[2],
            "mhz": info[3],
            "sockets": int(topo.get("@sockets", info[5])),
            "cores": int(topo.get("@cores", info[6])),
            "threads": int(topo.get("@threads", info[7])),
            "memory_mib": info[1],
            "numa_cells": [
                {"id": int(c["@id"]),
                 "memory_kib": int((c.get("memory") or {}).get("#text", 0)),
                 "cpus": int((c.get("cpus") or {}).get("@num", 0))}
                for c in cells
            ],
            "guest_arches": sorted(guests),
            "domain_types": {a: sorted(t) for a, t in sorted(guests.items())},
            "libvirt_version": ver(libver),
            "hypervisor_version": ver(hvver),
            # libvirt's test driver runs a mock i686 guest for any cluster architecture.
            "accepts_any_arch": self.is_test,
        }

    def usable_cpu_models(self, arch: str) -> list[str]:
        """CPU models this host can give ``arch`` guests (libvirt domain capabilities),
        with KVM when the host offers it for that architecture, else TCG."""
        if self.is_test:
            return []
        if self._caps is None:
            self._caps = self.capabilities()
        types = self._caps["domain_types"].get(arch, [])
        if not types:
            return []
        virt = "kvm" if "kvm" in types else "qemu"
        try:
            xml = self.conn.getDomainCapabilities(None, arch, None, virt, 0)
        except libvirt.libvirtError as exc:
            raise _fail(f"domain capabilities of {self.uri} for {arch}", exc) from None
        doc = xmltodict.parse(xml, force_list=("mode", "model"))
        out = []
        for mode in (doc["domainCapabilities"].get("cpu") or {}).get("mode", []):
            if mode.get("@name") == "custom" and mode.get("@supported") == "yes":
                for model in mode.get("model", []):
                    if isinstance(model, dict) and model.get("@usable") != "no":
                        out.append(str(model.get("#text")))
        return out

    def host_stats(self) -> dict[str, Any]:
        """CPU time, memory and load; metrics the driver lacks are listed as unsupported."""
        conn = self.conn
        out: dict[str, Any] = {"unsupported": []}
        probes: dict[str, Any] = {
            "cpu_ns": lambda: dict(conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS)),
            "memory_kib": lambda: dict(
                conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)),
            "free_memory_bytes": conn.getFreeMemory,
            "vms": conn.numOfDomains,
        }
        for key, probe in probes.items():
            try:
                out[key] = probe()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise _fail(f"reading host stats ({key}) of {self.uri}", exc) from None
                out["unsupported"].append(key)
        out["memory_mib"] = conn.getInfo()[1]
        if self.uri.startswith(("qemu:///", "test:///")):
            import os

            out["load"] = list(os.getloadavg())
        return out

    def adapt_domain(self, domain: Domain, arch: str, virt_type: str | None) -> None:
        """Set the domain type for this host: ``kvm`` where available, else ``qemu`` (TCG),
        and fill in the host's SMBIOS values, as VDSM does (plugin API 2.0).

        ``virt_type`` (the VM custom property of that name) forces ``qemu`` or ``kvm``.
        Under TCG and on the test driver the ``<cpu>`` keeps its topology but loses its
        model: QEMU then picks a model it emulates. Under KVM a ``<cpu>`` with no model
        (neither the VM nor its cluster names one) gets ``mode='host-model'``
        (``host-passthrough`` on ARM; on a nested host without ``arch-capabilities``).
        """
        from virtplane.domxml import fill_sysinfo

        if self._caps is None or self._conn is None:
            self._caps = self.capabilities()
            self._identity = None
        caps = self._caps
        if self._identity is None:
            # the host's OS and serial do not change while connected: read them once
            self._identity = _host_identity(self, caps)
        fill_sysinfo(domain, *self._identity)
        if self.is_test:
            domain.type = "test"
            domain.os.arch = caps["arch"]
            domain.os.machine = None
            domain.cpu.clear_model()
            return
        types = caps["domain_types"].get(arch)
        if not types:
            raise HypervisorError(
                f"host {self.uri} cannot run {arch} guests; it offers "
                + ", ".join(caps["guest_arches"])
            )
        if virt_type not in (None, "kvm", "qemu"):
            raise HypervisorError(
                f"custom property virt_type={virt_type!r} is not allowed; use kvm or qemu")
        if virt_type == "kvm" and "kvm" not in types:
            raise HypervisorError(f"host {self.uri} cannot run {arch} guests under KVM")
        domain.type = virt_type or ("kvm" if "kvm" in types else "qemu")
        if domain.type == "qemu":
            domain.cpu.clear_model()  # TCG: let QEMU pick a model it emulates
        elif not domain.cpu.mode and not domain.cpu.model:
            # KVM and neither the VM nor its cluster names a model: the host's CPU as
            # libvirt models it (oVirt's default); ARM has only passthrough (virt-install's)
            arm = arch.startswith(("aarch64", "arm"))
            domain.cpu.mode = "host-passthrough" if arm else "host-model"
            if not arm and "hypervisor" in caps.get("cpu_features", ()):
                # a nested host (itself a guest): its KVM refuses the ARCH_CAPABILITIES
                # MSR value host-model copies from the outer host, and QEMU aborts
                # ("failed to set MSR 0x10a"); that one feature stays out
                from xml.etree import ElementTree

                ElementTree.SubElement(domain.cpu.element, "feature", policy="disable",
                                       name="arch-capabilities")

    def render(self, domain: dict[str, Any], arch: str, virt_type: str | None = None) -> None:
        """Plugin API 1.x form of :meth:`adapt_domain` (deprecated), kept while the core
        and the plugin kit still call it."""
        from virtplane.domxml import render_through

        render_through(domain, lambda dom: self.adapt_domain(dom, arch, virt_type))


def _host_identity(conn: KvmConnectionCore, caps: dict[str, Any]) -> tuple[str, str, str]:
    """(OS name, OS version, serial) of the host for ``<sysinfo>``: what VDSM puts in
    place of the engine's placeholders. The OS comes from ``/etc/os-release`` when the
    host is this machine; otherwise (and for the serial) from libvirt."""
    import platform
    import xml.etree.ElementTree as ET

    name, version = str(caps.get("driver_type") or "libvirt"), str(
        caps.get("hypervisor_version") or "")
    if conn.uri.startswith(("qemu:///", "test:///")):
        try:
            release = platform.freedesktop_os_release()
        except OSError:
            release = {}
        name = release.get("NAME", name)
        version = release.get("VERSION_ID", version)
    serial = ""
    try:
        serial = ET.fromstring(conn.conn.getCapabilities()).findtext("host/uuid") or ""
    except (libvirt.libvirtError, ET.ParseError) as exc:
        log.debug("no host UUID from %s: %s", conn.uri, exc)
    return name, version, serial
