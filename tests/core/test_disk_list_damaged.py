"""``disk list`` with one damaged row in the store: every disk is still listed.

Before: a VM row that no longer parses (hand-edited, written by a broken writer) made
``m.disks.list()`` (and ``virtplane disk list``) fail as a whole when any image named
that VM, since describing an image asks who uses it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import small_plane
from virtplane import model


def test_a_damaged_vm_row_does_not_hide_the_disks(manager_factory: Callable[..., Any],
                                                   tmp_path: Path, cli: Any) -> None:
    state = tmp_path / "s.db"
    m = small_plane(manager_factory(state_path=str(state)), tmp_path / "sd")
    dom = m.storage.get("sd")
    m.disks.create("lone", "sd", 1 << 20)
    vm = m.vms.create(model.VmSpec(name="v1", memory_mib=256, disks=[
        model.DiskSpec(name="d", size_bytes=1 << 20, domain_id=dom.id)]), "cl")
    m.close()
    with sqlite3.connect(state) as db:
        db.execute("UPDATE objects SET data = '{\"broken\": ' WHERE id = ?", (vm.id,))
    m = manager_factory(state_path=str(state))
    disks = {d["name"]: d for d in m.disks.list()}
    assert set(disks) >= {"lone"} and len(disks) == 2
    assert "problem" not in disks["lone"] and disks["lone"]["domain"] == "sd"
    (damaged,) = [d for d in disks.values() if "problem" in d]
    assert damaged["used_by"] == ["?"] and vm.id in damaged["problem"]
    assert "virtplane state check" in damaged["problem"]
    rc, out, err = cli("--state", str(state), "disk", "list")
    assert rc == 0 and "Traceback" not in err
    assert "lone" in out and "?" in out
