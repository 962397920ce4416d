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

One script's process (session, pipes, deadline, kill) is run by ``_process``; the
checks and the diff of a script's edit are in ``_payload``. This module re-exports
their public names, its import path for them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from virtplane.errors import InvalidInput
from virtplane.names import RUNNER_ENV_NAMES, check_property_name
from virtplane_hook_scripts._payload import diff_lines, parse_xml, payload_problem, pretty_lines
from virtplane_hook_scripts._process import EXIT_GRACE, STDERR_LIMIT, ScriptResult, run_one
from virtplane_hook_scripts._scan import scripts_of

__all__ = [
    "EXIT_GRACE",
    "MAX_PAYLOAD_BYTES",
    "STDERR_LIMIT",
    "PointResult",
    "ScriptResult",
    "checksum",
    "diff_lines",
    "environment_problem",
    "launch_flags_file",
    "parse_xml",
    "payload_problem",
    "pretty_lines",
    "read_back",
    "run_dir",
    "run_point",
    "scripts_of",
]

PYTHONPATH_DIR = str(Path(__file__).resolve().parent / "_pythonpath")

#: bytes a script may leave in the payload file: a domain XML is tens of KiB, the
#: stats of every VM of a host a few MiB; more is refused, not read into memory
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024

#: variables the plugin adds next to the VM's properties (see ``HookScripts._env``);
#: every other name added to virtplane's own environment must pass
#: :func:`~virtplane.names.check_property_name`
_PLUGIN_SET = frozenset(
    RUNNER_ENV_NAMES - {"_hook_domxml", "_hook_json", "PYTHONPATH"} | {"VIRTPLANE_VDSM_CONFIG"}
)


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


def environment_problem(
    env: Mapping[str, str], properties: Mapping[str, str] | None = None
) -> str | None:
    """Why ``env`` must not be given to hook scripts, or None.

    ``properties`` are the VM's (and device's) custom properties when the caller passes
    them apart; each name must pass :func:`~virtplane.names.check_property_name`. As a
    second line of defence every variable ``env`` adds to or changes in virtplane's own
    environment must either be one the plugin sets itself or pass the same rule: that
    catches a property merged into ``env`` by a caller that never checked it.
    """
    names = list(properties or ())
    names += [
        k
        for k, v in env.items()
        if os.environ.get(k) != v and k not in _PLUGIN_SET and k not in names
    ]
    for name in names:
        try:
            check_property_name(name)
        except InvalidInput as exc:
            return f"refusing to run hook scripts with this environment: {exc}"
    return None


# -------------------------------------------------------------------- running


def run_point(
    point: str,
    scripts: list[Path],
    payload: str,
    json_payload: bool,
    env: dict[str, str],
    timeout: float,
    dry_run: bool = False,
    properties: Mapping[str, str] | None = None,
    check: Callable[[str], str | None] | None = None,
    what: str = "payload",
) -> PointResult:
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
            fd = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd
            )
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(payload)
            script_env = dict(env)
            script_env.update(properties or {})
            script_env["_hook_json" if json_payload else "_hook_domxml"] = tmp
            script_env["PYTHONPATH"] = os.pathsep.join(
                p for p in (PYTHONPATH_DIR, env.get("PYTHONPATH", "")) if p
            )
            before = payload
            for script in scripts:
                res = run_one(script, script_env, timeout)
                result.scripts.append(res)
                after, problem = read_back(name, dir_fd)
                if problem is None and after != before and check is not None:
                    problem = check(after)
                if problem is not None:
                    _unusable(
                        res,
                        script,
                        what,
                        "$_hook_json" if json_payload else "$_hook_domxml",
                        problem,
                    )
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


def _unusable(res: ScriptResult, script: Path, what: str, variable: str, problem: str) -> None:
    """Make ``res`` the failure of a script that left an unusable payload: it counts as
    exiting 2, and its own stderr (if any) follows the reason."""
    reason = f"{script.name}: the {what} a hook returned is not usable ({variable}): {problem}"
    if res.stderr:
        reason += f" (its stderr: {res.stderr})"
    res.rc = 2
    res.stderr = reason


def read_back(name: str, dir_fd: int, limit: int | None = None) -> tuple[str, str | None]:
    """``(text, None)``: the payload file ``name`` of the folder ``dir_fd``, or
    ``("", why)`` when it must not be used.

    The file is opened without following a symbolic link and without blocking (a
    FIFO left in its place would wait for a writer forever); it must still be a
    regular file with one link (not a hard link to another file), at most ``limit``
    bytes (:data:`MAX_PAYLOAD_BYTES`), UTF-8 without NUL bytes.
    """
    limit = MAX_PAYLOAD_BYTES if limit is None else limit
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
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
        return "", f"it is not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})"
