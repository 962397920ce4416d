#!/usr/bin/python3
"""The virtinst side of the render benchmark: build one VM's domain XML N times.

Run by ``run_all.py`` with the system ``python3`` (Debian's ``virtinst``
package, virt-install's library, lives in /usr/share/virt-manager and is
installed for that interpreter only); the timing happens in here so that the
interpreter start and virtinst's imports are not counted.

The VM is the one virtplane renders on its side: 1 GiB, 2 vCPUs, RHEL 9, one
qcow2 disk on virtio, one virtio NIC on the ``default`` network, a VNC
display. virtinst builds it the way ``virt-install`` does (``Guest`` plus
devices, ``set_capabilities_defaults``, ``set_defaults``, ``get_xml``) against
libvirt's ``test:///default`` driver, so no hypervisor is needed and nothing is
defined. One build first, untimed, loads the osinfo database.

Prints one JSON object: ``per_vm`` seconds, ``count`` and ``xml_bytes`` (of the
last VM, to show the work is real).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

sys.path.insert(0, "/usr/share/virt-manager")

import virtinst  # noqa: E402 - found only after the path above


def build(conn: Any, i: int) -> str:
    """One VM's XML, as virt-install assembles it."""
    guest = virtinst.Guest(conn)
    guest.name = f"vm{i}"
    guest.memory = guest.currentMemory = 1024 * 1024  # KiB
    guest.vcpus = 2
    guest.set_os_name("rhel9.0")
    guest.os.os_type = "hvm"
    disk = virtinst.DeviceDisk(conn)
    disk.set_source_path(f"/images/vm{i}-0.qcow2")
    disk.driver_type = "qcow2"
    disk.device = "disk"
    disk.bus = "virtio"
    guest.add_device(disk)
    nic = virtinst.DeviceInterface(conn)
    nic.type = "network"
    nic.source = "default"
    nic.model = "virtio"
    guest.add_device(nic)
    graphics = virtinst.DeviceGraphics(conn)
    graphics.type = "vnc"
    guest.add_device(graphics)
    guest.set_capabilities_defaults()
    guest.set_defaults(None)
    xml: str = guest.get_xml()
    return xml


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    conn = virtinst.VirtinstConnection("test:///default")
    conn.open(None, None)
    build(conn, -1)
    t0 = time.perf_counter()
    for i in range(count):
        xml = build(conn, i)
    per_vm = (time.perf_counter() - t0) / count
    conn.close()
    print(json.dumps({"per_vm": per_vm, "count": count, "xml_bytes": len(xml)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
