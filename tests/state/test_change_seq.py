"""StateStore.changes: the rows of one kind that changed since a reader's last read."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from tests.state.test_migrations import _alembic_sqlite, _pg_at
from virtplane import model
from virtplane.errors import InvalidInput
from virtplane.state import SCHEMA_VERSION, StateStore, migrate


def _vm(name: str) -> model.Vm:
    return model.Vm(spec=model.VmSpec(name=name), cluster_id="c1")


def test_another_writers_add_update_and_delete_are_seen(open_store):
    reader, writer = open_store(), open_store()
    a, b = _vm("a"), _vm("b")
    writer.add(a)
    writer.add(b)
    first = reader.changes(model.Vm)
    assert first.complete and first.versions == {a.id: 1, b.id: 1}
    quiet = reader.changes(model.Vm, first.cursor)
    assert not quiet.complete
    assert a.id not in quiet.versions or quiet.versions[a.id] == 1

    writer.update(a)
    c = _vm("c")
    writer.add(c)
    moved = reader.changes(model.Vm, quiet.cursor)
    assert not moved.complete
    assert moved.versions[a.id] == 2 and moved.versions[c.id] == 1
    assert b.id not in moved.versions or moved.versions[b.id] == 1

    writer.remove(model.Vm, b.id)
    b2 = _vm("b")
    writer.add(b2)  # a delete and an insert: the row count does not move
    after = reader.changes(model.Vm, moved.cursor)
    assert after.complete
    assert set(after.versions) == {a.id, c.id, b2.id}
    assert b.id not in after.versions


def test_a_cursor_of_another_kind_is_refused(store):
    cursor = store.changes(model.Host).cursor
    with pytest.raises(InvalidInput, match="cursor of 'host'.*changes of 'vm'"):
        store.changes(model.Vm, cursor)


def test_other_kinds_do_not_count_as_deletes(store):
    store.add(_vm("a"))
    first = store.changes(model.Vm)
    dc = model.DataCenter(name="dc")
    store.add(dc)
    store.remove(model.DataCenter, dc.id)
    assert not store.changes(model.Vm, first.cursor).complete


def _v7_file(path) -> str:
    _alembic_sqlite(path, "0007")
    vm = _vm("old")
    with sqlite3.connect(path) as raw:
        raw.execute(
            "INSERT INTO objects(id, kind, name, data, updated, version) "
            "VALUES (?, 'vm', 'old', ?, 0, 3)",
            (vm.id, model.to_json(vm)),
        )
    return vm.id


def test_a_v7_sqlite_file_is_migrated_and_its_rows_kept(tmp_path):
    vm_id = _v7_file(tmp_path / "s.db")
    s = StateStore(tmp_path / "s.db")
    assert s.schema_version() == SCHEMA_VERSION == 8
    first = s.changes(model.Vm)
    assert first.complete and first.versions == {vm_id: 3}
    new = _vm("new")
    s.add(new)
    assert s.changes(model.Vm, first.cursor).versions == {new.id: 1}
    s.close()


def test_alembic_brings_a_v7_file_to_the_cores_schema(tmp_path):
    vm_id = _v7_file(tmp_path / "a.db")
    _alembic_sqlite(tmp_path / "a.db")
    s = StateStore(tmp_path / "a.db")
    first = s.changes(model.Vm)
    s.update(s.get(model.Vm, vm_id))
    assert s.changes(model.Vm, first.cursor).versions == {vm_id: 4}
    s.close()


def test_a_v7_postgresql_store_is_migrated(pg_url):
    _pg_at(pg_url, "0007")
    vm = _vm("old")
    import sqlalchemy as sa

    from virtplane_state_postgresql.store import make_engine

    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO objects(id, kind, name, data, updated, version) "
                "VALUES (:id, 'vm', 'old', :data, 0, 2)"
            ),
            {"id": vm.id, "data": model.to_json(vm)},
        )
    engine.dispose()
    assert migrate(pg_url) == (7, 8)
    s = StateStore(pg_url)
    first = s.changes(model.Vm)
    assert first.versions == {vm.id: 2}
    s.remove(model.Vm, vm.id)
    assert s.changes(model.Vm, first.cursor).complete
    s.dispose()


def test_a_late_commit_on_postgresql_is_not_missed(pg_url):
    """The first writer's transaction began (and wrote) before the second's, and
    commits after it; a read between the two commits must not make the next read skip
    the first's row."""
    reader, early, late = StateStore(pg_url), StateStore(pg_url), StateStore(pg_url)
    try:
        cursor = reader.changes(model.Vm).cursor
        slow = _vm("slow")
        wrote, go = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def first_writer() -> None:
            try:
                with early.transaction():
                    early.add(slow)
                    wrote.set()
                    assert go.wait(30)
            except BaseException as exc:  # pragma: no cover - shown by the assert below
                errors.append(exc)

        t = threading.Thread(target=first_writer)
        t.start()
        assert wrote.wait(30)
        quick = _vm("quick")
        late.add(quick)  # a later transaction, committed first
        between = reader.changes(model.Vm, cursor)
        assert between.versions == {quick.id: 1}
        go.set()
        t.join(30)
        assert not errors, errors
        after = reader.changes(model.Vm, between.cursor)
        assert after.versions.get(slow.id) == 1
    finally:
        for s in (reader, early, late):
            s.dispose()
