"""Running one hook script as its own process, with a deadline.

The script starts in its own session and process group; its stdout is drained and
dropped, its stderr kept up to :data:`STDERR_LIMIT` bytes. Its pipes are read with a
deadline, never "until EOF", and for :data:`EXIT_GRACE` seconds after it exited; at
the timeout its group, its session and whatever still holds its pipes are killed.
:mod:`virtplane_hook_scripts.runner` re-exports :class:`ScriptResult` and the limits.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

#: bytes of a script's stderr kept (the rest is counted and dropped): it becomes one
#: event row, and 20 MB of it once did
STDERR_LIMIT = 64 * 1024
#: seconds the runner keeps reading a script's pipes after the script exited: enough
#: for its last writes, short enough that a daemonised child holding them costs nothing
EXIT_GRACE = 0.5


@dataclass
class ScriptResult:
    """What one script did."""

    path: str
    rc: int
    stderr: str
    seconds: float
    timed_out: bool = False
    diff: list[str] = field(default_factory=list)
    #: the script was not run: its environment was refused (``stderr`` says why)
    refused: bool = False


class _Capture:
    """A script's stdout (drained and dropped, as VDSM does) and its stderr (kept up to
    :data:`STDERR_LIMIT` bytes, the rest counted)."""

    def __init__(self) -> None:
        self.kept = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = STDERR_LIMIT - len(self.kept)
        self.kept += chunk[: max(room, 0)]
        self.dropped += max(len(chunk) - max(room, 0), 0)

    def text(self) -> str:
        text = self.kept.decode("utf-8", "replace").strip()
        if self.dropped:
            text += (
                f"\n[stderr truncated: {self.dropped} more bytes dropped; virtplane "
                f"keeps the first {STDERR_LIMIT // 1024} KiB]"
            )
        return text


def run_one(script: Path, env: dict[str, str], timeout: float) -> ScriptResult:
    """Run ``script`` with ``env``; killed (rc 2, ``timed_out``) after ``timeout`` s."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    try:
        proc = subprocess.Popen(
            [str(script)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return ScriptResult(
            str(script),
            2,
            f"{script.name}: cannot be run: {exc.strerror or exc}",
            time.monotonic() - t0,
        )
    assert proc.stdout is not None and proc.stderr is not None
    pipes = {proc.stdout.fileno(): proc.stdout, proc.stderr.fileno(): proc.stderr}
    inodes = {os.fstat(fd).st_ino for fd in pipes}
    err = _Capture()
    try:
        exited = _pump(proc, list(pipes), proc.stderr.fileno(), err, deadline)
        if not exited:
            # the pipes are closed (or given up on) but the script still runs
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0))
                exited = True
            except subprocess.TimeoutExpired:
                exited = False
        if not exited:
            _kill_everything(proc.pid, inodes)
            proc.wait()
            message = f"{script.name}: killed after {timeout:g} s (hook timeout)"
            captured = err.text()
            return ScriptResult(
                str(script),
                2,
                message + (f"; its stderr: {captured}" if captured else ""),
                time.monotonic() - t0,
                timed_out=True,
            )
    finally:
        for pipe in pipes.values():
            pipe.close()
    return ScriptResult(str(script), proc.returncode, err.text(), time.monotonic() - t0)


def _pump(
    proc: subprocess.Popen[bytes], fds: list[int], err_fd: int, err: _Capture, deadline: float
) -> bool:
    """Read the script's pipes until both reach EOF, the deadline passes, or the script
    has been gone for :data:`EXIT_GRACE` seconds. Returns whether the script exited.

    Nothing here waits for EOF without a bound: a background child that inherited the
    pipes keeps them open as long as it lives.
    """
    sel = selectors.DefaultSelector()
    pidfd = _pidfd(proc.pid)
    try:
        open_fds = set(fds)
        for fd in fds:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ)
        exited_at: float | None = None
        while open_fds:
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
                if pidfd is not None:
                    sel.unregister(pidfd)
            limit = deadline if exited_at is None else min(exited_at + EXIT_GRACE, deadline)
            if now >= limit:
                break
            # without a pidfd the script's exit is noticed by polling, 20 times a second
            wait = limit - now if pidfd is not None else min(limit - now, 0.05)
            for key, _mask in sel.select(wait):
                if key.fd == pidfd:
                    continue  # the loop's poll() records the exit
                chunk = _read(key.fd)
                if chunk is None:
                    continue
                if not chunk:
                    sel.unregister(key.fd)
                    open_fds.discard(key.fd)
                elif key.fd == err_fd:
                    err.add(chunk)
        return exited_at is not None or proc.poll() is not None
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)


def _read(fd: int) -> bytes | None:
    """One chunk; b"" at EOF (or a read error: nothing more will come); None when the
    selector's wake-up was spurious."""
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _pidfd(pid: int) -> int | None:
    """A file descriptor that becomes readable when ``pid`` exits (Linux 5.3+), so the
    runner sleeps in one select instead of polling; None where unsupported."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
    except OSError:
        return None
    return fd


def _kill_everything(pid: int, pipe_inodes: set[int]) -> None:
    """SIGKILL the script's process group, every process in its session, and every
    process holding one of its output pipes (a child that called ``setsid`` left the
    session and the group, but it still holds what it inherited). Repeated until a
    scan finds nobody, so a process forked during the kill is caught next round."""
    me = os.getpid()
    for _round in range(5):
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        found = [p for p in _descendants(pid, pipe_inodes) if p != me]
        for victim in found:
            with suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        if not found:
            return


def _descendants(sid: int, pipe_inodes: set[int]) -> list[int]:
    """Live processes in session ``sid`` or group ``sid``, or holding one of the pipes."""
    out = []
    wanted = {f"pipe:[{ino}]" for ino in pipe_inodes}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="utf-8", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        state, pgrp, session = fields[0], int(fields[2]), int(fields[3])
        if state == "Z":
            continue  # already dead; its parent reaps it
        if sid in (pgrp, session) or _holds(entry.name, wanted):
            out.append(int(entry.name))
    return out


def _holds(pid: str, wanted: set[str]) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                return True
        except OSError:
            continue  # closed meanwhile
    return False
