"""``DataCenters.update`` (rename, description, compatibility version, checked and
written in one step) and ``virtplane dc set`` on it.

Before: the core had no call to change a data center (``PUT /datacenters/{id}`` checked
with ``check_new_version`` and then wrote through the store itself), and the command
line could not change one at all. The REST side: tests/api/test_dc_version_raise_only.py
and tests/api/test_limits_and_versions.py, unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from virtplane.errors import AlreadyExists, InvalidInput, InvalidState

LOWERED = ("data center 'd6' cannot move to compatibility version 4.5: it is at 4.6, and "
           "a data center's version can only be raised, never lowered; allowed: 4.6, 4.7, "
           "4.8")


def test_update_renames_describes_and_raises(manager_factory: Any) -> None:
    m = manager_factory()
    dc = m.datacenters.add("d6", compat_version="4.6")
    after = m.datacenters.update("d6", new_name="d7", compat="4.7", description="seven")
    assert (after.id, after.name, after.compat_version, after.description) == (
        dc.id, "d7", "4.7", "seven")
    stored = m.datacenters.get(dc.id)
    assert (stored.name, stored.compat_version, stored.description) == ("d7", "4.7", "seven")
    # nothing given: nothing changes; the same version or name is no change either
    assert m.datacenters.update("d7").compat_version == "4.7"
    assert m.datacenters.update(dc.id, new_name="d7", compat="4.7").name == "d7"


def test_update_refuses_and_changes_nothing(manager_factory: Any) -> None:
    m = manager_factory()
    m.datacenters.add("d6", compat_version="4.6")
    m.datacenters.add("other")
    with pytest.raises(InvalidState) as caught:
        m.datacenters.update("d6", new_name="renamed", compat="4.5")
    assert str(caught.value) == LOWERED
    m.clusters.add("c7", "d6", compat_version="4.7")
    with pytest.raises(InvalidState, match="its cluster 'c7' is at 4.7"):
        m.datacenters.update("d6", compat="4.8", description="x")
    with pytest.raises(InvalidInput, match=r"'9\.9' is not supported; supported: 4\.2"):
        m.datacenters.update("d6", compat="9.9")
    with pytest.raises(AlreadyExists):
        m.datacenters.update("d6", new_name="other", compat="4.7")
    with pytest.raises(InvalidInput):
        m.datacenters.update("d6", new_name="no/slash")
    after = m.datacenters.get("d6")
    assert (after.name, after.compat_version, after.description) == ("d6", "4.6", "")


def test_dc_set_on_the_command_line(cli: Any, manager_factory: Any, tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    rc, _out, err = cli("--state", state, "dc", "add", "d6", "--compat", "4.6")
    assert rc == 0, err
    rc, out, err = cli("--state", state, "dc", "set", "d6", "--compat", "4.5")
    assert (rc, out, err.strip()) == (1, "", f"virtplane: error: {LOWERED}")
    rc, out, err = cli("--state", state, "dc", "set", "d6", "--name", "d7", "--compat", "4.7")
    assert rc == 0, err
    assert out.startswith("data center d7 ") and out.rstrip().endswith("(compatibility 4.7)")
    dc = manager_factory(state_path=state).datacenters.get("d7")
    assert dc.compat_version == "4.7"
    rc, out, err = cli("--state", state, "dc", "set", "d7")
    assert rc == 1 and "nothing to change" in err and "Traceback" not in err


def test_dc_set_help_names_its_options(cli: Any) -> None:
    rc, out, _err = cli("dc", "set", "--help")
    assert rc == 0 and "--compat MAJOR.MINOR" in out and "--name NEW" in out
