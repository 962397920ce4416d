"""The documentation's getting-started commands work as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

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
