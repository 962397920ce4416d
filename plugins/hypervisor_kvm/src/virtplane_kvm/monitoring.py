"""Bulk stats of a ``kvm`` host's running guests, with the domain UUIDs remembered
from the connection's lifecycle events (:mod:`virtplane_kvm.bulkstats`)."""

from __future__ import annotations

from typing import Any

import libvirt

from virtplane_kvm import bulkstats
from virtplane_kvm.connection import KvmConnectionCore, _fail, _uuids_lock


class MonitoringMixin(KvmConnectionCore):
    """Stats of every running guest in one call."""

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
