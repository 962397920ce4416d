"""``virtplane plugin new`` for each kind: the project builds a wheel, installs into a
fresh virtual environment (with the core's wheel, nothing editable) and its tests,
the kit's contract included, pass there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(*cmd: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-4000:]}\n" \
                                 f"{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of the core, of the x86_64 architecture (hypervisor hosts need one) and of
    every dependency, so the fresh environments install with --no-index."""
    wh = tmp_path_factory.mktemp("wheelhouse")
    for project in ("core", "arch_x86_64"):
        run(sys.executable, "-m", "build", "--wheel", "--outdir", wh, ROOT / project)
    core = next(wh.glob("virtplane-*.whl"))
    run(sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
        "-w", wh, "--find-links", wh, f"{core}[testing]")
    return wh


@pytest.mark.parametrize("kind", ["architecture", "storage", "hypervisor", "hooks"])
def test_scaffold_builds_installs_and_passes(kind, tmp_path, wheelhouse):
    name = f"demo{kind[:4]}"
    out = run(sys.executable, "-m", "virtplane.cli", "plugin", "new", name, "--kind", kind,
              "--dir", tmp_path)
    project = tmp_path / f"virtplane-{name}"
    assert str(project) in out
    run(sys.executable, "-m", "build", "--wheel", "--outdir", tmp_path / "dist", project)
    wheel = next((tmp_path / "dist").glob(f"virtplane_{name}-0.1.0-*.whl"))
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    py = venv / "bin" / "python"
    extra = ["virtplane-arch-x86_64"] if kind == "hypervisor" else []
    run(py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index",
        "--find-links", wheelhouse, f"{wheel}[test]", *extra)
    # nothing of the development tree leaks in: the core is the wheel's
    where = run(py, "-c", f"import virtplane, virtplane_{name}; print(virtplane.__file__)")
    assert str(ROOT) not in where and str(venv) in where
    out = run(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
    assert " passed" in out and "failed" not in out and "error" not in out, out
    # the administrator's view of the installed wheel
    doctor = run(venv / "bin" / "virtplane", "plugins", "doctor")
    assert f"[ok  ] {name} (virtplane-{name} 0.1.0)" in doctor
