"""A third-party plugin, for real: built as a wheel, pip-installed into a fresh venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "virtplane-hello"
version = "0.3.0"
dependencies = ["virtplane>=0.1,<1"]

[project.entry-points."virtplane.hooks"]
hello = "virtplane_hello"
"""

MODULE = """
import sys
from virtplane import hookimpl

VIRTPLANE_PLUGIN_API = ">=1.0,<2"

@hookimpl
def before_vdsm_start(manager):
    print("hello from a third-party plugin", file=sys.stderr)
"""


def _run(cmd, env, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_wheel_is_discovered_runs_can_be_disabled_and_uninstalled(tmp_path, xdg):
    src = tmp_path / "virtplane-hello"
    (src / "virtplane_hello").mkdir(parents=True)
    (src / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (src / "virtplane_hello" / "__init__.py").write_text(textwrap.dedent(MODULE))
    env = dict(os.environ)
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(src)], env)
    wheel = next(wheels.glob("virtplane_hello-0.3.0-*.whl"))

    # a fresh virtual environment that has virtplane (the core, built from this checkout)
    home = tmp_path / "venv"
    venv.create(home, with_pip=True)
    py = str(home / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", str(ROOT / "core")], env)
    _run([py, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], env)
    vp = str(home / "bin" / "virtplane")

    proc = _run([vp, "plugins", "list", "--json"], env)
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["hello"]["status"] == "loaded"
    assert rows["hello"]["distribution"] == "virtplane-hello"
    assert rows["hello"]["version"] == "0.3.0"
    assert rows["hello"]["hooks"] == ["before_vdsm_start"]
    assert "hello from a third-party plugin" in proc.stderr  # its hook ran

    cfg = xdg["XDG_CONFIG_HOME"] / "virtplane"
    cfg.mkdir()
    (cfg / "virtplane.toml").write_text('[plugins]\ndisabled = ["hello"]\n')
    proc = _run([vp, "plugins", "list", "--json"], env)
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["hello"]["status"] == "disabled"
    assert "hello from a third-party plugin" not in proc.stderr
    (cfg / "virtplane.toml").unlink()

    _run([py, "-m", "pip", "uninstall", "-q", "-y", "virtplane-hello"], env)
    proc = _run([vp, "plugins", "list", "--json"], env)
    assert "hello" not in {r["name"] for r in json.loads(proc.stdout)}
    assert "hello from a third-party plugin" not in proc.stderr
