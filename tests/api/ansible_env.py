"""The ``ansible`` 9.x package (which bundles the ``ovirt.ovirt`` collection) in a
cached venv of its own, for tests/api/test_ansible.py.

Why a venv of its own: the package is about 500 MB (439 MB of it collections) and
brings jinja2, cryptography, PyYAML and resolvelib; installing it into the project's
venv would put all of that on every tool's path for one test. The controller runs
from this venv; the collection's modules run under the project's Python (the test
sets ``ansible_python_interpreter``), which has ``ovirtsdk4`` from
requirements-dev.txt. Built once (about 70 s with a warm pip cache), then reused
while ``ansible/requirements.txt`` is unchanged.

``tools/dev-install.sh --dev`` builds it (``python tests/api/ansible_env.py``); the
test builds it on first use when it is missing. Where: ``$VIRTPLANE_ANSIBLE_VENV``,
else ``$XDG_CACHE_HOME/virtplane/ansible-9`` (``~/.cache/virtplane/ansible-9``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = Path(__file__).parent / "ansible" / "requirements.txt"
#: written into the venv after a complete install: the requirements' hash
MARKER = "virtplane-requirements.sha256"


class AnsibleUnavailable(Exception):
    """The venv cannot be built (no network, no pip, a failed install)."""


def default_venv() -> Path:
    given = os.environ.get("VIRTPLANE_ANSIBLE_VENV")
    if given:
        return Path(given)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "virtplane" / "ansible-9"


#: read when this module is imported (before tests swap XDG_CACHE_HOME per test)
DEFAULT_VENV = default_venv()


def _wanted() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def _ready(venv: Path) -> bool:
    marker = venv / MARKER
    return (venv / "bin" / "ansible-playbook").exists() and marker.exists() and \
        marker.read_text().strip() == _wanted()


def ensure(venv: Path = DEFAULT_VENV, timeout: float = 1200.0) -> Path:
    """The venv's ``ansible-playbook``, building the venv first when needed (under a
    lock, so parallel test sessions build it once)."""
    if _ready(venv):
        return venv / "bin" / "ansible-playbook"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _ready(venv):
            _build(venv, timeout)
    return venv / "bin" / "ansible-playbook"


def _run(argv: list[str], timeout: float) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AnsibleUnavailable(f"{' '.join(argv[:4])} ...: {exc}") from None
    if done.returncode != 0:
        raise AnsibleUnavailable(f"{' '.join(argv[:4])} ... exited {done.returncode}: "
                                 f"{done.stderr[-2000:]}")


def _build(venv: Path, timeout: float) -> None:
    (venv / MARKER).unlink(missing_ok=True)
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], timeout)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
          "--disable-pip-version-check", "-r", str(REQUIREMENTS)], timeout)
    check = venv / "lib"
    if not any(check.glob("python3*/site-packages/ansible_collections/ovirt/ovirt/"
                          "plugins/modules/ovirt_vm.py")):
        raise AnsibleUnavailable(f"the ansible package installed in {venv} has no "
                                 "ovirt.ovirt collection")
    (venv / MARKER).write_text(_wanted() + "\n")


def main() -> int:
    try:
        playbook = ensure()
    except AnsibleUnavailable as exc:
        print(f"ansible_env: {exc}", file=sys.stderr)
        return 1
    print(f"ansible_env: {playbook.parent.parent} ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
