"""KVM/QEMU hypervisor driver for virtplane (driver ``kvm``), through libvirt-python.

Hosts are libvirt URIs: ``qemu:///system``, ``qemu+ssh://host/system``,
``qemu+tls://host/system`` or ``test:///default`` (libvirt's in-process test
driver, used by the demo and the scale tests).
"""

from __future__ import annotations

from virtplane_kvm.driver import Kvm, KvmSettings

__all__ = ["Kvm", "KvmSettings"]
