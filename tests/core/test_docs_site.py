"""The documentation's getting-started commands work as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_first_vm_commands_run_as_written(cli, tmp_path, monkeypatch):
    text = (ROOT / "docs" / "getting-started.md").read_text()
    block = text.split("## A first VM by hand", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [ln.split("#", 1)[0].strip() for ln in block.splitlines()]
    commands = [shlex.split(ln) for ln in lines if ln.startswith("virtplane ")]
    assert len(commands) >= 10
    monkeypatch.setenv("VIRTPLANE_STATE", str(tmp_path / "first.db"))
    for cmd in commands:
        cmd = [re.sub(r"^/tmp/first-sd$", str(tmp_path / "sd"), a) for a in cmd]
        rc, out, err = cli(*cmd[1:])
        assert rc == 0, f"{' '.join(cmd)}: {err}"
    rc, out, _ = cli("vm", "list", "--json")
    assert rc == 0 and '"vm1"' in out


def _block(text: str, heading: str) -> list[list[str]]:
    block = text.split(heading, 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [ln.split("#", 1)[0].strip() for ln in block.splitlines()]
    return [shlex.split(ln) for ln in lines if ln.startswith("virtplane ")]


@pytest.mark.slow
def test_the_engine_commands_run_as_written_each_in_its_own_process(tmp_path):
    """The guide's first block, then its engine block: ``virtplane engine run &`` in the
    background and every other line as a process of its own, on ``test:///default``."""
    text = (ROOT / "docs" / "getting-started.md").read_text()
    env = {**os.environ, "VIRTPLANE_STATE": str(tmp_path / "first.db")}

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        cmd = [re.sub(r"^/tmp/first-sd$", str(tmp_path / "sd"), a) for a in cmd]
        proc = subprocess.run([sys.executable, "-m", "virtplane.cli", *cmd[1:]], env=env,
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}"
        return proc

    for cmd in _block(text, "## A first VM by hand"):
        if cmd[1:] != ["plugins", "list"]:
            run(cmd)
    commands = _block(text, "## Running it through the engine")
    assert commands[0][:3] == ["virtplane", "engine", "run"]
    assert commands[-1] == ["virtplane", "engine", "stop"]
    assert ["virtplane", "vm", "start", "vm1"] in commands
    assert ["virtplane", "vm", "stats", "vm1"] in commands
    log = tmp_path / "engine.log"
    with open(log, "wb") as err:  # the line's `2>FILE &`
        engine = subprocess.Popen([sys.executable, "-m", "virtplane.cli", "engine", "run"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=err,
                                  stdin=subprocess.DEVNULL)
    # the shell reaps its background job when it ends: so does this test (an unreaped
    # child stays a zombie, which `engine stop` would wait for)
    reaper = threading.Thread(target=engine.wait, daemon=True)
    reaper.start()
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([sys.executable, "-m", "virtplane.cli", "engine", "status"],
                             env=env, capture_output=True).returncode != 0:
            assert engine.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no engine within 30 s:\n{log.read_text()}"
            time.sleep(0.2)
        out = {}
        for cmd in commands[1:]:
            out[" ".join(cmd[1:4])] = run(cmd).stdout
        assert out["vm start vm1"] == "vm vm1: Up\n"
        assert json.loads(out["vm stats vm1"])["status"] == "Up"
        reaper.join(60)
        assert engine.returncode == 0, log.read_text()
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
