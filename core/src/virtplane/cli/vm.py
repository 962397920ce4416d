"""``virtplane vm ...``.

The commands live in one module per group: ``vm_lifecycle`` (create, update, list,
show, start, shutdown ..., migrate, stats, remove, events), ``vm_snapshots``,
``vm_devices`` (cd, ticket, plug, unplug, vcpus, memory); the options they share in
``vm_sizes`` (sizes, disks) and ``vm_properties`` (custom properties).
:func:`register_vm` adds them all, in the order ``virtplane vm --help`` lists them.
The commands and the size parsers (``MAX_SIZE``, ``_parse_size``, ``_disk``) can still be
imported from here.
"""

from __future__ import annotations

import argparse
from typing import Any

from virtplane.cli._common import leaf
from virtplane.cli.vm_devices import (
    cmd_vm_cd,
    cmd_vm_memory,
    cmd_vm_plug,
    cmd_vm_ticket,
    cmd_vm_unplug,
    cmd_vm_vcpus,
)
from virtplane.cli.vm_lifecycle import (
    _vm_op,
    cmd_vm_create,
    cmd_vm_events,
    cmd_vm_list,
    cmd_vm_migrate,
    cmd_vm_remove,
    cmd_vm_show,
    cmd_vm_stats,
    cmd_vm_update,
)
from virtplane.cli.vm_properties import _property_args

# the size parsers, imported from here by other command groups (virtplane.cli.disk)
from virtplane.cli.vm_sizes import MAX_SIZE as MAX_SIZE
from virtplane.cli.vm_sizes import _disk as _disk
from virtplane.cli.vm_sizes import _parse_size as _parse_size
from virtplane.cli.vm_snapshots import (
    cmd_vm_revert,
    cmd_vm_snapshot,
    cmd_vm_snapshot_delete,
    cmd_vm_snapshots,
)


