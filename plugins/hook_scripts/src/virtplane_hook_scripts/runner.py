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
"""

from __future__ import annotations

import difflib
import hashlib
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from virtplane_hook_scripts._scan import scripts_of

__all__ = ["PointResult", "ScriptResult", "checksum", "run_point", "scripts_of"]

PYTHONPATH_DIR = str(Path(__file__).resolve().parent / "_pythonpath")


@dataclass
class ScriptResult:
    """What one script did."""

    path: str
    rc: int
    stderr: str
    seconds: float
    timed_out: bool = False
    diff: list[str] = field(default_factory=list)


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


def run_point(point: str, scripts: list[Path], payload: str, json_payload: bool,
              env: dict[str, str], timeout: float, dry_run: bool = False) -> PointResult:
    """Run ``scripts`` on ``payload``; return the final payload and each script's result."""
    result = PointResult(point=point, payload=payload)
    if not scripts:
        return result
    fd, tmp = tempfile.mkstemp(prefix=f"vp-hook-{point}-", suffix=".json" if json_payload
                               else ".xml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(payload)
        script_env = dict(env)
        script_env["_hook_json" if json_payload else "_hook_domxml"] = tmp
        script_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (PYTHONPATH_DIR, env.get("PYTHONPATH", "")) if p)
        before = payload
        for script in scripts:
            res = _run_one(script, script_env, timeout)
            with open(tmp, encoding="utf-8") as f:
                after = f.read()
            if dry_run or after != before:
                res.diff = list(difflib.unified_diff(
                    before.splitlines(), after.splitlines(), "before", script.name, lineterm=""))
            before = after
            result.scripts.append(res)
            if res.rc == 2:
                break
        result.payload = before
    finally:
        os.unlink(tmp)
    return result


def _run_one(script: Path, env: dict[str, str], timeout: float) -> ScriptResult:
    t0 = time.monotonic()
    proc = subprocess.Popen([str(script)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # kill the script and anything it started (its own session)
        os.killpg(proc.pid, signal.SIGKILL)
        _out, err = proc.communicate()
        return ScriptResult(str(script), 2, f"{script.name}: killed after {timeout:g} s "
                            "(hook timeout)", time.monotonic() - t0, timed_out=True)
    return ScriptResult(str(script), proc.returncode, err.decode("utf-8", "replace").strip(),
                        time.monotonic() - t0)
