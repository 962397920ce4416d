"""The libvirt side of the ``kvm`` driver: one :class:`KvmConnection` per host.

The connection is put together from one module per part:
:mod:`~virtplane_kvm.connection` (opening, reopening, closing),
:mod:`~virtplane_kvm.hostinfo` (capabilities, host stats, adapting a domain),
:mod:`~virtplane_kvm.lifecycle` (start, stop, pause, save, events),
:mod:`~virtplane_kvm.devices` (hot-plug, vCPUs, disk snapshots),
:mod:`~virtplane_kvm.migration` and :mod:`~virtplane_kvm.monitoring` (bulk stats).
This module re-exports what other modules import from it.
"""

from __future__ import annotations

from virtplane_kvm.connection import ensure_event_loop
from virtplane_kvm.devices import DevicesMixin
from virtplane_kvm.hostinfo import HostInfoMixin
from virtplane_kvm.lifecycle import _STOPPED_REASONS, LifecycleMixin
from virtplane_kvm.migration import MigrationMixin
from virtplane_kvm.monitoring import MonitoringMixin

__all__ = ["STOPPED_REASONS", "KvmConnection", "ensure_event_loop"]


class KvmConnection(LifecycleMixin, DevicesMixin, MigrationMixin, MonitoringMixin,
                    HostInfoMixin):
    """A libvirt connection to one host, reopened when libvirtd restarted."""


STOPPED_REASONS = _STOPPED_REASONS
