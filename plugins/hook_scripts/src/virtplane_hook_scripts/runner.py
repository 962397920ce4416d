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

What a script leaves in the payload file is untrusted input (:func:`read_back`,
:func:`payload_problem`): the file lives in a private folder made for the point,
and is read back without following a symbolic link, only when it is still a
regular file with no other hard link, at most :data:`MAX_PAYLOAD_BYTES` bytes of
UTF-8 without NUL bytes; XML must be well-formed, without a DOCTYPE, with the root
element it was given (a ``<domain>`` keeps its ``<name>`` and ``<uuid>``, a device its
``<alias>``); JSON
must parse to the same kind (object or array) it was given. A script whose
payload breaks a rule counts as exiting 2 with the reason (naming the script):
no further script runs, a ``before_*`` operation fails, an ``after_*`` point logs
it, and the payload stays what the previous script left.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import json
import os
import re
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtplane.errors import InvalidInput
from virtplane.names import RUNNER_ENV_NAMES, check_property_name
from virtplane_hook_scripts._scan import scripts_of

if TYPE_CHECKING:
    from xml.etree import ElementTree as ET

__all__ = ["EXIT_GRACE", "MAX_PAYLOAD_BYTES", "STDERR_LIMIT", "PointResult", "ScriptResult",
           "checksum", "diff_lines", "environment_problem", "launch_flags_file",
           "parse_xml", "payload_problem", "pretty_lines", "read_back", "run_dir", "run_point",
           "scripts_of"]

PYTHONPATH_DIR = str(Path(__file__).resolve().parent / "_pythonpath")

