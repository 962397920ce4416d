"""KVM/QEMU hypervisor driver for virtplane (driver ``kvm``), through libvirt-python.

Hosts are libvirt URIs: ``qemu:///system``, ``qemu+ssh://host/system``,
``qemu+tls://host/system`` or ``test:///default`` (libvirt's in-process test
driver, used by the demo and the scale tests). This module is what the entry
point loads; it stays light (libvirt is imported on the first connect) so that
listing plugins does not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from virtplane_kvm.driver import KvmConnection

__all__ = ["Kvm", "KvmSettings"]


@attrs.define
class KvmSettings:
    """``[plugin.kvm]`` settings.

    :ivar shutdown_poll_seconds: how often a graceful shutdown checks the guest.
    :ivar keepalive_interval: libvirt keepalive interval (seconds; remote URIs).
    """

    shutdown_poll_seconds: float = attrs.field(default=0.2, validator=attrs.validators.gt(0))
    keepalive_interval: int = attrs.field(default=5, validator=attrs.validators.ge(0))


class Kvm:
    """Driver entry point: ``Kvm(settings).connect(uri)``."""

    VIRTPLANE_PLUGIN_API = ">=1.0,<2"
    VIRTPLANE_SETTINGS = KvmSettings
    name = "kvm"

    def __init__(self, settings: KvmSettings | None = None) -> None:
        self.settings = settings or KvmSettings()

    def connect(self, uri: str) -> KvmConnection:
        from virtplane_kvm.driver import KvmConnection

        return KvmConnection(uri, self.settings)


