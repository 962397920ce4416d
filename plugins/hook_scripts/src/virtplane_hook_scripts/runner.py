"""Finding and running the scripts of a hook point, with VDSM's contract.

Scripts of a point are the regular, executable files in ``<root>/<point>/`` of
every hook root, run one after another in lexicographic order of their file
names (the roots' order breaks ties), each as its own process:

* the payload is in a temporary file named by ``$_hook_domxml`` (domain or
  device XML) or ``$_hook_json`` (JSON points); each script sees the previous
  one's edits, and the final content is read back;
* the environment is virtplane's, plus the VM's custom properties (and the
  device's, for device points), ``vmId``, the point's extras
  (``FROM_SNAPSHOT``, ticket parameters ...), ``PYTHONPATH`` with the
  ``hooking`` module, and ``VIRTPLANE_HOOK_RUNDIR`` for launch flags;
* exit 0 is success; 1 records the failure and the other scripts still run;
  2 records it and stops; more than 2 is logged and ignored; a script that
  outlives the timeout is killed and counts as 2.

Hardening (issue 15):

* each script starts in its own session and process group; at the timeout the
  group, everything else in the session, and any process still holding the
  script's output pipes (a ``setsid cmd &`` that escaped both) are killed;
* output is read with a deadline, never "until EOF": a daemonised child that
  inherited stdout/stderr cannot hold a start past the timeout, and once the
  script itself exited the runner reads for :data:`EXIT_GRACE` seconds more and
  closes the pipes, so such a script is reported with its own exit code;
* captured stderr is bounded at :data:`STDERR_LIMIT` bytes with a note of how
  much was dropped (it becomes an event row);
* the environment is checked before any script runs: a custom property whose
  name breaks :func:`virtplane.names.check_property_name` (``PATH``,
  ``LD_PRELOAD``, ``PYTHONPATH`` ...) makes the point fail with that reason and
  no script of the point runs.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from virtplane.errors import InvalidInput
from virtplane.names import RUNNER_ENV_NAMES, check_property_name
from virtplane_hook_scripts._scan import scripts_of

__all__ = ["EXIT_GRACE", "STDERR_LIMIT", "PointResult", "ScriptResult", "checksum",
           "diff_lines", "environment_problem", "launch_flags_file", "pretty_lines",
           "run_dir", "run_point", "scripts_of"]

PYTHONPATH_DIR = str(Path(__file__).resolve().parent / "_pythonpath")

#: bytes of a script's stderr kept (the rest is counted and dropped): it becomes one
#: event row, and 20 MB of it once did
STDERR_LIMIT = 64 * 1024
#: seconds the runner keeps reading a script's pipes after the script exited: enough
#: for its last writes, short enough that a daemonised child holding them costs nothing
EXIT_GRACE = 0.5

#: variables the plugin adds next to the VM's properties (see ``HookScripts._env``);
#: every other name added to virtplane's own environment must pass
#: :func:`~virtplane.names.check_property_name`
_PLUGIN_SET = frozenset(RUNNER_ENV_NAMES - {"_hook_domxml", "_hook_json", "PYTHONPATH"}
                        | {"VIRTPLANE_VDSM_CONFIG"})


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


@dataclass
class PointResult:
    """What the scripts of a point did together."""

    point: str
    payload: str
    scripts: list[ScriptResult] = field(default_factory=list)

    @property
    def errors(self) -> list[ScriptResult]:
        return [s for s in self.scripts if s.rc in (1, 2)]


def checksum(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------ run folder


def run_dir(configured: str | None = None) -> Path:
    """Where launch flags live: ``[plugin.hook_scripts] run_dir`` when the administrator
    set one, else ``hooks-run`` in virtplane's private runtime folder
    (:func:`virtplane.paths.private_subdir`), never a predictable folder under /tmp."""
    if configured:
        return Path(configured)
    from virtplane.paths import private_subdir

    return private_subdir("hooks-run")


def launch_flags_file(vm_id: str, configured: str | None = None) -> Path:
    """``<run_dir>/<vmId>/launchflags``, its folder created ``0700`` without following
    a symlink (``vm_id`` must be a plain name: it comes from the state store)."""
    if not vm_id or "/" in vm_id or vm_id in (".", ".."):
        raise InvalidInput(f"VM id {vm_id!r} cannot name a launch-flags folder")
    if configured:
        folder = Path(configured) / vm_id
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    else:
        from virtplane.paths import private_subdir

        folder = private_subdir("hooks-run", vm_id)
    return folder / "launchflags"


# ---------------------------------------------------------------- environment


def environment_problem(env: Mapping[str, str],
                        properties: Mapping[str, str] | None = None) -> str | None:
    """Why ``env`` must not be given to hook scripts, or None.

    ``properties`` are the VM's (and device's) custom properties when the caller passes
    them apart; each name must pass :func:`~virtplane.names.check_property_name`. As a
    second line of defence every variable ``env`` adds to or changes in virtplane's own
    environment must either be one the plugin sets itself or pass the same rule: that
    catches a property merged into ``env`` by a caller that never checked it.
    """
    names = list(properties or ())
    names += [k for k, v in env.items()
              if os.environ.get(k) != v and k not in _PLUGIN_SET and k not in names]
    for name in names:
        try:
            check_property_name(name)
        except InvalidInput as exc:
            return f"refusing to run hook scripts with this environment: {exc}"
    return None


# -------------------------------------------------------------------- running


def run_point(point: str, scripts: list[Path], payload: str, json_payload: bool,
              env: dict[str, str], timeout: float, dry_run: bool = False,
              properties: Mapping[str, str] | None = None) -> PointResult:
    """Run ``scripts`` on ``payload``; return the final payload and each script's result.

    ``properties`` (custom properties, name -> value) are checked and added to ``env``.
    When the environment is refused no script runs, and the result holds one failure
    (rc 2, ``refused``) naming the variable, so the point fails as a script exiting 2
    would: a ``before_*`` operation is refused with that reason.
    """
    result = PointResult(point=point, payload=payload)
    if not scripts:
        return result
    problem = environment_problem(env, properties)
    if problem is not None:
        result.scripts.append(ScriptResult(str(scripts[0]), 2, problem, 0.0, refused=True))
        return result
    fd, tmp = tempfile.mkstemp(prefix=f"vp-hook-{point}-", suffix=".json" if json_payload
                               else ".xml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(payload)
        script_env = dict(env)
        script_env.update(properties or {})
        script_env["_hook_json" if json_payload else "_hook_domxml"] = tmp
        script_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (PYTHONPATH_DIR, env.get("PYTHONPATH", "")) if p)
        before = payload
        for script in scripts:
            res = _run_one(script, script_env, timeout)
            with open(tmp, encoding="utf-8") as f:
                after = f.read()
            if dry_run or after != before:
                res.diff = diff_lines(before, after, script.name, json_payload)
            before = after
            result.scripts.append(res)
            if res.rc == 2:
                break
        result.payload = before
    finally:
        os.unlink(tmp)
    return result


def pretty_lines(text: str, json_payload: bool = False) -> list[str]:
    """``text`` one element (or JSON member) a line, indented, so that a diff of two
    payloads shows what changed rather than one changed line holding the whole
    document (libvirt and hook scripts often write XML on a single line). Text that
    does not parse is split as it is."""
    if json_payload:
        import json

        try:
            return json.dumps(json.loads(text), indent=2).splitlines()
        except ValueError:
            return text.splitlines()
    from xml.dom import minidom
    from xml.parsers.expat import ExpatError

    try:
        root = minidom.parseString(text).documentElement
    except ExpatError:
        return text.splitlines()
    if root is None:
        return text.splitlines()
    _strip_blank_text(root)
    lines = root.toprettyxml(indent="  ").splitlines()
    return [line for line in lines if line.strip()]


def _strip_blank_text(node: Any) -> None:
    """Drop whitespace-only text nodes (the old indentation), which toprettyxml would
    otherwise indent again."""
    for child in list(node.childNodes):
        if child.nodeType == child.TEXT_NODE and not child.data.strip():
            node.removeChild(child)
        elif child.nodeType == child.ELEMENT_NODE:
            _strip_blank_text(child)


def diff_lines(before: str, after: str, name: str, json_payload: bool = False) -> list[str]:
    """The unified diff of one script's edit, of pretty-printed payloads."""
    return list(difflib.unified_diff(pretty_lines(before, json_payload),
                                     pretty_lines(after, json_payload), "before", name,
                                     lineterm=""))


