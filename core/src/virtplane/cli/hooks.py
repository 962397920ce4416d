"""``virtplane hooks ...``: hook points, their implementations and scripts."""

from __future__ import annotations

import argparse
from typing import Any

from virtplane.cli._common import emit, leaf, manager


def cmd_hooks_list(args: argparse.Namespace) -> int:
    with manager(args) as m:
        data = m.hook_admin.describe()
    shown = data if args.all else [d for d in data if d["implementations"]]

    def text() -> None:
        for d in shown:
            impls = d["implementations"]
            print(f"{d['point']}{'' if d['fails_operation'] else '  (failures logged only)'}")
            for impl in impls:
                print(f"  {impl['plugin']}")
                for script in impl.get("scripts", []):
                    print(f"    {script['script']}  sha256:{script['sha256']}")

    emit(args, shown, text)
    return 0


def cmd_hooks_run(args: argparse.Namespace) -> int:
    from virtplane.errors import InvalidInput

    if not args.dry_run:
        raise InvalidInput("running a hook point outside its operation is only supported as "
                           "a dry run: add --dry-run")
    with manager(args) as m:
        steps = m.hook_admin.dry_run(args.point, args.vm, run_scripts=args.run_scripts)

    def text() -> None:
        if not steps:
            print(f"nothing implements {args.point}")
        for step in steps:
            if not step.get("ran", True):
                print(f"== {step['by']}: not run: {step.get('note', '')}")
                continue
            status = "ok" if not step["rc"] else f"failed (rc={step['rc']}): {step['error']}"
            print(f"== {step['by']}: {status}")
            for line in step["diff"]:
                print(line)
            if not step["diff"]:
                print("   (no change)")

    emit(args, steps, text)
    return 0


def register_hooks(g: Any) -> None:
    q = leaf(g, "list", cmd_hooks_list, "hook points with implementations and scripts", True)
    q.add_argument("--all", action="store_true", help="also points nothing implements")
    q = leaf(g, "run", cmd_hooks_run, "show what a point's hooks would change in a VM's XML",
             True)
    q.add_argument("point")
    q.add_argument("--vm", required=True)
    q.add_argument("--dry-run", action="store_true",
                   help="required: the operation is not done; in-process hooks run on a copy")
    q.add_argument("--run-scripts", action="store_true",
                   help="also run hook scripts (programs: their side effects happen)")
