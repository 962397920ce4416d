"""The libvirt connection of the ``kvm`` driver: opening it (and libvirt's event loop),
reopening it when libvirtd restarted, closing it, and finding a domain on it.

:class:`KvmConnectionCore` is what every part of
:class:`~virtplane_kvm.driver.KvmConnection` builds on.
"""

from __future__ import annotations

import logging
from typing import Any

import libvirt

from virtplane.errors import HostUnreachable, HypervisorError, InvalidState
from virtplane_kvm import bulkstats, opening, uri_params
from virtplane_kvm.settings import KvmSettings

log = logging.getLogger("virtplane.kvm")

# libvirt prints every error to stderr by default; virtplane reports them itself.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


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


class KvmConnectionCore:
    """The libvirt connection to one host, reopened when libvirtd restarted."""

    def __init__(self, uri: str, settings: KvmSettings) -> None:
        self.uri = uri
        self.settings = settings
        self._conn: libvirt.virConnect | None = None
        self._caps: dict[str, Any] | None = None
        self._identity: tuple[str, str, str] | None = None
        #: domain name -> UUID of this connection, kept by its lifecycle events
        self._uuids: bulkstats.DomainUuids | None = None
        self._open()

    def _open(self) -> None:
        self._caps = None  # a reopened connection may be a restarted/upgraded libvirtd
        opening.check_uri(self.uri, self.settings.test_driver_files)
        opening.check_program(self.uri)
        uri_params.check_params(self.uri)
        ensure_event_loop()
        self._conn = opening.open_within(self.uri, self.settings.connect_timeout)
        self._keep_alive(self._conn)

    #: unanswered keepalive messages after which libvirt closes the connection
    KEEPALIVE_COUNT = 3

    def _keep_alive(self, conn: libvirt.virConnect) -> None:
        """Ask libvirt to probe the host every ``[plugin.kvm] keepalive_interval`` seconds
        and close the connection after :data:`KEEPALIVE_COUNT` unanswered probes, so a
        host that vanished (power, network) is noticed instead of a call hanging on a
        dead socket. The test driver runs in-process and has nothing to probe; 0 turns
        it off."""
        interval = self.settings.keepalive_interval
        if interval <= 0 or opening.is_test_uri(self.uri):
            return
        try:
            conn.setKeepAlive(interval, self.KEEPALIVE_COUNT)
        except libvirt.libvirtError as exc:  # a driver without keepalive: noted, not fatal
            log.info("%s: keepalive not set: %s", self.uri, exc.get_error_message())

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