#: bytes of a script's stderr kept (the rest is counted and dropped): it becomes one
#: event row, and 20 MB of it once did
STDERR_LIMIT = 64 * 1024
#: seconds the runner keeps reading a script's pipes after the script exited: enough
#: for its last writes, short enough that a daemonised child holding them costs nothing
EXIT_GRACE = 0.5
#: bytes a script may leave in the payload file: a domain XML is tens of KiB, the
#: stats of every VM of a host a few MiB; more is refused, not read into memory
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024

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
              properties: Mapping[str, str] | None = None,
              check: Callable[[str], str | None] | None = None,
              what: str = "payload") -> PointResult:
    """Run ``scripts`` on ``payload``; return the final payload and each script's result.

    Each script's payload is read back with :func:`read_back` and, when it changed,
    given to ``check`` (e.g. :func:`payload_problem`), which says why it must not be
    used; such a script fails as if it exited 2 (see the module's docstring), with a
    reason naming it and ``what`` the payload is (``"device XML"`` ...).

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
    # a private folder (0700) per run: whatever a script leaves in place of the file
    # (a folder, a link, a FIFO) goes with it, and nobody else can plant one there
    folder = tempfile.mkdtemp(prefix=f"vp-hook-{point}-")
    name = f"{point}.json" if json_payload else f"{point}.xml"
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            tmp = os.path.join(folder, name)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                         0o600, dir_fd=dir_fd)
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
                result.scripts.append(res)
                after, problem = read_back(name, dir_fd)
                if problem is None and after != before and check is not None:
                    problem = check(after)
                if problem is not None:
                    _unusable(res, script, what, "$_hook_json" if json_payload
                              else "$_hook_domxml", problem)
                    break
                if dry_run or after != before:
                    res.diff = diff_lines(before, after, script.name, json_payload)
                before = after
                if res.rc == 2:
                    break
            result.payload = before
        finally:
            os.close(dir_fd)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _unusable(res: ScriptResult, script: Path, what: str, variable: str,
              problem: str) -> None:
    """Make ``res`` the failure of a script that left an unusable payload: it counts as
    exiting 2, and its own stderr (if any) follows the reason."""
    reason = f"{script.name}: the {what} a hook returned is not usable ({variable}): {problem}"
    if res.stderr:
        reason += f" (its stderr: {res.stderr})"
    res.rc = 2
    res.stderr = reason


def read_back(name: str, dir_fd: int,
              limit: int | None = None) -> tuple[str, str | None]:
    """``(text, None)``: the payload file ``name`` of the folder ``dir_fd``, or
    ``("", why)`` when it must not be used.

    The file is opened without following a symbolic link and without blocking (a
    FIFO left in its place would wait for a writer forever); it must still be a
    regular file with one link (not a hard link to another file), at most ``limit``
    bytes (:data:`MAX_PAYLOAD_BYTES`), UTF-8 without NUL bytes.
    """
    limit = MAX_PAYLOAD_BYTES if limit is None else limit
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except FileNotFoundError:
        return "", "the file was removed"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "", "the file was replaced by a symbolic link (not followed)"
        return "", f"the file cannot be read: {exc.strerror or exc}"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "", "the file was replaced by something that is not a regular file"
        if info.st_nlink != 1:
            return "", "the file was replaced by a hard link to another file"
        if info.st_size > limit:
            return "", f"it is {info.st_size} bytes; at most {limit} are read"
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        return "", f"the file cannot be read: {exc.strerror or exc}"
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        return "", f"it is more than {limit} bytes"
    nul = data.find(b"\0")
    if nul >= 0:
        return "", f"it holds a NUL byte (at byte {nul})"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return "", f"it is not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r})"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def payload_problem(text: str, original: str, kind: str) -> str | None:
    """Why ``text``, a script's edit of ``original``, must not replace it; or None.

    ``kind``: ``"json"`` (it must parse to the same kind of value, object or array,
    without NaN or Infinity, its strings characters XML can hold), ``"xml"``
    (well-formed, no DOCTYPE, the same root element; a ``<domain>`` keeps its
    ``<name>`` and ``<uuid>``, a device its ``<alias>``), anything else (only
    the checks of :func:`read_back`).
    """
    if kind == "json":
        try:
            value = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            return f"it is not JSON: {exc}"
        want = type(json.loads(original)) if original.strip() else dict
        if not isinstance(value, want):
            return (f"it is a JSON {_json_kind(value)}; the point hands scripts a JSON "
                    f"{_json_kind(want())} and takes one back")
        return _unxmlable(value)
    if kind != "xml":
        return None
    try:
        root = parse_xml(text)
    except InvalidInput as exc:
        return str(exc)
    try:
        old = parse_xml(original)
    except InvalidInput:
        return None  # nothing to compare with
    if root.tag != old.tag:
        return f"its root element is <{root.tag}>; it must stay <{old.tag}>"
    if old.tag == "domain":
        for child in ("name", "uuid"):
            was, now = old.findtext(child), root.findtext(child)
            if was is not None and (now or "").strip() != was.strip():
                return (f"it changes the domain's <{child}> from {was!r} to {now!r}; "
                        "the domain must keep the VM's")
        return None
    # a device is found again (unplug, its device points) by its alias, exactly
    alias = old.find("alias")
    was = None if alias is None else alias.get("name")
    if was is not None:
        node = root.find("alias")
        now = None if node is None else node.get("name")
        if now != was:
            return (f"it changes the device's <alias name=...> from {was!r} to {now!r}; "
                    "virtplane finds the device by it")
    return None


#: a character XML 1.0 cannot hold (control characters, lone surrogates, U+FFFE/F)
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _unxmlable(value: Any) -> str | None:
    """Why a JSON value cannot be used, or None: its strings (keys too) go into
    libvirt's XML (a prepared disk's path) and the REST API's, so each must be
    characters XML can hold. Walked without recursion (the value may be deep)."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, str):
            bad = _NOT_XML_CHAR.search(item)
            if bad is not None:
                return (f"the string {item[:40]!r} holds {bad.group()!r}, a character XML "
                        "cannot hold (it would reach libvirt's XML)")
    return None


def parse_xml(text: str) -> ET.Element:
    """``text`` parsed by the core's parser (:class:`virtplane.domxml.XMLElement`),
    which refuses a DOCTYPE rather than expand its entities; :class:`InvalidInput`
    when it does not parse."""
    from virtplane.domxml import XMLElement

    try:
        return XMLElement.from_xml(text).element
    except InvalidInput as exc:  # an untyped view's message says "<> XML"
        raise InvalidInput(str(exc).replace("<> XML", "the XML", 1)) from None


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean",
            type(None): "null"}.get(type(value), "number")


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
