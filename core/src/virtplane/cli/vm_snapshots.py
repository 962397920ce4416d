"""``virtplane vm`` commands for snapshots: snapshot, snapshots, revert and
snapshot-delete."""

from __future__ import annotations

import argparse
from typing import Any

from virtplane.cli._common import emit, manager


def cmd_vm_snapshot(args: argparse.Namespace) -> int:
    with manager(args) as m:
        snap = m.snapshots.take(args.name, args.snapshot, args.description, args.memory)
    print(f"snapshot {snap.name} {snap.id} of vm {args.name}"
          + (" (with memory)" if snap.with_memory else ""))
    return 0


def cmd_vm_snapshots(args: argparse.Namespace) -> int:
    import time

    with manager(args) as m:
        snaps = m.snapshots.list(args.name)
    data: list[dict[str, Any]] = [
        {"name": s.name, "id": s.id, "created": s.created, "with_memory": s.with_memory,
         "description": s.description} for s in snaps]

    def text() -> None:
        for d in data:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["created"]))
            print(f"{d['name']:20} {when}  {'memory' if d['with_memory'] else 'disks'}  "
                  f"{d['description']}".rstrip())

    emit(args, data, text)
    return 0


def cmd_vm_revert(args: argparse.Namespace) -> int:
    with manager(args) as m:
        vm = m.snapshots.revert(args.name, args.snapshot, args.host)
    print(f"vm {vm.name}: reverted to {args.snapshot}, {vm.status.value}")
    return 0


def cmd_vm_snapshot_delete(args: argparse.Namespace) -> int:
    with manager(args) as m:
        m.snapshots.delete(args.name, args.snapshot)
    print(f"snapshot {args.snapshot} of vm {args.name} deleted")
    return 0
