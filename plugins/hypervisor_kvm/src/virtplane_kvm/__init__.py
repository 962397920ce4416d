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

    def privileged_uri_parts(self, uri: str) -> list[str]:
        """The parts of a host URI only a system administrator may give (files of this
        machine, weaker host authentication); refuses a malformed one
        (:mod:`virtplane_kvm.uri_params`)."""
        from virtplane_kvm import opening, uri_params

        opening.check_uri(uri, self.settings.test_driver_files)  # the test driver's files
        return uri_params.privileged_parts(uri)

    def connect(self, uri: str) -> KvmConnection:
        from virtplane_kvm.driver import KvmConnection

        return KvmConnection(uri, self.settings)


