"""The kit's fence-agent contract on every built-in fence agent, each loaded through its
entry point, as a cluster's host names it.

* ``test``: the in-memory switch of the tests;
* ``fence-agents``: a ``fence_*`` program of this test's own that speaks the
  fence-agents protocol (key=value lines on stdin, ``Status: ON``/``OFF``, exit 2
  for off) and keeps its "power" in a file: the lab device the contract switches;
* ``ssh``: soft fencing only; its power actions must be refused, and a soft fence
  of a host that lets nobody in must come back as a failed result;
* ``namespace-host``: a namespace libvirt host of this test's own
  (tools/start-second-host.sh): switched off (its libvirtd and QEMUs killed), on
  again, and soft-fenced (libvirtd restarted in its namespace). Needs root and
  libvirtd: skipped locally without them, failed in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need
from virtplane_engine.scheduling.fencing import FenceAction, FenceAgents, FenceTarget
from virtplane_engine.scheduling.testing import FenceAgentContract

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "tools" / "start-second-host.sh")

FAKE_FENCE_PROGRAM = """\
import pathlib, sys

opts = dict(line.rstrip("\\n").split("=", 1) for line in sys.stdin if "=" in line)
pathlib.Path(opts["log"]).open("a").write(repr(sorted(opts.items())) + "\\n")
state = pathlib.Path(opts["statefile"])
power = state.read_text() if state.exists() else "ON"
action = opts.get("action", "status")
if action in ("status", "monitor"):
    print(f"Status: {power}")
    sys.exit(0 if power == "ON" else 2)
if action in ("on", "off", "reboot"):
    state.write_text("OFF" if action == "off" else "ON")
    print(f"Success: {action}")
    sys.exit(0)
print(f"unknown action {action}", file=sys.stderr)
sys.exit(1)
"""


def test_every_builtin_fence_agent_has_a_contract_class_here():
    from virtplane_engine.scheduling.registry import UnitRegistry

    tested = {c.agent_name for c in globals().values()
              if isinstance(c, type) and issubclass(c, FenceAgentContract)
              and c is not FenceAgentContract}
    assert set(FenceAgents(UnitRegistry()).names()) <= tested, tested


class TestTestAgent(FenceAgentContract):
    agent_name = "test"


class TestFenceAgentsProgram(FenceAgentContract):
    """The fence-agents protocol against the test's own ``fence_contract`` program."""

    agent_name = "fence-agents"

    @pytest.fixture
    def target(self, tmp_path: Path) -> FenceTarget:
        prog = tmp_path / "fence_contract"
        prog.write_text(f"#!{sys.executable}\n{FAKE_FENCE_PROGRAM}")
        prog.chmod(0o755)
        return FenceTarget("contract-host", "contract-host", address="192.0.2.7",
                           login="admin", port="3",
                           options={"agent": str(prog), "lanplus": "1",
                                    "statefile": str(tmp_path / "power"),
                                    "log": str(tmp_path / "stdin.log")})

    def test_the_program_reads_the_target_as_key_value_lines(self, agent, target):
        agent.run(target, FenceAction.OFF)
        seen = Path(target.options["log"]).read_text()
        for pair in ("('action', 'off')", "('ipaddr', '192.0.2.7')", "('login', 'admin')",
                     "('port', '3')", "('lanplus', '1')"):
            assert pair in seen, seen
        assert "agent" not in seen  # the agent option picks the program, it is no line

    def test_a_missing_program_is_a_clear_error(self, agent, tmp_path):
        from virtplane_engine.scheduling.fencing import FenceError

        target = FenceTarget("h9", "h9", options={"agent": str(tmp_path / "fence_none")})
        with pytest.raises(FenceError, match="h9.*not installed.*fence-agents"):
            agent.run(target, FenceAction.STATUS)


class TestSshSoftFence(FenceAgentContract):
    """Soft fencing only: power actions refused; no sshd lets this login in, so the soft
    fence is a failed result (ssh's own message), not an exception."""

    agent_name = "ssh"
    switches_power = False
    soft_fence_succeeds = False

    @pytest.fixture
    def target(self) -> FenceTarget:
        need(shutil.which("ssh") is not None, "the ssh client is not installed")
        return FenceTarget("contract-host", "contract-host", address="127.0.0.1",
                           login="vp-contract-nobody", options={"timeout": "20"})


def _host_up(root: str) -> None:
    caps = Path("/var/cache/libvirt/qemu/capabilities")
    seeded = Path(root, "cache", "qemu", "capabilities")
    if caps.is_dir() and not seeded.exists():
        shutil.copytree(caps, seeded)  # libvirtd starts in a second, without probing
    proc = subprocess.run(["bash", SCRIPT, root], capture_output=True, text=True,
                          timeout=120)
    need(proc.returncode == 0, f"namespace host {root} did not start: "
         f"{proc.stderr[-400:]} (libvirtd, tools/start-daemons.sh)")


@pytest.fixture(scope="module")
def ns_root() -> Iterator[str]:
    """This module's namespace host, stopped and removed at its end."""
    need(os.geteuid() == 0, "a namespace host needs root")
    need(shutil.which("libvirtd") is not None, "libvirtd is not installed")
    root = f"/srv/vp-kit-{os.getpid()}"
    _host_up(root)
    yield root
    from virtplane_engine.fence_agents import NamespaceHostAgent

    NamespaceHostAgent().run(FenceTarget(root, root, options={"root": root}), FenceAction.OFF)
    shutil.rmtree(root, ignore_errors=True)


class TestNamespaceHostAgent(FenceAgentContract):
    """Against a namespace host of this test's own, powered on again before each test."""

    agent_name = "namespace-host"
    soft_fence_succeeds = True

    @pytest.fixture
    def target(self, ns_root: str) -> FenceTarget:
        _host_up(ns_root)  # a test before may have switched it off
        return FenceTarget("kit-host", "kit-host",
                           options={"root": ns_root, "script": SCRIPT, "timeout": "120"})

    def test_soft_fence_restarts_libvirtd_only(self, agent, target):
        root = Path(target.options["root"])
        before = int((root / "run" / "libvirtd.pid").read_text())
        logd = int((root / "run" / "virtlogd.pid").read_text())
        assert agent.soft_fence(target).ok
        after = int((root / "run" / "libvirtd.pid").read_text())
        assert after != before
        os.kill(logd, 0)  # the namespace's virtlogd (its QEMUs' anchor) still runs
        uri = f"qemu+unix:///system?socket={root}/run/libvirt-sock"
        assert subprocess.run(["virsh", "-c", uri, "version"], capture_output=True,
                              timeout=60).returncode == 0
