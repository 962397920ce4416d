"""docs/api.md stays true: its example runs, its tables match the code."""

from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import pytest

import virtplane.services
from virtplane.hookspecs import VirtplaneDeprecationWarning
from virtplane.manager import DEPRECATED_METHODS

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "docs" / "api.md"

#: 0.1 names that are not plain delegations, so they are not in DEPRECATED_METHODS
EXTRA_ROWS = {"driver(kind, name)": "context.drivers.<kind>(name)", "osinfo": "arch.osinfo"}
#: services whose row names only what embedders use (their other members serve the
#: other services and are in the API reference)
SUMMARISED = {"Volumes"}


def _section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_the_example_runs_on_the_services_without_deprecated_calls(tmp_path, capsys):
    text = API.read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace("qemu:///system", "test:///default").replace(
        '"/srv/vp"', repr(str(tmp_path / "sd")))
    with warnings.catch_warnings():
        warnings.simplefilter("error", VirtplaneDeprecationWarning)
        exec(compile(code, str(API), "exec"), {})
    assert "'status': 'Up'" in capsys.readouterr().out


def test_the_flat_method_table_is_deprecated_methods():
    rows = re.findall(r"^\| `m\.([^`]+)` \| `m\.([^`]+)` \|$",
                      _section(API.read_text(), "Deprecated: the 0.1 flat methods"), re.M)
    documented = dict(rows)
    assert len(rows) == len(documented), "a 0.1 name is listed twice"
    expected = {old: f"{svc}.{meth}" for old, (svc, meth) in DEPRECATED_METHODS.items()}
    expected.update(EXTRA_ROWS)
    if documented != expected:
        table = "\n".join(f"| `m.{old}` | `m.{new}` |" for old, new in expected.items())
        pytest.fail("docs/api.md's table of deprecated methods differs from "
                    f"virtplane.manager.DEPRECATED_METHODS; it should read:\n{table}")
    # and every target exists on its service
    from virtplane.manager import Manager

    for old, (svc, meth) in DEPRECATED_METHODS.items():
        owner = inspect.getattr_static(Manager, svc).func.__annotations__["return"]
        cls = getattr(virtplane.services, owner.rsplit(".", 1)[-1])
        assert callable(getattr(cls, meth, None)), f"{old}: {svc}.{meth} does not exist"


def test_every_service_method_is_in_the_services_table():
    rows = {}
    for line in _section(API.read_text(), "Services").splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`"):
            rows[cells[1].strip("`")] = cells[2]
    missing = []
    for name in virtplane.services.__all__:
        cls = getattr(virtplane.services, name)
        if not inspect.isclass(cls) or name in ("Context", "Paths", "Op"):
            continue
        assert name in rows, f"service {name} has no row in docs/api.md's services table"
        for member in dir(cls):
            if member.startswith("_") or name in SUMMARISED:
                continue
            if not re.search(rf"`{member}\b", rows[name]):
                missing.append(f"{name}.{member}")
    assert not missing, f"not in docs/api.md's services table: {', '.join(missing)}"
