"""The CLI through a running engine, on libvirt's test driver (no daemon needed).

``test:///default`` keeps its domains per process: without an engine, a VM started
by one ``virtplane`` process does not exist for the next one. Through the engine,
one process owns the connection, so ``vm start`` then ``vm stats`` in another
process works, as on a real host.
"""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from tests.engine.conftest import wait_for

pytestmark = pytest.mark.slow


def _setup(engine) -> None:
    for args in (("dc", "add", "dc1"), ("cluster", "add", "cl1", "--dc", "dc1"),
                 ("host", "add", "h1", "test:///default", "--cluster", "cl1"),
                 ("vm", "create", "vm1", "--cluster", "cl1", "--memory", "512")):
        engine.vp(*args, check=True)


def test_vm_start_then_stats_in_another_process(engine):
    engine.start("--host-interval", "0.5", "--vm-interval", "1")
    info = json.loads(engine.endpoint.read_text())
    assert stat.S_IMODE(os.stat(engine.endpoint).st_mode) == 0o600
    assert {"pid", "address", "token", "client"} <= set(info)
    assert info["address"].startswith("http://127.0.0.1:")
    _setup(engine)
    assert engine.vp("vm", "start", "vm1", check=True).stdout == "vm vm1: Up\n"
    stats = json.loads(engine.vp("vm", "stats", "vm1", check=True).stdout)
    assert stats["name"] == "vm1" and stats["status"] == "Up"
    # directly (no engine), this process's test driver never saw vm1 started
    direct = engine.vp("vm", "stats", "vm1", env={"VIRTPLANE_DIRECT": "1"})
    assert direct.returncode != 0 and "reports no stats for VM 'vm1'" in direct.stderr
    # errors keep the CLI's form and exit status
    bad = engine.vp("vm", "start", "nosuch")
    assert bad.returncode == 1 and "virtplane: error: no vm named 'nosuch'" in bad.stderr
    assert "Traceback" not in bad.stderr
    # the start ran as a job, recorded with its output
    jobs = json.loads(engine.vp("job", "list", "--all", "--json", check=True).stdout)
    starts = [j for j in jobs if j["kind"] == "vm.start"]
    assert [j["status"] for j in starts] == ["finished", "failed"]
    shown = json.loads(engine.vp("job", "show", starts[0]["id"], check=True).stdout)
    assert shown["result"]["stdout"] == "vm vm1: Up\n" and shown["progress"] == 100
    # the domain test:///default always has is external: listed, left alone
    status = engine.status()
    assert status["hosts"][0]["status"] == "Up"
    assert status["hosts"][0]["external"] == ["test"]
    codes = [e["code"] for e in engine.events()]
    assert 1 in codes and 100002 in codes and 100011 in codes and 100012 in codes
    assert engine.stop() == 0
    assert not engine.endpoint.exists()
    assert any(e["code"] == 2 for e in engine.events())  # ENGINE_STOPPED
    for line in engine.logs().splitlines():  # structured logs: one JSON object per line
        assert isinstance(json.loads(line), dict)


def test_async_job_wait_and_one_operation_per_vm(engine):
    engine.start("--host-interval", "0.5", "--vm-interval", "1")
    _setup(engine)
    submitted = engine.vp("--async", "vm", "start", "vm1", check=True).stdout
    job_id = submitted.split()[1]
    assert submitted == f"job {job_id} submitted (vm.start)\n"
    waited = engine.vp("job", "wait", job_id, "--timeout", "60", check=True)
    assert waited.stdout == "vm vm1: Up\n"
    # two operations on one VM at once: the second waits for the first (no interleaving)
    first = engine.vp("--async", "vm", "shutdown", "vm1", "--timeout", "2", check=True)
    second = engine.vp("--async", "vm", "start", "vm1", check=True)
    j1, j2 = first.stdout.split()[1], second.stdout.split()[1]
    engine.vp("job", "wait", j1, "--timeout", "60", check=True)
    engine.vp("job", "wait", j2, "--timeout", "60", check=True)
    a = json.loads(engine.vp("job", "show", j1, check=True).stdout)
    b = json.loads(engine.vp("job", "show", j2, check=True).stdout)
    assert a["updated"] <= b["updated"] and b["status"] == "finished"
    assert engine.vp("vm", "list", check=True).stdout.split()[:2] == ["vm1", "Up"]


def test_a_stale_endpoint_file_leaves_the_cli_working_directly(engine):
    engine.start("--host-interval", "0.5")
    _setup(engine)
    engine.kill()  # SIGKILL: the endpoint file stays behind
    assert engine.endpoint.exists()
    proc = engine.vp("vm", "list", check=True)
    assert proc.stdout.startswith("vm1")
    assert engine.vp("engine", "status").returncode == 3
    # a new engine takes over the same state store
    engine.start("--host-interval", "0.5")
    assert engine.status()["pid"] == engine.proc.pid


def test_a_second_engine_on_the_same_state_is_refused(engine):
    engine.start("--host-interval", "0.5")
    second = engine.vp("engine", "run", timeout=60)
    assert second.returncode == 3
    assert "already serves this state store" in second.stderr


