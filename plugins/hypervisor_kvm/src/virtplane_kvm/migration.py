"""Live migration between ``kvm`` hosts (peer-to-peer ``migrateToURI3``)."""

from __future__ import annotations

from typing import Any

import libvirt

from virtplane.errors import HypervisorError
from virtplane_kvm.connection import KvmConnectionCore, _fail


class MigrationMixin(KvmConnectionCore):
    """The migratable XML of a guest and its live migration."""

    def migratable_xml(self, name: str) -> str:
        """The running domain's XML in the form a migration's destination XML must
        match (``VIR_DOMAIN_XML_MIGRATABLE``; the live form fails libvirt's ABI check)."""
        try:
            return str(self._dom(name).XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE))
        except libvirt.libvirtError as exc:
            raise _fail(f"reading the migratable XML of {name}", exc) from None

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
