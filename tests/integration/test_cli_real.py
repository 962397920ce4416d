"""The CLI as an administrator runs it: one process per command, on real libvirtd hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need
from tests.libvirt_hosts import H1, H2, reachable, running

pytestmark = pytest.mark.integration


def test_cli_session_on_two_real_hosts(tmp_path, xdg):
    need(reachable(H1), f"libvirtd not reachable at {H1}")
    need(reachable(H2), f"second libvirtd not reachable at {H2}")
    vp = str(Path(sys.executable).parent / "virtplane")
    state = str(tmp_path / "state.db")
    env = dict(os.environ)
    name = f"vp-cli-{os.getpid()}"

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([vp, "--state", state, *args], capture_output=True, text=True,
                              env=env)
        if ok:
            assert proc.returncode == 0, f"{args}: {proc.stdout}{proc.stderr}"
        return proc

    run("dc", "add", "dc1")
    run("cluster", "add", "cl1", "--dc", "dc1")
    run("host", "add", "h1", H1, "--cluster", "cl1")
    run("host", "add", "h2", H2, "--cluster", "cl1")
    run("storage", "add", "sd", "--type", "localfs", "--path", str(tmp_path / "sd"), "--dc", "dc1")
    run("vm", "create", name, "--cluster", "cl1", "--memory", "256", "--disk", "8M@sd")
    assert run("vm", "start", name).stdout.strip() == f"vm {name}: Up"
    assert json.loads(run("host", "show", "h1").stdout)["arch"] == "x86_64"
    run("vm", "plug", name, "nic", "n1", "user:e1000e")
    run("vm", "snapshot", name, "s1", "--description", "first")
    snaps = json.loads(run("vm", "snapshots", name, "--json").stdout)
    assert [s["name"] for s in snaps] == ["s1"]
    proc = run("vm", "migrate", name, "--to", "h2", "--unsafe", "--progress")
    assert "100.0%" in proc.stderr and name in running(H2)
    listing = run("vm", "list").stdout
    assert name in listing and "h2" in listing
    proc = run("vm", "revert", name, "s1", ok=False)
    assert proc.returncode == 1 and "revert needs Down" in proc.stderr
    run("vm", "destroy", name)
    assert run("vm", "revert", name, "s1").stdout.strip() == f"vm {name}: reverted to s1, Down"
    run("vm", "snapshot-delete", name, "s1")
    run("vm", "remove", name)
    events = run("dc", "list", "--json").stdout
    assert "dc1" in events
