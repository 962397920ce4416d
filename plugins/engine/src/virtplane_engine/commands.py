"""Running a ``virtplane`` command line inside the engine, for a client.

The client (another process) sends its argv; here the very same CLI handler
runs, in a thread of the engine, against the engine's shared Manager, with its
own stdout, stderr and stdin (:mod:`~virtplane_engine.streams`). What a
command touches decides how it runs:

* a command that changes a VM holds that VM's lock (one operation per VM at a
  time; a second one waits, the monitor skips the VM meanwhile);
* a long operation (:data:`JOB_COMMANDS`) runs as a job: recorded, with its
  progress, cancellable, and with ``--async`` submitted without waiting.
"""

from __future__ import annotations

import argparse
import functools
import traceback
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, cast

from virtplane import model
from virtplane.errors import NotFound
from virtplane.events import correlation
from virtplane_engine import streams
from virtplane_engine.jobs import JobHandle, JobRunner
from virtplane_engine.locks import ObjectLocks
from virtplane_engine.monitoring import vm_key

#: (group, subcommand) -> job kind: the long operations (oVirt runs them as jobs)
JOB_COMMANDS: dict[tuple[str, str], str] = {
    ("vm", "start"): "vm.start", ("vm", "shutdown"): "vm.shutdown",
    ("vm", "migrate"): "vm.migrate", ("vm", "snapshot"): "vm.snapshot",
    ("vm", "revert"): "vm.revert", ("vm", "snapshot-delete"): "vm.snapshot_delete",
    ("vm", "hibernate"): "vm.hibernate", ("vm", "restore"): "vm.restore",
    ("template", "create"): "template.create", ("template", "vm"): "template.vm",
    ("disk", "clone"): "disk.clone", ("disk", "import"): "disk.import",
    ("disk", "create"): "disk.create", ("disk", "merge"): "disk.merge",
    ("storage", "add"): "storage.add", ("storage", "attach"): "storage.attach",
}

#: VM subcommands that only read: no lock
VM_READS = frozenset({"list", "show", "stats", "events", "snapshots"})


def parse(argv: Sequence[str]) -> argparse.Namespace | None:
    """The parsed command line, or None when it does not parse (the client checked it;
    running it reports the error the usual way)."""
    from virtplane.cli import build_parser

    try:
        with streams.capture():
            return build_parser(argv).parse_args(list(argv))
    except SystemExit:
        return None


def lock_keys(args: argparse.Namespace | None) -> list[str]:
    """The objects a command changes (their locks are held while it runs)."""
    if args is None:
        return []
    name = getattr(args, "name", None)
    if args.command == "vm" and args.sub not in VM_READS and isinstance(name, str):
        return [vm_key(name)]
    if args.command == "template" and args.sub == "create":
        vm = getattr(args, "vm", None)
        return [vm_key(vm)] if isinstance(vm, str) else []
    return []


#: entry-point group of the permission check of client commands (virtplane-api-ovirt's)
AUTHZ_GROUP = "virtplane.authz"


def authorize(args: argparse.Namespace | None, argv: Sequence[str],
              caller: str | None) -> str | None:
    """None when ``caller`` may run the command, else why not. The check is the
    installed ``virtplane.authz`` entry point's (docs/permissions.md); without one,
    commands are not checked (whoever reads the endpoint file drives the engine)."""
    check = _authz_check()
    if check is None:
        return None
    if caller is None:
        return ("the engine cannot tell which OS user sent this command (no socket owner "
                "in /proc/net/tcp); refused")
    result = check(args, argv, caller)
    return None if result is None else str(result)


@functools.cache
def _authz_check() -> Callable[..., Any] | None:
    """The installed permission check (the first ``virtplane.authz`` entry point by
    name), looked up and imported once per process: the installed distributions do
    not change under a running engine, and scanning them took ~8 ms per command."""
    import importlib.metadata

    checks = sorted(importlib.metadata.entry_points(group=AUTHZ_GROUP), key=lambda e: e.name)
    return cast("Callable[..., Any]", checks[0].load()) if checks else None


def job_kind(args: argparse.Namespace | None) -> str | None:
    if args is None:
        return None
    return JOB_COMMANDS.get((str(args.command), str(getattr(args, "sub", ""))))


def run_argv(argv: Sequence[str], stdin: str = "") -> dict[str, Any]:
    """Run one command line here; returns ``rc``, ``stdout`` and ``stderr``.

    Never raises: a bug in a handler becomes exit status 70 with the traceback on the
    command's stderr (the engine keeps serving).
    """
    from virtplane.cli import main

    with streams.capture(stdin) as out:
        try:
            rc = main(list(argv))
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            if isinstance(exc.code, str):
                print(exc.code, file=streams.install()[1])
        except Exception:  # noqa: BLE001 - a handler's bug must not take the engine down
            traceback.print_exc()
            rc = 70
    return {"rc": rc, "stdout": out.stdout, "stderr": out.stderr}


class Commands:
    """Runs client command lines: locks, jobs, output."""

    def __init__(self, runner: JobRunner, locks: ObjectLocks, executor: Executor,
                 store: Callable[[], Any]) -> None:
        self.runner = runner
        self.locks = locks
        self.executor = executor
        self._store = store

    def execute(self, argv: Sequence[str], *, stdin: str = "", detach: bool = False,
                follow: bool = False, correlation_id: str | None = None,
                caller: str | None = "admin@internal") -> dict[str, Any]:
        """Run ``argv``; with ``detach``/``follow`` a job is only submitted and the answer
        carries its id (``follow``: the client shows its progress and then its output).
        ``caller`` (the client's virtplane user) must be allowed to run it."""
        args = parse(argv)
        refused = authorize(args, argv, caller)
        if refused is not None:
            return {"rc": 77, "stdout": "", "stderr": f"virtplane: error: {refused}\n"}
        keys = lock_keys(args)
        kind = job_kind(args)
        if kind is None or args is None:
            # not a job, but a request all the same: its events share one correlation id
            with self.locks.hold(keys), correlation(correlation_id or str(uuid.uuid4())):
                return run_argv(argv, stdin)
        handle = self.runner.create(kind, self._object_id(args), correlation_id,
                                    "virtplane " + " ".join(argv))

        def body(_h: JobHandle) -> dict[str, Any]:
            return run_argv(argv, stdin)

        if detach or follow:
            self.executor.submit(self.runner.run, handle, keys, body)
            text = f"job {handle.id} submitted ({kind})\n" if detach else ""
            return {"rc": 0, "stdout": text, "stderr": "", "job": handle.id,
                    "follow": follow and not detach}
        job = self.runner.run(handle, keys, body)
        return result_of(job)

    def _object_id(self, args: argparse.Namespace) -> str | None:
        name = getattr(args, "name", None)
        if args.command == "vm" and isinstance(name, str):
            try:
                return str(self._store().find(model.Vm, name).id)
            except NotFound:
                return None
        return None


def result_of(job: model.Job) -> dict[str, Any]:
    """What a client prints for a job that ended: the command's own output, or why the
    job ended without one."""
    result = dict(job.result or {})
    if not result:
        result = {"rc": 1, "stdout": "",
                  "stderr": f"virtplane: error: job {job.id} {job.status.value}: "
                            f"{job.error or 'no result'}\n"}
    result["job"] = job.id
    return result