def test_engine_status_without_engine_and_job_cancel_of_left_over_jobs(engine):
    proc = engine.vp("engine", "status")
    assert proc.returncode == 3 and "no engine serves" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_events_follow_prints_new_events(engine):
    import subprocess
    import sys

    engine.start("--host-interval", "0.5")
    follower = subprocess.Popen([sys.executable, "-m", "virtplane.cli", "--state",
                                 str(engine.state), "events", "--follow", "--last", "0"],
                                stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        _setup(engine)
        engine.vp("vm", "start", "vm1", check=True)
        import select

        ready, _, _ = select.select([follower.stdout], [], [], 20)
        assert ready, "no followed event within 20 s"
        assert "[" in follower.stdout.readline()
    finally:
        follower.terminate()
        follower.wait(10)


def test_events_of_a_start_through_the_engine_carry_the_job_correlation_id_and_code(engine):
    engine.start("--host-interval", "0.5")
    _setup(engine)
    engine.vp("vm", "start", "vm1", check=True)
    engine.vp("vm", "pause", "vm1", check=True)
    jobs = json.loads(engine.vp("job", "list", "--all", "--json", check=True).stdout)
    start = next(j for j in jobs if j["kind"] == "vm.start")
    cid = start["correlation_id"]
    of_job = [e for e in engine.events() if e["correlation_id"] == cid]
    codes = {e["code"]: e["message"] for e in of_job}
    # oVirt's USER_STARTED_VM, written by the core's VM service during the job, and the
    # job's own start and end
    assert codes[153] == "started on h1", of_job
    assert 100010 in codes and 100011 in codes
    assert all(e["code"] is not None for e in of_job), of_job
    # an operation that is no job (pause) still gets its code (USER_PAUSE_VM) and a
    # correlation id of its own request
    pause = [e for e in engine.events() if e["code"] == 39 and e["message"] == "pause"]
    assert pause and pause[0]["correlation_id"] and pause[0]["correlation_id"] != cid, pause


def _slow_start_hook(tmp_path, monkeypatch, seconds: float) -> None:
    """A hook-scripts plugin script that makes every VM start take ``seconds``
    (``before_vm_start`` under $XDG_CONFIG_HOME/virtplane/hooks, which the engine and
    the CLI processes both read)."""
    point = tmp_path / "xdg" / "virtplane" / "hooks" / "before_vm_start"
    point.mkdir(parents=True)
    script = point / "50_slow"
    script.write_text(f"#!/bin/sh\nsleep {seconds}\n")
    script.chmod(0o755)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def _submit_start_and_wait_until_it_runs(engine) -> str:
    job_id = engine.vp("--async", "vm", "start", "vm1", check=True).stdout.split()[1]

    def started() -> bool:
        shown = json.loads(engine.vp("job", "show", job_id, check=True).stdout)
        return bool(shown["status"] == "started")

    wait_for(started, 30, "the start job running")
    return job_id


def _job(engine, job_id: str) -> dict:
    shown: dict = json.loads(engine.vp("job", "show", job_id, check=True).stdout)
    return shown


def test_sigterm_mid_job_lets_the_job_finish_and_the_vm_is_up(engine, tmp_path, monkeypatch):
    """The engine's promise on SIGTERM: running jobs get ``stop_timeout`` to finish."""
    _slow_start_hook(tmp_path, monkeypatch, 3)
    engine.start("--host-interval", "0.5", "--stop-timeout", "30")
    _setup(engine)
    job_id = _submit_start_and_wait_until_it_runs(engine)
    began = time.monotonic()
    assert engine.stop() == 0  # SIGTERM, mid-job
    assert time.monotonic() - began < 30
    assert not engine.endpoint.exists()
    # read directly from the store (no engine now): the job finished, the VM is Up
    job = _job(engine, job_id)
    assert job["status"] == "finished", job
    assert job["result"]["stdout"] == "vm vm1: Up\n"
    assert engine.vp("vm", "list", check=True).stdout.split()[:2] == ["vm1", "Up"]
    assert any(e["code"] == 153 and e["correlation_id"] == job["correlation_id"]
               for e in engine.events())


def test_sigterm_with_a_low_stop_timeout_fails_the_job(engine, tmp_path, monkeypatch):
    """A job still running after ``stop_timeout`` (and the few seconds a cancelled job
    gets) is failed with the reason; the next engine reconciles the VM with its host."""
    _slow_start_hook(tmp_path, monkeypatch, 12)
    engine.start("--host-interval", "0.5", "--vm-interval", "1", "--stop-timeout", "0.5")
    _setup(engine)
    job_id = _submit_start_and_wait_until_it_runs(engine)
    assert engine.stop() == 0
    job = _job(engine, job_id)
    assert job["status"] == "failed", job
    assert "the engine stopped before the job ended" in job["error"]
    # the late end of the start never overwrites the failure
    assert _job(engine, job_id)["status"] == "failed"
    # a new engine: test:///default died with the old one, so vm1 runs nowhere and is
    # Down, whatever the interrupted start wrote
    monkeypatch.delenv("XDG_CONFIG_HOME")
    engine.start("--host-interval", "0.5", "--vm-interval", "1")
    wait_for(lambda: engine.vp("vm", "list", check=True).stdout.split()[1] == "Down", 30,
             "vm1 reconciled Down")
    assert _job(engine, job_id)["status"] == "failed"
