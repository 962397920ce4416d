"""Engine fixtures: an engine in a subprocess on a per-test state store, and a CLI runner
that runs ``virtplane`` as another process (what a user does)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


class EngineRun:
    """One ``virtplane engine run`` process and the CLI around it."""

    def __init__(self, state: Path, log: Path) -> None:
        self.state = state
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> Path:
        return self.state.with_name(self.state.name + ".engine")

    def vp(self, *args: str, env: dict[str, str] | None = None, check: bool = False,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``virtplane --state STATE ARGS`` as its own process."""
        full = {**os.environ, **(env or {})}
        proc = subprocess.run([sys.executable, "-m", "virtplane.cli", "--state",
                               str(self.state), *args], capture_output=True, text=True,
                              env=full, timeout=timeout, stdin=subprocess.DEVNULL)
        if check:
            assert proc.returncode == 0, f"{args}: {proc.stdout}{proc.stderr}"
        return proc

    def start(self, *options: str, wait: float = 30.0) -> None:
        """Start the engine and wait until it answers."""
        assert self.proc is None or self.proc.poll() is not None
        old = json.loads(self.endpoint.read_text()).get("pid") if self.endpoint.exists() \
            else None
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "virtplane.cli", "--state", str(self.state), "engine",
                 "run", *options], stdout=subprocess.DEVNULL, stderr=err,
                stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"engine exited {self.proc.returncode}:\n{self.logs()}")
            if self.endpoint.exists():
                pid = json.loads(self.endpoint.read_text()).get("pid")
                if pid == self.proc.pid and pid != old:
                    if self.vp("engine", "status").returncode == 0:
                        return
            time.sleep(0.1)
        raise AssertionError(f"engine did not answer within {wait} s:\n{self.logs()}")

    def status(self) -> dict[str, Any]:
        proc = self.vp("engine", "status", "--json", check=True)
        data: dict[str, Any] = json.loads(proc.stdout)
        return data

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(60)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(90)
        except subprocess.TimeoutExpired:
            # every thread's stack into the log first: what the stop is waiting for
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"engine ignored SIGTERM:\n{self.logs()}") from None

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def events(self, code: int | None = None) -> list[dict[str, Any]]:
        args = ["events", "--json", "--last", "100000"]
        if code is not None:
            args += ["--code", str(code)]
        proc = self.vp(*args, check=True)
        return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineRun]:
    run = EngineRun(tmp_path / "state" / "state.db", tmp_path / "engine.log")
    yield run
    run.stop()


def wait_for(check: Any, timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``check()`` until it returns something true; fail with ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")