class _Capture:
    """A script's stdout (drained and dropped, as VDSM does) and its stderr (kept up to
    :data:`STDERR_LIMIT` bytes, the rest counted)."""

    def __init__(self) -> None:
        self.kept = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = STDERR_LIMIT - len(self.kept)
        self.kept += chunk[:max(room, 0)]
        self.dropped += max(len(chunk) - max(room, 0), 0)

    def text(self) -> str:
        text = self.kept.decode("utf-8", "replace").strip()
        if self.dropped:
            text += (f"\n[stderr truncated: {self.dropped} more bytes dropped; virtplane "
                     f"keeps the first {STDERR_LIMIT // 1024} KiB]")
        return text


def _run_one(script: Path, env: dict[str, str], timeout: float) -> ScriptResult:
    t0 = time.monotonic()
    deadline = t0 + timeout
    try:
        proc = subprocess.Popen([str(script)], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    except OSError as exc:
        return ScriptResult(str(script), 2, f"{script.name}: cannot be run: "
                            f"{exc.strerror or exc}", time.monotonic() - t0)
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
            return ScriptResult(str(script), 2, message + (f"; its stderr: {captured}"
                                                           if captured else ""),
                                time.monotonic() - t0, timed_out=True)
    finally:
        for pipe in pipes.values():
            pipe.close()
    return ScriptResult(str(script), proc.returncode, err.text(), time.monotonic() - t0)


def _pump(proc: subprocess.Popen[bytes], fds: list[int], err_fd: int,
          err: _Capture, deadline: float) -> bool:
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
