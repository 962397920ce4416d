"""``kill -USR1 <engine pid>``: every thread's stack goes to the engine's log (stderr) and
the engine goes on serving; what a stop that hangs, or a poll that is stuck, waits for.
The test harness sends it before it kills an engine that ignored SIGTERM."""

from __future__ import annotations

import signal
import time

from tests.engine.conftest import EngineRun


def test_sigusr1_dumps_every_thread_and_the_engine_goes_on(engine: EngineRun) -> None:
    engine.start()
    assert engine.proc is not None
    engine.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 20
    while "Current thread" not in engine.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = engine.logs()
    assert "Current thread" in log  # faulthandler's dump of the main thread
    assert log.count("Thread 0x") >= 2  # and the others (the API server, the pool ...)
    assert 'File "' in log and "engine.py" in log
    assert engine.proc.poll() is None  # still running
    assert engine.status()["pid"] == engine.proc.pid
    assert engine.stop() == 0
