"""KVM/QEMU hypervisor driver for virtplane (driver ``kvm``), through libvirt-python.

Hosts are libvirt URIs: ``qemu:///system``, ``qemu+ssh://host/system``,
``qemu+tls://host/system`` or ``test:///default`` (libvirt's in-process test
driver, used by the demo and the scale tests). This module is what the entry
point loads; it stays light (libvirt is imported on the first connect) so that
listing plugins does not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from virtplane_kvm.driver import KvmConnection
    from virtplane_kvm.settings import KvmSettings

__all__ = ["Kvm"]


class Kvm:
    """Driver entry point: ``Kvm(settings).connect(uri)``."""

    VIRTPLANE_PLUGIN_API = ">=2.0,<3"
    VIRTPLANE_SETTINGS = "virtplane_kvm.settings:KvmSettings"
    name = "kvm"

    def __init__(self, settings: KvmSettings | None = None) -> None:
        if settings is None:
            from virtplane_kvm.settings import KvmSettings

            settings = KvmSettings()
        self.settings = settings

    def connect(self, uri: str) -> KvmConnection:
        from virtplane_kvm.driver import KvmConnection

        return KvmConnection(uri, self.settings)


