"""``virtplane engine``, ``virtplane job`` and ``virtplane events`` (entry points of
the ``virtplane.commands`` group; imported only when one of them is named).

``engine run|status|stop``, ``job wait`` and ``events`` are local: they find the
engine themselves, or follow something on this terminal. ``job list|show|cancel``
go through the engine when one serves the state store, like other commands.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from virtplane.cli._common import emit, endpoint_path, leaf, local_only, manager, state_path
from virtplane.errors import InvalidInput, NotFound, VirtplaneError


class NoEngine(VirtplaneError):
    """No engine serves the state store."""

    exit_code = 3


def _engine_of(args: argparse.Namespace) -> Any:
    from virtplane_engine.client import Engine

    path = endpoint_path(state_path(args))
    engine = Engine.find(path)
    if engine is None:
        raise NoEngine(f"no engine serves {state_path(args)} (no live endpoint file {path}); "
                       "start one with 'virtplane engine run'")
    return engine


# ------------------------------------------------------------------ engine


def cmd_engine_run(args: argparse.Namespace) -> int:
    from virtplane import config
    from virtplane_engine.engine import run_foreground
    from virtplane_engine.settings import EngineSettings

    cfg = config.load(args.config)
    settings = EngineSettings.from_config(
        cfg, host_interval=args.host_interval, vm_interval=args.vm_interval,
        storage_interval=args.storage_interval, grace_polls=args.grace_polls,
        grace_seconds=args.grace_seconds, grace_per_vm=args.grace_per_vm,
        workers=args.workers, listen=args.listen, stop_timeout=args.stop_timeout,
        lease_ttl=args.lease_ttl, engine_id=args.engine_id)
    # the store as given (a URL stays a URL); the engine finds its local files from it
    return run_foreground(cfg, args.state, settings)


def cmd_engine_status(args: argparse.Namespace) -> int:
    data = _engine_of(args).request("GET", "/v1/status", timeout=30)

    def text() -> None:
        print(f"engine pid {data['pid']} serving {data['state']}, up {data['uptime_s']:g} s"
              + (" (stopping)" if data.get("stopping") else ""))
        for h in data.get("hosts", []):
            line = f"  host {h['name']:16} {h['status']:16} {h.get('reason', '')}".rstrip()
            print(line)
            for name in h.get("external", []):
                print(f"    external domain {name} (no virtplane VM; left alone)")
        for j in data.get("jobs", []):
            print(f"  job {j['id']} {j['kind']} {j['status']} {j['progress']}%")

    emit(args, data, text)
    return 0


def cmd_engine_stop(args: argparse.Namespace) -> int:
    import os
    import signal

    from virtplane_engine import endpoint

    engine = _engine_of(args)
    pid = int(engine.info["pid"])
    try:
        engine.request("POST", "/v1/stop", json={}, timeout=10)
    except VirtplaneError:
        os.kill(pid, signal.SIGTERM)  # the API does not answer: the signal does the same
    deadline = time.monotonic() + args.timeout
    while endpoint.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if endpoint.alive(pid):
        print(f"virtplane: engine pid {pid} still runs after {args.timeout:g} s",
              file=sys.stderr)
        return 1
    print(f"engine pid {pid} stopped")
    return 0


def register_engine(g: Any) -> None:
    q = local_only(leaf(g, "run", cmd_engine_run, "run the engine in the foreground "
                        "(JSON-lines logs on stderr; SIGTERM stops it)"))
    for opt, typ, help in [
        ("--host-interval", float, "seconds between host polls ([engine] host_interval)"),
        ("--vm-interval", float, "seconds between VM polls ([engine] vm_interval)"),
        ("--storage-interval", float, "seconds between storage probes"),
        ("--grace-polls", int, "missed polls always within the grace period"),
        ("--grace-seconds", float, "grace seconds after the last good poll"),
        ("--grace-per-vm", float, "grace seconds added per VM"),
        ("--workers", int, "threads for blocking calls"),
        ("--stop-timeout", float, "seconds running jobs get on SIGTERM"),
        ("--listen", str, "loopback address:port of the API (default 127.0.0.1:0)"),
        ("--lease-ttl", float, "seconds a host or leader lease lasts ([engine] lease_ttl)"),
        ("--engine-id", str, "this engine's name in lease rows (default host:pid)"),
    ]:
        q.add_argument(opt, type=typ, help=help)
    local_only(leaf(g, "status", cmd_engine_status, "the running engine: hosts, external "
                    "domains, jobs (exit 3: no engine)", True))
    q = local_only(leaf(g, "stop", cmd_engine_stop, "stop the running engine (as SIGTERM) "
                        "and wait for it"))
    q.add_argument("--timeout", type=float, default=90.0, help="seconds to wait (default 90)")


# -------------------------------------------------------------------- jobs


def _job_row(job: Any) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "status": job.status.value,
            "progress": job.progress, "object_id": job.object_id,
            "correlation_id": job.correlation_id, "created": job.created,
            "error": job.error}


def cmd_job_list(args: argparse.Namespace) -> int:
    from virtplane import model

    with manager(args) as m:
        wanted = None if args.all else [model.JobStatus.QUEUED, model.JobStatus.STARTED]
        jobs = m.store.list_jobs(status=wanted)
    data = [_job_row(j) for j in jobs]

    def text() -> None:
        for d in data:
            when = time.strftime("%H:%M:%S", time.localtime(d["created"]))
            print(f"{d['id']}  {when}  {d['kind']:18} {d['status']:9} {d['progress']:3d}%  "
                  f"{d['error'] or ''}".rstrip())

    emit(args, data, text)
    return 0


def cmd_job_show(args: argparse.Namespace) -> int:
    from virtplane import model

    with manager(args) as m:
        job = m.store.get_job(args.id)
    json.dump(model.unstructure(job), sys.stdout, indent=2, sort_keys=True, default=str)
    print()
    return 0


def cmd_job_cancel(args: argparse.Namespace) -> int:
    from virtplane import model
    from virtplane_engine import engine as engine_mod

    running = engine_mod.current
    if running is not None:
        print(running.runner.cancel(args.id))
        return 0
    with manager(args) as m:  # no engine: nothing runs it; a left-over record is closed
        job = m.store.get_job(args.id)
        if job.status.done:
            print(f"job {job.id} already {job.status.value}")
            return 0
        job.status, job.error = model.JobStatus.ABORTED, "cancelled while no engine ran it"
        m.store.update_job(job)
    print(f"job {args.id}: aborted (no engine was running it)")
    return 0


def cmd_job_wait(args: argparse.Namespace) -> int:
    from virtplane import config
    from virtplane.state import StateStore, location_of
    from virtplane_engine.client import progress_line

    store = StateStore(args.state or location_of(config.load(args.config)), readonly=True)
    tty = sys.stderr.isatty()
    last = ""
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        while True:
            job = store.get_job(args.id)
            if tty:
                line = progress_line(job)
                if line != last:
                    sys.stderr.write("\r" + line.ljust(len(last)))
                    sys.stderr.flush()
                    last = line
            if job.status.done:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise InvalidInput(f"job {args.id} is still {job.status.value} after "
                                   f"{args.timeout:g} s")
            time.sleep(0.25)
    finally:
        if tty and last:
            sys.stderr.write("\r" + " " * len(last) + "\r")
        store.close()
    result = job.result or {}
    sys.stdout.write(str(result.get("stdout", "")))
    sys.stderr.write(str(result.get("stderr", "")))
    if job.status.value != "finished":
        print(f"virtplane: error: job {job.id} {job.status.value}: {job.error}",
              file=sys.stderr)
        return int(result.get("rc") or 1)
    return 0


def register_job(g: Any) -> None:
    q = leaf(g, "list", cmd_job_list, "jobs queued or running (--all: every job)", True)
    q.add_argument("--all", action="store_true", help="also jobs that ended")
    leaf(g, "show", cmd_job_show, "one job, with its steps and result").add_argument("id")
    leaf(g, "cancel", cmd_job_cancel, "ask a job to stop (a migration aborts; a queued job "
         "never starts)").add_argument("id")
    q = local_only(leaf(g, "wait", cmd_job_wait, "wait for a job (a progress line on a "
                        "terminal), print its output, exit with its status"))
    q.add_argument("id")
    q.add_argument("--timeout", type=float, help="give up after this many seconds")


# ------------------------------------------------------------------ events


def cmd_events(args: argparse.Namespace) -> int:
    """The event log, read through the store (an SQLite file read-only, or a server)."""
    from virtplane import config
    from virtplane.state import StateStore, location_of, scheme_of
    from virtplane_engine.storewatch import Event

    location = args.state or location_of(config.load(args.config))
    if scheme_of(location) == "sqlite" and not state_path(args).exists():
        raise NotFound(f"no state store {state_path(args)}")
    store = StateStore(location, readonly=True)
    names: dict[str, str] = {}
    try:
        seq = max(0, store.last_event_seq() - args.last) if args.since is None else args.since
        while True:
            batch = [Event(*row) for row in store.events_since(seq)]
            if any(e.object_id not in names for e in batch):
                names = store.object_names()
            for e in batch:
                seq = e.seq
                if args.code is not None and e.code != args.code:
                    continue
                if args.json:
                    print(json.dumps({**e._asdict(), "object": names.get(e.object_id)}))
                    continue
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts))
                code = f"{e.code:>6}" if e.code is not None else "     -"
                what = names.get(e.object_id, e.object_id)
                print(f"{when} {e.level:7} {code} [{what}] {e.message}")
            sys.stdout.flush()
            if not args.follow:
                return 0
            if len(batch) < 1000:
                time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        store.close()


def register_events(g: argparse.ArgumentParser) -> None:
    """``virtplane events [--follow]``: a group without subcommands."""
    g.set_defaults(func=cmd_events, local_only=True)
    g.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    g.add_argument("--last", type=int, default=50, help="start with the last N (default 50)")
    g.add_argument("--since", type=int, help="start after this event sequence number")
    g.add_argument("--code", type=int, help="only events with this code")
    g.add_argument("--json", action="store_true", help="one JSON object per line")


register_events.group_parser = True  # type: ignore[attr-defined]
