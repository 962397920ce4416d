"""A guest's lifecycle on a ``kvm`` host: start, state, shut down, pause, reboot, save
and restore, and the events of guests that stopped."""

from __future__ import annotations

import time
from typing import Any

import libvirt

from virtplane.errors import InvalidState
from virtplane_kvm import bulkstats
from virtplane_kvm.connection import KvmConnectionCore, _fail

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


class LifecycleMixin(KvmConnectionCore):
    """Starting, stopping, pausing and saving guests; watching them stop."""

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

    def watch(self, on_stopped: Any) -> None:
        """Call ``on_stopped(name, reason)`` whenever a domain on this host stops.

        ``reason`` is libvirt's: shutdown, destroyed, crashed, migrated, saved,
        failed, from snapshot.
        """

        def cb(_conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
            if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
                on_stopped(dom.name(), _STOPPED_REASONS.get(detail, f"stopped ({detail})"))

        self.conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, cb, None)
