"""The libvirt side of the ``kvm`` driver: one :class:`KvmConnection` per host."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import libvirt
import xmltodict

from virtplane.errors import HostUnreachable, HypervisorError, InvalidState
from virtplane_kvm import bulkstats
from virtplane_kvm.settings import KvmSettings

if TYPE_CHECKING:
    from virtplane.domxml import Domain

log = logging.getLogger("virtplane.kvm")

# libvirt prints every error to stderr by default; virtplane reports them itself.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

_SHUTOFF_REASONS = {
    libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN: "shut down by the guest",
    libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED: "destroyed",
    libvirt.VIR_DOMAIN_SHUTOFF_CRASHED: "guest crashed",
    libvirt.VIR_DOMAIN_SHUTOFF_FAILED: "QEMU failed",
}

_STOPPED_REASONS = {
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: "destroyed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED: "migrated",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED: "saved",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED: "failed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT: "from snapshot",
}


_event_loop_started = False
_event_lock = __import__("threading").Lock()
#: guards each connection's :class:`~virtplane_kvm.bulkstats.DomainUuids` watcher
_uuids_lock = __import__("threading").Lock()


def ensure_event_loop() -> None:
    """Run libvirt's default event loop in a daemon thread (once per process).

    Must happen before a connection is opened for that connection to deliver events.
    """
    global _event_loop_started
    import threading

    with _event_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def loop() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=loop, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


def _fail(what: str, exc: libvirt.libvirtError) -> HypervisorError:
    return HypervisorError(f"{what}: {exc.get_error_message()}")


class KvmConnection:
    """A libvirt connection to one host, reopened when libvirtd restarted."""

    def __init__(self, uri: str, settings: KvmSettings) -> None:
        self.uri = uri
        self.settings = settings
        self._conn: libvirt.virConnect | None = None
        self._caps: dict[str, Any] | None = None
        self._identity: tuple[str, str, str] | None = None
        #: domain name -> UUID of this connection, kept by its lifecycle events
        self._uuids: bulkstats.DomainUuids | None = None
        self._open()

    # ------------------------------------------------------------ connection

    def _open(self) -> None:
        self._caps = None  # a reopened connection may be a restarted/upgraded libvirtd
        ensure_event_loop()
        try:
            self._conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise HostUnreachable(
                f"cannot connect to {self.uri}: {exc.get_error_message()}"
            ) from None

    @property
    def conn(self) -> libvirt.virConnect:
        """The live connection; reconnects once if libvirtd went away."""
        if self._conn is None:
            self._open()
        else:
            try:
                alive = self._conn.isAlive()
            except libvirt.libvirtError:
                alive = 0
            if not alive:
                try:
                    self._conn.close()
                except libvirt.libvirtError:
                    pass  # the old connection is already dead; nothing to release
                self._open()
        assert self._conn is not None
        return self._conn

    def ping(self) -> None:
        """Check the host answers, reconnecting if libvirtd restarted; HostUnreachable if not."""
        try:
            self.conn.getLibVersion()
        except libvirt.libvirtError as exc:
            self._conn = None
            raise HostUnreachable(f"{self.uri} does not answer: {exc.get_error_message()}") from None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        with _uuids_lock:
            uuids, self._uuids = self._uuids, None
        if uuids is not None:
            uuids.close()
        if conn is None:
            return
        try:
            conn.close()
        except libvirt.libvirtError as exc:
            # the daemon already dropped it (restart); there is nothing left to release
            log.debug("closing %s: %s", self.uri, exc.get_error_message())

    @property
    def is_test(self) -> bool:
        return self.uri.startswith("test")

    def _dom(self, name: str) -> libvirt.virDomain:
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise InvalidState(f"VM {name!r} is not running on {self.uri}") from None
            raise _fail(f"looking up {name}", exc) from None

    # ---------------------------------------------------------- capabilities

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

    # ------------------------------------------------------------ rendering

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

    # ------------------------------------------------------------ lifecycle

    def start(self, name: str, xml: str, flags: int = 0) -> str:
        conn = self.conn
        try:
            conn.lookupByName(name)
        except libvirt.libvirtError:
            pass
        else:
            raise InvalidState(f"a domain named {name!r} already exists on {self.uri}")
        try:
            dom = conn.createXML(xml, flags)
        except libvirt.libvirtError as exc:
            # createXML makes a transient domain: when it fails, nothing stays defined.
            raise _fail(f"starting {name} on {self.uri}", exc) from None
        return str(dom.XMLDesc(0))

    def live_xml(self, name: str) -> str:
        return str(self._dom(name).XMLDesc(0))

    def migratable_xml(self, name: str) -> str:
        """The running domain's XML in the form a migration's destination XML must
        match (``VIR_DOMAIN_XML_MIGRATABLE``; the live form fails libvirt's ABI check)."""
        try:
            return str(self._dom(name).XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE))
        except libvirt.libvirtError as exc:
            raise _fail(f"reading the migratable XML of {name}", exc) from None

    def state(self, name: str) -> tuple[str, str]:
        try:
            dom = self.conn.lookupByName(name)
        except libvirt.libvirtError:
            return "Down", "not on host"
        try:
            st, reason = dom.state()
        except libvirt.libvirtError:
            return "Down", "not on host"
        if st in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED):
            return "Down", _SHUTOFF_REASONS.get(reason, f"shut off (reason {reason})")
        return bulkstats.STATES.get(st, "Down"), str(reason)

    def destroy(self, name: str) -> None:
        try:
            self._dom(name).destroy()
        except libvirt.libvirtError as exc:
            raise _fail(f"destroying {name}", exc) from None

    def shutdown(self, name: str, timeout: float) -> str:
        dom = self._dom(name)
        try:
            dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                # e.g. the test driver has no ACPI mode; fall back to its plain shutdown
                try:
                    dom.shutdown()
                except libvirt.libvirtError as exc2:
                    raise _fail(f"shutting down {name}", exc2) from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                st, _ = dom.state()
            except libvirt.libvirtError:
                return "shutdown"
            if st == libvirt.VIR_DOMAIN_SHUTOFF:
                return "shutdown"
            time.sleep(self.settings.shutdown_poll_seconds)
        try:
            dom.destroy()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
                return "shutdown"  # went down between the last poll and the destroy
            raise _fail(f"destroying {name} after shutdown timeout", exc) from None
        return "destroyed"

    def pause(self, name: str) -> None:
        try:
            self._dom(name).suspend()
        except libvirt.libvirtError as exc:
            raise _fail(f"pausing {name}", exc) from None

    def resume(self, name: str) -> None:
        try:
            self._dom(name).resume()
        except libvirt.libvirtError as exc:
            raise _fail(f"continuing {name}", exc) from None

    def reboot(self, name: str) -> None:
        try:
            self._dom(name).reboot(0)
        except libvirt.libvirtError as exc:
            raise _fail(f"rebooting {name}", exc) from None

    def save(self, name: str, path: str) -> None:
        try:
            self._dom(name).save(path)
        except libvirt.libvirtError as exc:
            raise _fail(f"saving {name} to {path}", exc) from None

    def restore(self, name: str, path: str, xml: str | None) -> str:
        try:
            self.conn.restoreFlags(path, xml, 0)
        except libvirt.libvirtError as exc:
            raise _fail(f"restoring {name} from {path}", exc) from None
        return self.live_xml(name)

    def saved_xml(self, path: str) -> str:
        """The domain XML stored in a saved-memory file."""
        try:
            return str(self.conn.saveImageGetXMLDesc(path, 0))
        except libvirt.libvirtError as exc:
            raise _fail(f"reading {path}", exc) from None

    def snapshot_disks(
        self, name: str, disks: list[tuple[str, dict[str, Any]]], memory_path: str | None
    ) -> None:
        """External snapshot onto overlays virtplane prepared (VDSM's way: REUSE_EXT,
        no libvirt metadata), with the guest's memory when ``memory_path`` is given."""
        dom = self._dom(name)
        if self.is_test:
            return  # the test driver's disks are not real files; the layers are enough
        body: dict[str, Any] = {"disks": {"disk": [
            {"@name": target, "@snapshot": "external", "@type": src.get("type", "file"),
             "driver": {"@type": "qcow2"}, "source": src.get("source", {})}
            for target, src in disks]}}
        flags = (libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT
                 | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
                 | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC)
        if memory_path:
            body = {"memory": {"@snapshot": "external", "@file": memory_path}, **body}
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_LIVE
        else:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
        xml = xmltodict.unparse({"domainsnapshot": body}, full_document=False)
        try:
            dom.snapshotCreateXML(xml, flags)
        except libvirt.libvirtError as exc:
            raise _fail(f"snapshot of {name}", exc) from None

    def attach_device(self, name: str, xml: str) -> None:
        try:
            self._dom(name).attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as exc:
            raise _fail(f"plugging a device into {name}", exc) from None

    def detach_device(self, name: str, xml: str) -> None:
        try:
            self._dom(name).detachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as exc:
            raise _fail(f"unplugging a device from {name}", exc) from None

    def update_device(self, name: str, xml: str) -> None:
        try:
            self._dom(name).updateDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as exc:
            raise _fail(f"updating a device of {name}", exc) from None

    def set_vcpus(self, name: str, count: int) -> None:
        """Set the running guest's online vCPUs (hot-plugged up to ``<vcpu>``'s maximum)."""
        try:
            self._dom(name).setVcpusFlags(count, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as exc:
            raise _fail(f"setting {count} vCPUs on {name}", exc) from None

    # ------------------------------------------------------------ events

    def watch(self, on_stopped: Any) -> None:
        """Call ``on_stopped(name, reason)`` whenever a domain on this host stops.

        ``reason`` is libvirt's: shutdown, destroyed, crashed, migrated, saved,
        failed, from snapshot.
        """

        def cb(_conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
            if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
                on_stopped(dom.name(), _STOPPED_REASONS.get(detail, f"stopped ({detail})"))

        self.conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, cb, None)

    # ------------------------------------------------------------ migration

    def migrate(
        self, name: str, dest_uri: str, *, migration_uri: str | None = None,
        bandwidth_mib: int | None = None, max_downtime_ms: int | None = None,
        unsafe: bool = False, progress: Any = None, cancel: Any = None,
        poll_seconds: float = 0.2, dest_xml: str | None = None,
    ) -> None:
        """Live-migrate peer-to-peer with ``migrateToURI3``.

        :param progress: called with a percentage while the job runs.
        :param cancel: a ``threading.Event``; when set, the job is aborted and
            the guest keeps running on this host.
        :param dest_xml: the domain XML the destination starts the guest from (the
            core sends it when a prepared disk has another path there).
        :raises HypervisorError: the migration failed or was cancelled.
        """
        import threading

        dom = self._dom(name)
        params: dict[str, Any] = {}
        if migration_uri:
            params[libvirt.VIR_MIGRATE_PARAM_URI] = migration_uri
        if bandwidth_mib:
            params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = int(bandwidth_mib)
        if dest_xml:
            params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = dest_xml
        flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
                 | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
        if unsafe:
            flags |= libvirt.VIR_MIGRATE_UNSAFE
        outcome: dict[str, BaseException | None] = {"error": None}

        def run() -> None:
            try:
                dom.migrateToURI3(dest_uri, params, flags)
            except libvirt.libvirtError as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=run, name=f"migrate-{name}", daemon=True)
        worker.start()
        downtime_set = max_downtime_ms is None
        cancelled = False
        while worker.is_alive():
            worker.join(poll_seconds)
            if not worker.is_alive():
                break
            try:
                if not downtime_set:
                    dom.migrateSetMaxDowntime(int(max_downtime_ms or 0), 0)
                    downtime_set = True
                if cancel is not None and cancel.is_set() and not cancelled:
                    dom.abortJob()
                    cancelled = True
                if progress is not None:
                    stats = dom.jobStats()
                    total = stats.get("memory_total") or 0
                    done = stats.get("memory_processed") or 0
                    if total:
                        progress(min(100.0, 100.0 * done / total))
            except libvirt.libvirtError:
                continue  # the job may not have started yet or just finished
        err = outcome["error"]
        if cancelled:
            raise HypervisorError(f"migration of {name} to {dest_uri} was cancelled") from None
        if err is not None:
            assert isinstance(err, libvirt.libvirtError)
            raise _fail(f"migrating {name} to {dest_uri}", err) from None
        if progress is not None:
            progress(100.0)

    # ------------------------------------------------------------ monitoring

    def all_vm_stats(self) -> list[dict[str, Any]]:
        """Stats of every running domain in one ``getAllDomainStats`` call
        (:func:`virtplane_kvm.bulkstats.convert`). The first call subscribes to the
        connection's lifecycle events, so that later ones need not read the UUID of
        a domain that stayed the same (:class:`~virtplane_kvm.bulkstats.DomainUuids`)."""
        conn = self.conn
        uuids = self._domain_uuids(conn)
        mark = uuids.mark()
        try:
            records = conn.getAllDomainStats(
                bulkstats.GROUPS, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE)
        except libvirt.libvirtError as exc:
            raise _fail(f"bulk stats of {self.uri}", exc) from None
        return bulkstats.convert(records, uuids, mark)

    def _domain_uuids(self, conn: libvirt.virConnect) -> bulkstats.DomainUuids:
        """The remembered UUIDs of ``conn`` (this connection's live libvirt connection),
        watching its events from the first call on; one watcher per libvirt connection
        however many threads poll at once."""
        with _uuids_lock:
            uuids = self._uuids
            if uuids is None or uuids.connection is not conn:
                if uuids is not None:  # libvirtd restarted: the old connection is gone
                    uuids.close()
                uuids = self._uuids = bulkstats.DomainUuids()
                uuids.watch(conn)
            return uuids


STOPPED_REASONS = _STOPPED_REASONS


def _host_identity(conn: KvmConnection, caps: dict[str, Any]) -> tuple[str, str, str]:
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
