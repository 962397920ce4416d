"""Every operation that creates, deletes, merges or resizes survives a kill at any step.

For each operation: run it once to learn how many kill points it reaches (the
calls of the storage driver and the commits between them, :mod:`virtplane.faults`),
then, for each kill point, start again from the same state, run it in a child
process that dies there (``os._exit(137)``, which skips every ``finally`` as
SIGKILL would), run ``storage repair`` and check that ``storage verify`` is clean
and nothing in the store points at something gone (:func:`crash_ops.consistency`).

Before the intents: a kill between the store commit and the file deletion of
``disk remove``/``vm remove`` left an orphan repair could not remove, a kill in
``disk merge`` left the store pointing at a deleted volume, and so on.

The domain lives on tmpfs (``/dev/shm``) to keep the run short.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security import crash_ops
from virtplane import Manager, config

HELPER = Path(crash_ops.__file__)


@pytest.fixture
def golden(tmp_path) -> Iterator[tuple[Path, Path]]:
    """``(golden copy, working folder)``: the base state, made once per test, and where
    each run works (the domain's path is recorded, so runs always use the same one)."""
    shm = Path("/dev/shm")
    root = (shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path) / (
        f"vp-crash-{uuid.uuid4().hex[:8]}")
    work, gold = root / "work", root / "golden"
    work.mkdir(parents=True)
    m = Manager(config.load(), state_path=work / "state.db")
    try:
        crash_ops.base(m, work)
        assert m.storage.verify("sd") == []
    finally:
        m.close()
    shutil.copytree(work, gold, symlinks=True)
    yield gold, work
    shutil.rmtree(root, ignore_errors=True)


def _restore(gold: Path, work: Path) -> None:
    shutil.rmtree(work)
    shutil.copytree(gold, work, symlinks=True)


def _run(work: Path, op: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, str(HELPER), str(work / "state.db"), op],
                          env=full, capture_output=True, text=True, timeout=120, check=False)


def _after_repair(work: Path) -> list[str]:
    m = Manager(config.load(), state_path=work / "state.db")
    try:
        m.storage.repair("sd")
        return m.storage.verify("sd") + crash_ops.consistency(m)
    finally:
        m.close()


@pytest.mark.parametrize("op", sorted(crash_ops.OPS))
def test_a_kill_at_any_step_is_repaired(golden, op, tmp_path):
    gold, work = golden
    trace = tmp_path / "trace"
    done = _run(work, op, VIRTPLANE_FAULT_TRACE=str(trace))
    assert done.returncode == 0, done.stderr
    points = trace.read_text().splitlines()
    assert len(points) >= 2, points  # the operation reaches the storage at all
    assert _after_repair(work) == []
    failures = []
    for n, line in enumerate(points, start=1):
        _restore(gold, work)
        killed = _run(work, op, VIRTPLANE_FAULT_AT=str(n))
        if killed.returncode != 137:
            failures.append(f"kill point {line}: exited {killed.returncode}: "
                            f"{killed.stderr[-500:]}")
            continue
        left = _after_repair(work)
        if left:
            failures.append(f"killed at {line}: {left}")
    assert failures == [], "\n".join(failures)


def test_kill_points_cost_nothing_when_unset():
    from virtplane import faults

    assert not faults.ENABLED
    driver = object()
    assert faults.wrap(driver) is driver


def test_an_intent_planted_in_storage_metadata_steers_nothing(manager_factory, tmp_path):
    """Intents are the engine's own journal: never written to the storage, never read
    from it (a writer of the export could otherwise make `storage repair` delete)."""
    from virtplane import model
    from virtplane_storage_file.filedomain import read_json, write_json

    m = manager_factory()
    m.datacenters.add("dc")
    m.storage.add("sd", "localfs", "dc", {"path": str(tmp_path / "data")})
    image = m.disks.create("d", "sd", 1 << 20)
    meta = tmp_path / "data" / image.domain_id / "images" / image.id / "image.json"
    assert read_json(meta)["intent"] is None
    data = read_json(meta)
    data["intent"] = {"op": "remove"}
    write_json(meta, data)
    other = manager_factory(state_path=tmp_path / "other.db")
    other.datacenters.add("dc2")
    other.storage.attach("sd", "localfs", {"path": str(tmp_path / "data")}, "dc2")
    assert other.store.get(model.Image, image.id).intent is None
    other.storage.repair("sd")
    assert other.store.has(model.Image, image.id) and meta.exists()
