"""What belongs to what: the ``owner_id`` column and its index (schema 7), on SQLite and
PostgreSQL; :meth:`StateStore.owned` and :meth:`StateStore.mentioning`; the migration
that fills the column from the JSON of existing rows."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

import pytest

from tests.state.test_migrations import _alembic_sqlite, _pg_at
from virtplane import model
from virtplane.errors import StateError
from virtplane.state import SCHEMA_VERSION, StateStore
from virtplane.state import _sqlite as sqlite_backend


def _image(owner: str, alias: str = "", description: str = "") -> model.Image:
    return model.Image(domain_id="sd", owner=owner, alias=alias, description=description)


def _snap(vm_id: str, name: str) -> model.Snapshot:
    return model.Snapshot(name=name, vm_id=vm_id, created=1.0)


def _column(store: StateStore) -> dict[str, Any]:
    return dict((r[0], r[1]) for r in store._rows("SELECT id, owner_id FROM objects"))


# ------------------------------------------------------------------------- contract


def test_owned_lists_a_vms_images_and_snapshots_and_nothing_else(store):
    vm, other, tpl = (str(uuid.uuid4()) for _ in range(3))
    mine = [_image(f"vm:{vm}", alias=f"m{i}") for i in range(3)]
    theirs = _image(f"vm:{other}", alias="theirs")
    base = _image(f"template:{tpl}", alias="base")
    standalone = _image("", alias="floating")
    unknown = _image(model.TEMPLATE_OWNER_UNKNOWN, alias="old-base")
    snaps = [_snap(vm, "s1"), _snap(vm, "s0"), _snap(other, "s1")]
    with store.transaction():
        for obj in (*mine, theirs, base, standalone, unknown, *snaps):
            store.add(obj)
        store.add(model.DataCenter(name="dc"))
    assert [i.alias for i in store.owned(model.Image, vm)] == ["m0", "m1", "m2"]
    assert store.owned(model.Image, vm)[0].revision == 1
    assert store.owned(model.Image, tpl) == [base]
    assert store.owned(model.Snapshot, vm) == [snaps[1], snaps[0]]  # by name
    assert store.owned(model.Snapshot, other) == [snaps[2]]
    assert store.owned(model.Image, str(uuid.uuid4())) == []
    column = _column(store)
    assert column[standalone.id] is None and column[unknown.id] is None
    assert column[snaps[0].id] == vm and column[base.id] == tpl
    assert store.check() == []


def test_the_column_follows_the_owner_and_a_same_owner_update_stays_one_statement(
        store, open_store):
    vm, other = str(uuid.uuid4()), str(uuid.uuid4())
    image = _image(f"vm:{vm}", alias="d")
    store.add(image)
    statements: list[str] = []
    real = store._rows

    def spy(sql: str, params: Any = None) -> Any:
        statements.append(sql)
        return real(sql, params)

    store._rows = spy  # type: ignore[method-assign]
    image.description = "changed, same owner"
    store.update(image)
    assert len(statements) == 1 and "owner_id=:owner_id" in statements[0]
    assert "SET data=:data" in statements[0]  # the indexed columns are left alone
    image.owner = ""  # handed over: a standalone disk now
    store.update(image)
    del store._rows
    assert store.owned(model.Image, vm) == []
    assert _column(store)[image.id] is None
    image.owner = f"vm:{other}"
    store.update(image)
    assert store.owned(model.Image, other) == [image]
    stale = store.get(model.Image, image.id)
    image.owner = f"vm:{vm}"
    store.update(image)
    stale.owner = ""
    open_store(strict=False).update(stale)  # a stale copy written anyway takes its owner
    assert store.owned(model.Image, vm) == [] and store.check() == []


def test_owned_refuses_what_has_no_owner(store):
    with pytest.raises(TypeError, match="Vm objects have no owner in the store; only Image "
                                        "and Snapshot objects do"):
        store.owned(model.Vm, "x")
    with pytest.raises(ValueError, match=r"owned\(Snapshot, \.\.\.\): the owner id must be a "
                                         "non-empty string, not ''"):
        store.owned(model.Snapshot, "")


def test_check_reports_an_owner_column_written_around_the_store(store):
    vm = str(uuid.uuid4())
    snap = _snap(vm, "s")
    store.add(snap)
    with store.transaction():
        store._rows("UPDATE objects SET owner_id='elsewhere' WHERE id=:id RETURNING id",
                    {"id": snap.id})
    assert store.check() == [
        f"snapshot {snap.id}: its owner_id column is 'elsewhere', its data says {vm!r} "
        "(written around the store; listing by owner misses or wrongly includes it)"]


def test_mentioning_finds_the_vms_whose_json_names_a_value(store):
    images = ["i_1", "i%2", str(uuid.uuid4()), "plain"]
    vms = [model.Vm(spec=model.VmSpec(name=f"vm{i}", disks=[model.DiskSpec(
        name="d", image_id=image)]), cluster_id="c") for i, image in enumerate(images)]
    lookalike = model.Vm(spec=model.VmSpec(name="vm-x", disks=[model.DiskSpec(
        name="d", image_id="iX1")]), cluster_id="c")  # "_" is no wildcard
    with store.transaction():
        for vm in (*vms, lookalike):
            store.add(vm)
    assert [v.name for v in store.mentioning(model.Vm, ["i_1", "i%2"])] == ["vm0", "vm1"]
    assert store.mentioning(model.Vm, [images[2]]) == [vms[2]]
    assert store.mentioning(model.Vm, [images[2]], exclude_id=vms[2].id) == []
    assert store.mentioning(model.Vm, ["pla"]) == []  # a whole string, not a part of one
    assert store.mentioning(model.Vm, []) == []
    with pytest.raises(ValueError, match=r"mentioning\(Vm, \.\.\.\): every value must be a "
                                         "non-empty string, not ''"):
        store.mentioning(model.Vm, ["plain", ""])


# ---------------------------------------------------------------------- migration


def _v6_objects() -> tuple[list[Any], dict[str, str | None]]:
    """Rows as schema 6 held them (JSON without the column), and id -> the owner id the
    migration must give each; images stored by virtplane 0.1 have no ``owner`` key."""
    vm, tpl = str(uuid.uuid4()), str(uuid.uuid4())
    owned = _image(f"vm:{vm}", alias="new-style")
    base = _image(f"template:{tpl}", alias="tpl-base")
    standalone = _image("", alias="floating")
    old_vm = _image("", description=f"{vm}/disk0")  # 0.1: described <vm id>/<disk>
    old_tpl = _image("", description="template t/disk0")
    old_named = _image("", alias="named", description=f"{vm}/disk1")
    old_upper = _image("", description=f"{vm.upper()}/disk2")  # not a VM id as 0.1 wrote it
    snap = _snap(vm, "s")
    vm_obj = model.Vm(spec=model.VmSpec(name="vm"), cluster_id="c", id=vm)
    objects = [owned, base, standalone, old_vm, old_tpl, old_named, old_upper, snap, vm_obj,
               model.DataCenter(name="dc")]
    expected: dict[str, str | None] = {o.id: None for o in objects}
    expected.update({owned.id: vm, base.id: tpl, old_vm.id: vm, snap.id: vm})
    return objects, expected


def _v6_rows(objects: list[Any]) -> list[tuple[Any, ...]]:
    from virtplane.state._core import _cluster_of, _name_of, kind_of

    rows = []
    for obj in objects:
        data = json.loads(model.to_json(obj))
        if isinstance(obj, model.Image) and obj.description:
            del data["owner"]  # as virtplane 0.1 wrote images
        rows.append((obj.id, kind_of(type(obj)), _name_of(obj), json.dumps(data), 1.0, 2,
                     _cluster_of(obj)))
    return rows


def _migrated_right(s: StateStore, objects: list[Any], expected: dict[str, str | None]) -> None:
    assert s.schema_version() == SCHEMA_VERSION
    assert _column(s) == expected
    assert s.check() == []  # the column says what the store would have written
    vm = next(o for o in objects if isinstance(o, model.Vm))
    assert sorted(i.id for i in s.owned(model.Image, vm.id)) == sorted(
        k for k, v in expected.items() if v == vm.id and s.has(model.Image, k))
    assert [x.name for x in s.owned(model.Snapshot, vm.id)] == ["s"]
    # the old images' owner comes out of the model as it did before the migration
    for image in s.list(model.Image):
        assert (image.owner.partition(":")[2] or None) == expected[image.id]


def _v6_file(path) -> tuple[list[Any], dict[str, str | None]]:
    _alembic_sqlite(path, "0006")
    objects, expected = _v6_objects()
    with sqlite3.connect(path) as raw:
        raw.executemany("INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?, ?)", _v6_rows(objects))
    raw.close()
    return objects, expected


@pytest.mark.parametrize("by", ["core", "alembic"])
def test_a_v6_sqlite_file_gets_the_owner_column_from_its_json(tmp_path, by):
    objects, expected = _v6_file(tmp_path / "s.db")
    if by == "alembic":
        _alembic_sqlite(tmp_path / "s.db")
    s = StateStore(tmp_path / "s.db")
    try:
        assert s.migrated_from == (6 if by == "core" else SCHEMA_VERSION)
        _migrated_right(s, objects, expected)
        plan = " ".join(str(r[-1]) for r in s._rows(
            "EXPLAIN QUERY PLAN SELECT data, version FROM objects WHERE kind='image' AND "
            "owner_id=:o", {"o": "x"}))
        assert "USING INDEX objects_owner (kind=? AND owner_id=?)" in plan
    finally:
        s.close()


def test_a_failed_owner_migration_leaves_the_v6_file_alone(tmp_path, monkeypatch):
    db = tmp_path / "s.db"
    _v6_file(db)
    before = sqlite3.connect(db)
    rows = before.execute("SELECT * FROM objects ORDER BY id").fetchall()
    before.close()
    monkeypatch.setitem(sqlite_backend.MIGRATIONS, 6,
                        (*sqlite_backend.MIGRATIONS[6], "THIS IS NOT SQL"))
    with pytest.raises(StateError, match=r"from schema version 6 to 7 failed \(near \"THIS\": "
                                         r"syntax error\); the file is unchanged"):
        StateStore(db)
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("6",)
        assert "owner_id" not in [r[1] for r in raw.execute("PRAGMA table_info(objects)")]
        assert raw.execute("SELECT * FROM objects ORDER BY id").fetchall() == rows
        assert raw.execute("SELECT name FROM sqlite_master WHERE name='objects_owner'"
                           ).fetchall() == []
    finally:
        raw.close()
    monkeypatch.undo()
    s = StateStore(db)  # the next open (a fixed virtplane) migrates it
    assert s.migrated_from == 6 and s.check() == []
    s.close()


def test_a_v6_postgresql_store_gets_the_owner_column_from_its_json(pg_url, cli):
    _pg_at(pg_url, "0006")
    import psycopg

    from tests.state.conftest import _conninfo

    objects, expected = _v6_objects()
    schema = pg_url.rpartition("search_path%3D")[2]
    with psycopg.connect(_conninfo(pg_url.partition("?")[0]), autocommit=True) as conn:
        conn.execute(f"SET search_path={schema}")
        conn.cursor().executemany("INSERT INTO objects VALUES (%s, %s, %s, %s, %s, %s, %s)",
                                  _v6_rows(objects))
    with pytest.raises(StateError, match="has schema version 6 and needs migrating to 7"):
        StateStore(pg_url)
    rc, out, err = cli("state", "migrate", pg_url)
    assert (rc, err) == (0, "")
    assert f"migrated from schema version 6 to {SCHEMA_VERSION}" in out
    s = StateStore(pg_url)
    try:
        _migrated_right(s, objects, expected)
        (index_sql,) = s._rows("SELECT indexdef FROM pg_indexes WHERE schemaname=:s AND "
                               "indexname='objects_owner'", {"s": schema})[0]
        assert index_sql.endswith("USING btree (kind, owner_id) WHERE (owner_id IS NOT NULL)")
        with s.transaction():  # a tiny table: make the planner show the index it would use
            s._rows("SET LOCAL enable_seqscan = off")  # (and not scan it)
            plan = " ".join(str(r[0]) for r in s._rows(
                "EXPLAIN SELECT data, version FROM objects WHERE kind='image' AND "
                "owner_id=:o", {"o": "x"}))
        assert "objects_owner" in plan
    finally:
        s.dispose()