def register_vm(g: Any) -> None:
    q = leaf(g, "create", cmd_vm_create, "define a VM")
    q.add_argument("name")
    q.add_argument("--cluster", required=True)
    q.add_argument("--memory", type=int, default=512, help="MiB")
    q.add_argument("--vcpus", type=int, default=1)
    q.add_argument("--max-memory", type=int, metavar="MIB",
                   help="memory the VM may grow to by hot-plugging DIMMs (vm memory-plug)")
    q.add_argument("--max-vcpus", type=int, metavar="N",
                   help="vCPUs the VM may grow to while running (vm vcpus)")
    q.add_argument("--os", default=None, help="osinfo OS name (default: the architecture's)")
    q.add_argument("--disk", action="append", help="SIZE[@STORAGE_DOMAIN] (new) or disk=NAME (existing), repeatable")
    q.add_argument("--disk-interface", default="virtio")
    q.add_argument("--nic", action="append", help="NETWORK[:MODEL] (network 'user' = SLIRP)")
    q.add_argument("--display", choices=["vnc", "spice"], help="graphical console")
    q.add_argument("--cd", nargs="?", const="", help="add a CD drive, with an image if given")
    _property_args(q, update=False)
    q.add_argument("--ha", action="store_true", help="highly available: the engine restarts "
                   "it elsewhere when its host fails (docs/ha.md)")
    q.add_argument("--ha-priority", type=int, default=0,
                   help="0-100, higher restarts first (default 0)")
    q = leaf(g, "update", cmd_vm_update, "change a VM's high availability and custom "
             "properties (its disks' and NICs' too; hook scripts see them from its next start)")
    q.add_argument("name")
    q.add_argument("--ha", action=argparse.BooleanOptionalAction, default=None,
                   help="highly available (--no-ha: not)")
    q.add_argument("--ha-priority", type=int, help="0-100, higher restarts first")
    _property_args(q, update=True)
    leaf(g, "list", cmd_vm_list, "list VMs", True)
    q = leaf(g, "cd", cmd_vm_cd, "change the CD (no PATH: eject)")
    q.add_argument("name")
    q.add_argument("path", nargs="?")
    q = leaf(g, "ticket", cmd_vm_ticket, "set the console password (read from stdin)")
    q.add_argument("name")
    q.add_argument("--expiry", type=int, default=120, help="seconds (default 120)")
    leaf(g, "show", cmd_vm_show, "show a VM (its custom properties under \"properties\")"
         ).add_argument("name")
    for name, op, help in [
        ("start", "start_vm", "start a VM"), ("destroy", "destroy_vm", "power off at once"),
        ("pause", "pause_vm", "pause"), ("continue", "resume_vm", "continue a paused VM"),
        ("reboot", "reboot_vm", "reboot"), ("hibernate", "hibernate_vm", "save memory and stop"),
        ("restore", "restore_vm", "restore a hibernated VM"),
        ("shutdown", "shutdown_vm", "ACPI shutdown, destroy after --timeout"),
    ]:
        q = leaf(g, name, _vm_op(op), help)
        q.add_argument("name")
        if op in ("start_vm", "restore_vm"):
            q.add_argument("--host")
        if op == "start_vm":
            q.add_argument("--explain", action="store_true", help="print why the VM went "
                           "to its host (every host's filter or score)")
        if op == "shutdown_vm":
            q.add_argument("--timeout", type=float, default=120.0)
    q = leaf(g, "snapshot", cmd_vm_snapshot, "take a snapshot (new qcow2 layer per disk)")
    q.add_argument("name")
    q.add_argument("snapshot")
    q.add_argument("--description", default="")
    q.add_argument("--memory", action="store_true", help="also save the running guest's memory")
    leaf(g, "snapshots", cmd_vm_snapshots, "list a VM's snapshots", True).add_argument("name")
    q = leaf(g, "revert", cmd_vm_revert, "revert a Down VM to a snapshot")
    q.add_argument("name")
    q.add_argument("snapshot")
    q.add_argument("--host", help="host to restore a memory snapshot on")
    q = leaf(g, "snapshot-delete", cmd_vm_snapshot_delete, "delete a snapshot (merge its layer)")
    q.add_argument("name")
    q.add_argument("snapshot")
    q = leaf(g, "migrate", cmd_vm_migrate, "live-migrate to another host of the cluster")
    q.add_argument("name")
    q.add_argument("--to", required=True, help="destination host")
    q.add_argument("--bandwidth", type=int, help="MiB/s")
    q.add_argument("--max-downtime", type=int, help="ms")
    q.add_argument("--unsafe", action="store_true",
                   help="allow local (non-shared) disks: libvirt's VIR_MIGRATE_UNSAFE")
    q.add_argument("--progress", action="store_true", help="print progress to stderr")
    for verb, fn, help in [("plug", cmd_vm_plug, "hot-plug a disk or NIC"),
                           ("unplug", cmd_vm_unplug, "hot-unplug a disk or NIC")]:
        q = leaf(g, verb, fn, help)
        q.add_argument("name")
        q.add_argument("kind", choices=["disk", "nic"])
        q.add_argument("device", help="device name")
        if verb == "plug":
            q.add_argument("spec", nargs="?",
                           help="disk: SIZE[@STORAGE_DOMAIN] or disk=NAME; nic: NETWORK[:MODEL]")
            q.add_argument("--interface", help="disk interface (default virtio)")
    q = leaf(g, "vcpus", cmd_vm_vcpus, "set a VM's vCPUs (live up to --max-vcpus; a Down VM "
             "gets them at its next start)")
    q.add_argument("name")
    q.add_argument("count", type=int)
    for verb, help in [("memory-plug", "hot-plug a memory module (DIMM) of SIZE"),
                       ("memory-unplug", "hot-unplug a memory module of SIZE (the guest must "
                        "release it)")]:
        q = leaf(g, verb, cmd_vm_memory, help)
        q.add_argument("name")
        q.add_argument("size", help="e.g. 256M, 1G")
    leaf(g, "stats", cmd_vm_stats, "VM stats").add_argument("name")
    leaf(g, "remove", cmd_vm_remove, "remove a Down VM and its disks").add_argument("name")
    leaf(g, "events", cmd_vm_events, "a VM's event log").add_argument("name")
