"""Hook script timeouts hold whatever a script leaves behind; stderr is bounded."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from virtplane_hook_scripts.runner import EXIT_GRACE, STDERR_LIMIT, run_point


def _script(tmp_path: Path, body: str, name: str = "50_hook") -> Path:
    folder = tmp_path / "hooks"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _pid(path: Path, seconds: float = 5.0) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"{path} never got a pid")


@pytest.fixture
def reaper():
    """Kill what a test's scripts left running, whatever the outcome."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _run(script: Path, timeout: float):
    t0 = time.monotonic()
    result = run_point("before_vm_start", [script], "<domain/>", False, dict(os.environ),
                       timeout)
    return result.scripts[0], time.monotonic() - t0


def test_a_daemonised_child_holding_stderr_cannot_stretch_the_timeout(tmp_path, reaper):
    """`setsid cmd &` leaves the script's group and session but keeps its stderr: the
    start used to wait for that child (15 s under a 2 s timeout)."""
    pidfile = tmp_path / "daemon.pid"
    script = _script(tmp_path, f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 15' &\n"
                               "echo stuck >&2\nsleep 15\n")
    res, took = _run(script, 1.5)
    daemon = _pid(pidfile)
    reaper.append(daemon)
    assert res.timed_out and res.rc == 2
    assert "killed after 1.5 s (hook timeout)" in res.stderr and "stuck" in res.stderr
    assert took < 4
    # everything it started is killed, the escaped child included (it held the pipe)
    assert _wait_gone(daemon)


def test_a_script_that_exits_leaving_a_background_child_is_not_a_timeout(tmp_path, reaper):
    pidfile = tmp_path / "daemon.pid"
    script = _script(tmp_path, f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 15' &\n"
                               "echo started a helper >&2\nexit 0\n")
    res, took = _run(script, 5)
    reaper.append(_pid(pidfile))
    assert (res.rc, res.timed_out) == (0, False)
    assert res.stderr == "started a helper"
    assert took < EXIT_GRACE + 2


def test_a_background_child_in_the_group_is_killed_at_the_timeout(tmp_path, reaper):
    """Regression guard (the old runner got this right too): the new pipe reader must
    keep killing the script's group."""
    pidfile = tmp_path / "child.pid"
    script = _script(tmp_path, f"sh -c 'echo $$ > {pidfile}; exec sleep 15' "
                               ">/dev/null 2>&1 </dev/null &\nsleep 15\n")
    res, took = _run(script, 1)
    child = _pid(pidfile)
    reaper.append(child)
    assert res.timed_out and took < 4
    assert _wait_gone(child)


def test_a_script_that_closes_its_pipes_and_hangs_still_times_out(tmp_path):
    """Regression guard: EOF on both pipes is not the end of the script; the timeout
    still holds while it runs on (the new reader's second wait)."""
    script = _script(tmp_path, "exec >/dev/null 2>&1\nsleep 15\n")
    res, took = _run(script, 1)
    assert res.timed_out and res.rc == 2 and took < 4


def test_huge_stderr_is_bounded_with_a_note(tmp_path):
    script = _script(tmp_path, "head -c 20000000 /dev/zero | tr '\\0' x >&2\nexit 1\n")
    res, took = _run(script, 30)
    assert res.rc == 1 and not res.timed_out
    assert len(res.stderr.encode()) < STDERR_LIMIT + 200
    assert res.stderr.startswith("x" * 1000)
    assert f"stderr truncated: {20000000 - STDERR_LIMIT} more bytes dropped" in res.stderr


def test_stdout_flood_does_not_block_the_script(tmp_path):
    """Regression guard: stdout is drained (and dropped) so a chatty script never blocks
    on a full pipe."""
    script = _script(tmp_path, "head -c 5000000 /dev/zero\necho done >&2\n")
    res, _took = _run(script, 30)
    assert (res.rc, res.stderr) == (0, "done")


def test_a_script_that_cannot_run_is_a_failure_not_a_traceback(tmp_path):
    path = tmp_path / "hooks" / "50_broken"
    path.parent.mkdir()
    path.write_text("no interpreter line\n")
    path.chmod(0o755)
    res, _took = _run(path, 5)
    assert res.rc == 2 and "50_broken: cannot be run" in res.stderr
