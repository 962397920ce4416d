"""``virtplane dc add NAME --compat MAJOR.MINOR``: the data center's compatibility version
from the command line, checked by the service as the REST API's ``<version>`` is.

Before: ``dc add`` had no way to set it (every data center was 4.8 unless made through
the REST or Python API), and ``--compat`` was a usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def test_dc_add_at_a_compatibility_version(cli: Any, manager_factory: Any,
                                           tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    rc, out, err = cli("--state", state, "dc", "add", "old", "--compat", "4.5")
    assert rc == 0, err
    assert out.startswith("data center old ") and out.rstrip().endswith("(compatibility 4.5)")
    rc, out, err = cli("--state", state, "dc", "add", "new")
    assert rc == 0 and out.rstrip().endswith("(compatibility 4.8)"), err
    m = manager_factory(state_path=state)
    assert {d.name: d.compat_version for d in m.datacenters.list()} == {"old": "4.5",
                                                                        "new": "4.8"}


@pytest.mark.parametrize("version", ["9.9", "4.1", "abc", "", "4", "4.5.1"])
def test_dc_add_refuses_an_unknown_version(cli: Any, manager_factory: Any, tmp_path: Path,
                                           version: str) -> None:
    state = str(tmp_path / "s.db")
    rc, out, err = cli("--state", state, "dc", "add", "bad", "--compat", version)
    assert (rc, out) == (1, "")
    assert err.strip() == (f"virtplane: error: data center compatibility version {version!r} "
                           "is not supported; supported: 4.2, 4.3, 4.4, 4.5, 4.6, 4.7, 4.8")
    assert "Traceback" not in err
    assert manager_factory(state_path=state).datacenters.list() == []


def test_dc_add_help_names_the_option(cli: Any) -> None:
    rc, out, _err = cli("dc", "add", "--help")
    assert rc == 0 and "--compat MAJOR.MINOR" in out
