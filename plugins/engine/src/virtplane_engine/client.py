"""The CLI's side of the engine: forward a command line, show a job's progress.

The core CLI calls :func:`forward` (named in the endpoint file) when an engine
serves the state store. It sends the command line, prints what the command
printed in the engine and returns its exit status. For a long operation on a
terminal it follows the job with a progress line on stderr; ``--async`` only
submits it. An engine that is gone (stale endpoint file after a crash) or does
not answer leaves the command to run here, directly.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from virtplane.errors import InvalidState, StateError, VirtplaneError
from virtplane_engine import endpoint

#: global options the engine has no use for (it serves one state store, its own config)
_DROP_WITH_VALUE = {"--state", "--config"}
_DROP = {"--async"}
#: commands whose standard input is part of the command (a password)
_STDIN_COMMANDS = {("vm", "ticket")}
_CONNECT_TIMEOUT = 3.0


class Engine:
    """A running engine reached through its endpoint file."""

    def __init__(self, info: dict[str, Any], path: Path) -> None:
        self.info = info
        self.path = path
        self.address = str(info["address"])
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {info['token']}"

    @classmethod
    def find(cls, path: Path) -> Engine | None:
        """The engine of this endpoint file, or None when there is none (no file, or its
        process is gone)."""
        info = endpoint.read(path)
        if not info or not all(k in info for k in ("pid", "address", "token")):
            return None
        if not endpoint.alive(int(info["pid"])):
            return None
        return cls(info, path)

    def request(self, method: str, route: str, json: Any = None,
                timeout: float | None = None) -> Any:
        """Call the API; errors become VirtplaneErrors with the engine's words."""
        try:
            r = self.session.request(method, self.address + route, json=json,
                                     timeout=(_CONNECT_TIMEOUT, timeout))
        except requests.RequestException as exc:
            raise EngineUnreachable(f"the engine at {self.address} (pid {self.info['pid']}) "
                                    f"does not answer: {exc}") from None
        try:
            data = r.json()
        except ValueError:
            data = {"error": r.text[:200]}
        if r.status_code == 401:
            raise StateError(f"the engine refused the token of {self.path}: {data.get('error')}")
        if r.status_code == 503:
            raise InvalidState(f"the engine is stopping; try again in a moment "
                               f"({data.get('error')})")
        if r.status_code >= 400:
            from virtplane.errors import InvalidInput, NotFound

            error = NotFound if r.status_code == 404 else InvalidInput
            raise error(str(data.get("error", f"HTTP {r.status_code}")))
        return data


class EngineUnreachable(VirtplaneError):
    """The endpoint file names a live process whose API does not answer."""


def forward(args: argparse.Namespace, argv: Sequence[str], path: Path) -> int | None:
    """Run ``argv`` in the engine of ``path``; None: no engine, run it here."""
    engine = Engine.find(path)
    if engine is None:
        return None
    stdin = ""
    if (args.command, getattr(args, "sub", None)) in _STDIN_COMMANDS:
        stdin = sys.stdin.readline()
    follow = bool(not args.detach and sys.stderr.isatty())
    body = {"argv": engine_argv(argv), "stdin": stdin, "detach": bool(args.detach),
            "follow": follow, "correlation_id": str(uuid.uuid4())}
    try:
        result = engine.request("POST", "/v1/run", json=body)
    except EngineUnreachable as exc:
        print(f"virtplane: warning: {exc}; running the command here instead",
              file=sys.stderr)
        return None
    if result.get("follow"):
        result = follow_job(engine, str(result["job"]))
    sys.stdout.write(str(result.get("stdout", "")))
    sys.stdout.flush()
    sys.stderr.write(str(result.get("stderr", "")))
    return int(result.get("rc", 1))


def engine_argv(argv: Sequence[str]) -> list[str]:
    """The command line for the engine: its own global options dropped, paths that
    name files here made absolute (the engine's working folder is not this one)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _DROP_WITH_VALUE:
            skip = True
            continue
        if arg in _DROP or any(arg.startswith(o + "=") for o in _DROP_WITH_VALUE):
            continue
        out.append(_absolute(arg))
    return out


def _absolute(arg: str) -> str:
    """``./x.iso`` -> ``/here/x.iso`` when it exists here; anything else unchanged (a
    bare name such as a VM's is never taken for a file)."""
    head, eq, value = arg.rpartition("=") if arg.startswith("--") else ("", "", arg)
    if "/" in value and not os.path.isabs(value) and os.path.exists(value):
        return f"{head}{eq}{os.path.abspath(value)}"
    return arg


def follow_job(engine: Engine, job_id: str, poll: float = 0.25) -> dict[str, Any]:
    """Show a job's progress on stderr until it ends; returns its command's result."""
    from virtplane import model
    from virtplane_engine.commands import result_of

    last = ""
    while True:
        data = engine.request("GET", f"/v1/jobs/{job_id}")
        job = model.structure(data, model.Job)
        line = progress_line(job)
        if line != last:
            sys.stderr.write("\r" + line.ljust(len(last)))
            sys.stderr.flush()
            last = line
        if job.status.done:
            sys.stderr.write("\r" + " " * len(last) + "\r")
            return result_of(job)
        time.sleep(poll)


def progress_line(job: Any) -> str:
    """``vm.migrate [#######.............]  35% started`` (one terminal line)."""
    width = 20
    filled = width * int(job.progress) // 100
    step = job.steps[-1].description if job.steps else ""
    return (f"{job.kind} [{'#' * filled}{'.' * (width - filled)}] {job.progress:3d}% "
            f"{job.status.value}  {step}")[:100]
