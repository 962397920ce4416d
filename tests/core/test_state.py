"""The SQLite state store: transactions, errors, and a process killed mid-write."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from virtplane import model
from virtplane.errors import AlreadyExists, NotFound, StateError
from virtplane.state import StateStore


def test_add_find_update_remove(tmp_path):
    s = StateStore(tmp_path / "s.db")
    dc = model.DataCenter(name="dc1")
    s.add(dc)
    assert s.find(model.DataCenter, "dc1") == dc
    assert s.find(model.DataCenter, dc.id) == dc
    dc.description = "changed"
    s.update(dc)
    assert StateStore(tmp_path / "s.db").get(model.DataCenter, dc.id).description == "changed"
    with pytest.raises(AlreadyExists, match="a datacenter named 'dc1' already exists"):
        s.add(model.DataCenter(name="dc1"))
    with pytest.raises(NotFound, match=r"no datacenter named 'dc2' \(known: dc1\)"):
        s.find(model.DataCenter, "dc2")
    s.remove(model.DataCenter, dc.id)
    assert s.list(model.DataCenter) == []
    with pytest.raises(NotFound):
        s.remove(model.DataCenter, dc.id)


def test_failed_transaction_leaves_nothing(tmp_path):
    s = StateStore(tmp_path / "s.db")
    with pytest.raises(AlreadyExists):
        with s.transaction():
            s.add(model.DataCenter(name="a"))
            s.add(model.DataCenter(name="b"))
            s.add(model.DataCenter(name="a"))
    assert s.list(model.DataCenter) == []
    with pytest.raises(RuntimeError):
        with s.transaction():
            s.add(model.DataCenter(name="c"))
            raise RuntimeError("operation failed half-way")
    assert s.list(model.DataCenter) == []


def test_unreadable_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="bad.db is unreadable"):
        StateStore(bad)


WRITER = textwrap.dedent("""
    import sys
    from virtplane import model
    from virtplane.state import StateStore

    s = StateStore(sys.argv[1])
    batch = 0
    while True:
        with s.transaction():
            for j in range(25):
                s.add(model.DataCenter(name=f"b{batch}-{j}", description="x" * 2000))
        if batch == 2:
            print("writing", flush=True)
        batch += 1
""")


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.5])
def test_killed_mid_write_leaves_a_consistent_store(tmp_path, delay):
    db = tmp_path / "s.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    s = StateStore(db)
    assert s.check() == []
    per_batch = collections.Counter(dc.name.split("-")[0] for dc in s.list(model.DataCenter))
    assert len(per_batch) >= 3
    # every batch is complete: a transaction landed whole or not at all
    assert set(per_batch.values()) == {25}, per_batch
    # and the store is writable again
    s.add(model.DataCenter(name="after-kill"))
