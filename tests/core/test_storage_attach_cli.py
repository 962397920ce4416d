"""``virtplane storage attach``: a domain found on its storage, attached from the command
line to a data center.

Before: ``--dc`` was registered on ``storage options`` instead of ``storage attach``, so
every ``storage attach`` ended in ``AttributeError: 'Namespace' object has no attribute
'dc'`` (a traceback), and ``storage options TYPE --dc X`` took an option it ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _detached_domain(cli: Any, state: str, folder: Path) -> None:
    """A localfs domain with its metadata on disk and no record in ``state``."""
    other = str(folder.parent / "other.db")
    for args in (("dc", "add", "dc0"),
                 ("storage", "add", "sd", "--type", "localfs", "--path", str(folder),
                  "--dc", "dc0")):
        rc, _out, err = cli("--state", other, *args)
        assert rc == 0, err
    rc, _out, err = cli("--state", state, "dc", "add", "dc")
    assert rc == 0, err


def test_storage_attach_attaches_to_the_named_data_center(cli: Any, manager_factory: Any,
                                                          tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    folder = tmp_path / "sd"
    _detached_domain(cli, state, folder)
    rc, out, err = cli("--state", state, "storage", "attach", "sd", "--type", "localfs",
                       "--path", str(folder), "--dc", "dc")
    assert rc == 0, err
    assert "Traceback" not in err
    assert out.startswith("storage domain sd ") and "attached: 0 image(s) found" in out
    m = manager_factory(state_path=state)
    (dom,) = m.storage.list()
    assert dom.name == "sd"
    assert dom.datacenter_id == m.datacenters.get("dc").id


def test_storage_attach_help_names_dc_and_options_does_not(cli: Any) -> None:
    rc, out, _err = cli("storage", "attach", "--help")
    assert rc == 0 and "--dc DC" in out
    rc, out, _err = cli("storage", "options", "--help")
    assert rc == 0 and "--dc" not in out
