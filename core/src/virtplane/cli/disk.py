"""``virtplane disk ...``: standalone disks on storage domains."""

from __future__ import annotations

import argparse
from typing import Any

from virtplane.cli._common import emit, leaf, manager
from virtplane.cli.vm import _parse_size


def cmd_disk_create(args: argparse.Namespace) -> int:
    with manager(args) as m:
        image = m.disks.create(args.name, args.domain, _parse_size(args.size), args.format,
                              args.allocation, shareable=args.shareable)
    print(f"disk {args.name} {image.id} on {args.domain}")
    return 0


def cmd_disk_import(args: argparse.Namespace) -> int:
    with manager(args) as m:
        image = m.disks.import_file(args.name, args.domain, args.file, args.format)
    print(f"disk {args.name} {image.id} imported from {args.file}")
    return 0


def cmd_disk_list(args: argparse.Namespace) -> int:
    with manager(args) as m:
        disks = m.disks.list()

    def text() -> None:
        for d in disks:
            flag = "" if d["legal"] else "  ILLEGAL"
            print(f"{d['name']:36} {d['domain']:12} {d['size_bytes'] >> 20:>7} MiB  "
                  f"{d['format']:5} {d['volumes']} vol  "
                  f"{', '.join(d['used_by']) or '-'}{flag}")

    emit(args, disks, text)
    return 0


def cmd_disk_snapshot(args: argparse.Namespace) -> int:
    with manager(args) as m:
        vol = m.disks.snapshot(args.name)
    print(f"disk {args.name}: new leaf volume {vol.id} on top of {vol.parent_id}")
    return 0


def cmd_disk_merge(args: argparse.Namespace) -> int:
    with manager(args) as m:
        vol = m.disks.merge(args.name)
    print(f"disk {args.name}: top layer merged; leaf volume is now {vol.id}")
    return 0


def cmd_disk_clone(args: argparse.Namespace) -> int:
    with manager(args) as m:
        image = m.disks.clone(args.name, args.new_name)
    print(f"disk {args.new_name} {image.id}: full copy of {args.name}")
    return 0


def cmd_disk_extend(args: argparse.Namespace) -> int:
    with manager(args) as m:
        vol = m.disks.extend(args.name, _parse_size(args.size))
    print(f"disk {args.name}: {vol.size_bytes} bytes")
    return 0


def cmd_disk_remove(args: argparse.Namespace) -> int:
    with manager(args) as m:
        m.disks.remove(args.name)
    print(f"disk {args.name} removed")
    return 0


def cmd_iso_upload(args: argparse.Namespace) -> int:
    with manager(args) as m:
        name = m.isos.upload(args.domain, args.file, args.name)
    print(f"ISO {name} on {args.domain} (use it as iso:{args.domain}/{name})")
    return 0


def cmd_iso_list(args: argparse.Namespace) -> int:
    with manager(args) as m:
        names = m.isos.list(args.domain)
    emit(args, names, lambda: print("\n".join(names)) if names else None)
    return 0


def register_iso(g: Any) -> None:
    q = leaf(g, "upload", cmd_iso_upload, "copy an ISO file onto an iso domain")
    q.add_argument("domain")
    q.add_argument("file")
    q.add_argument("--name", help="name on the domain (default: the file's name)")
    leaf(g, "list", cmd_iso_list, "ISOs on an iso domain", True).add_argument("domain")


def register_disk(g: Any) -> None:
    q = leaf(g, "create", cmd_disk_create, "create a named disk on a data domain")
    q.add_argument("name")
    q.add_argument("--domain", required=True, help="storage domain")
    q.add_argument("--size", required=True, help="e.g. 512M, 10G")
    q.add_argument("--format", default="qcow2", help="qcow2 (default) or raw")
    q.add_argument("--allocation", default="thin", help="thin (default) or preallocated")
    q.add_argument("--shareable", action="store_true",
                   help="several VMs may attach it (raw only; never snapshotted)")
    q = leaf(g, "import", cmd_disk_import, "a named disk filled from an image file")
    q.add_argument("name")
    q.add_argument("--domain", required=True)
    q.add_argument("--file", required=True, help="raw, qcow2, vmdk ... (what qemu-img reads)")
    q.add_argument("--format", default="qcow2", help="format on the domain (default qcow2)")
    leaf(g, "list", cmd_disk_list, "list disks (named and VM disks) and their users", True)
    leaf(g, "snapshot", cmd_disk_snapshot, "freeze a disk under a new qcow2 layer "
         "(not while a running VM uses it)").add_argument("name")
    leaf(g, "merge", cmd_disk_merge, "fold a disk's top layer into the one below, undoing "
         "`disk snapshot` (offline)").add_argument("name")
    q = leaf(g, "clone", cmd_disk_clone, "full, collapsed copy of a disk")
    q.add_argument("name")
    q.add_argument("new_name")
    q = leaf(g, "extend", cmd_disk_extend, "grow a disk (not while a running VM uses it)")
    q.add_argument("name")
    q.add_argument("--size", required=True, help="the new size, e.g. 20G")
    leaf(g, "remove", cmd_disk_remove, "delete a disk nothing uses").add_argument("name")
