"""``virtplane plugin new``: a plugin project of each kind, ready to build and test.

The templates (``*.tmpl`` next to this module) are filled with
:class:`string.Template`; each project has a pyproject with its entry point and
the plugin-API range, a small working driver, tests that run the conformance
kit (:mod:`virtplane.testing`) and a README.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

from virtplane._version import PLUGIN_API_VERSION, __version__
from virtplane.errors import AlreadyExists, InvalidInput
from virtplane.plugins import KIND_GROUPS

HERE = Path(__file__).parent
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")
RESERVED = {"core", "virtplane", "testing"}

#: kind -> (class in the package, contract class of the kit, extra README section)
KINDS: dict[str, tuple[str, str, str]] = {
    "architecture": ("Architecture", "ArchitectureContract",
                     "Then make a cluster of it: `virtplane cluster add c1 --dc dc1 "
                     "--arch $name`."),
    "storage": ("Storage", "StorageContract",
                "Then add a domain: `virtplane storage add sd1 --type $name --dc dc1 "
                "--path /srv/$name`."),
    "hypervisor": ("Hypervisor", "HypervisorContract",
                   "Then add a host: `virtplane host add h1 $name:///var/lib/$name/host.json "
                   "--cluster c1 --driver $name`."),
    "hooks": ("Hooks", "HookPluginContract",
              "Settings go in the administrator's `virtplane.toml`:\n\n"
              "```toml\n[plugin.$name]\nmax_vcpus = 16\n```"),
}

CONTRACTS = {
    "architecture": 'class TestContract(ArchitectureContract):\n    plugin = "$name"\n',
    "storage": ('class TestContract(StorageContract):\n    plugin = "$name"\n\n'
                '    @pytest.fixture\n    def storage_connection(self, tmp_path):\n'
                '        return {"path": str(tmp_path / "domains")}\n'),
    "hypervisor": ('class TestContract(HypervisorContract):\n    plugin = "$name"\n\n'
                   '    @pytest.fixture\n    def host_uri(self, tmp_path):\n'
                   '        return f"$name://{tmp_path}/host.json"\n'),
    "hooks": 'class TestContract(HookPluginContract):\n    plugin = "$name"\n',
}


def _files(kind: str) -> dict[str, str]:
    """Project path -> template file (relative to this folder)."""
    files = {
        "pyproject.toml": "common/pyproject.toml.tmpl",
        "README.md": "common/README.md.tmpl",
        "src/$package/__init__.py": f"{kind}/__init__.py.tmpl",
        "src/$package/py.typed": "",
        "tests/test_contract.py": "common/test_contract.py.tmpl",
        "tests/test_plugin.py": f"{kind}/test_plugin.py.tmpl",
    }
    if kind == "architecture":
        files["src/$package/$name.properties"] = "architecture/arch.properties.tmpl"
    return files


def new_plugin(name: str, kind: str, parent: str | Path = ".") -> Path:
    """Write a plugin project for ``name`` of ``kind`` into ``parent/virtplane-<name>``."""
    if kind not in KINDS:
        raise InvalidInput(f"plugin kind {kind!r} is not known; allowed: {', '.join(KINDS)}")
    if not NAME_RE.match(name) or name in RESERVED:
        raise InvalidInput(
            f"plugin name {name!r} is not allowed: use 2-40 lower-case letters, digits, '-' "
            f"or '_', starting with a letter, and none of {', '.join(sorted(RESERVED))}")
    ident = name.replace("-", "_")
    obj, contract, usage = KINDS[kind]
    major = int(PLUGIN_API_VERSION.split(".")[0])
    values = {
        "name": name, "ident": ident, "kind": kind, "package": f"virtplane_{ident}",
        "dist": f"virtplane-{name}", "group": KIND_GROUPS[kind], "entry_object": obj,
        "api_version": PLUGIN_API_VERSION, "api_range": f">={PLUGIN_API_VERSION},<{major + 1}",
        "core_version": __version__, "description": f"virtplane {kind} plugin {name}",
        "extra_deps": ', "attrs>=23.1"' if kind == "hooks" else "",
        "imports": ("import pytest\n\n" if kind in ("storage", "hypervisor") else "")
        + f"from virtplane.testing import {contract}",
    }
    values["contract"] = string.Template(CONTRACTS[kind]).substitute(values)
    values["usage"] = string.Template(usage).substitute(values)
    target = Path(parent) / values["dist"]
    if target.exists() and any(target.iterdir()):
        raise AlreadyExists(f"{target} exists and is not empty; choose another --dir")
    for rel, template in _files(kind).items():
        path = target / string.Template(rel).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = (HERE / template).read_text() if template else ""
        path.write_text(string.Template(text).substitute(values))
    return target
