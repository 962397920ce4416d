"""Changing a running guest's devices on a ``kvm`` host: hot-plug and unplug, vCPUs,
and external disk snapshots onto overlays virtplane prepared."""

from __future__ import annotations

from typing import Any

import libvirt
import xmltodict

from virtplane_kvm.connection import KvmConnectionCore, _fail


class DevicesMixin(KvmConnectionCore):
    """Hot-plug of devices and vCPUs, and disk snapshots of a running guest."""

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
