"""The engine's systemd unit passes ``systemd-analyze verify`` as the project installs it:
tools/dev-install.sh links /usr/local/bin/virtplane (the unit's ExecStart) to the venv's
script. Where systemd-analyze exists the check runs; in CI a missing link fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "plugins" / "engine" / "systemd" / "virtplane-engine.service"
EXEC = "/usr/local/bin/virtplane"


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (no systemd on this machine)")
    return tool


def _verify(tool: str, unit: Path) -> None:
    proc = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)
    complaints = [line for line in proc.stderr.splitlines() if unit.name in line]
    assert proc.returncode == 0 and not complaints, proc.stderr


def _exec_start(unit: Path) -> str:
    line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
    return line.removeprefix("ExecStart=")


def test_the_shipped_unit_verifies_where_dev_install_linked_virtplane():
    tool = _analyze()
    assert _exec_start(UNIT) == f"{EXEC} engine run"
    need(os.access(EXEC, os.X_OK), f"{EXEC} is missing: tools/dev-install.sh links it to "
                                   "the venv's virtplane when run as root")
    _verify(tool, UNIT)
    version = subprocess.run([EXEC, "--version"], capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("virtplane"), version


def test_the_unit_with_this_venvs_virtplane_verifies(tmp_path):
    """The same file with ExecStart pointing at the running venv's script (what the link
    resolves to, or what ``systemctl edit`` would set): no other complaint."""
    tool = _analyze()
    script = Path(sys.executable).parent / "virtplane"
    assert os.access(script, os.X_OK)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(f"ExecStart={EXEC} ", f"ExecStart={script} "))
    assert _exec_start(unit).startswith(str(script))
    _verify(tool, unit)

