"""Schema migrations: the Alembic scripts and the core's SQLite schema stay the same
schema; old stores are upgraded with their data; PostgreSQL stores are migrated by
``virtplane state migrate`` only, and refused until then."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import pytest

from tests.state.conftest import postgres_problem
from virtplane import model
from virtplane.errors import StateError
from virtplane.state import SCHEMA_VERSION, StateStore


def _alembic():
    problem = postgres_problem()
    if problem and "not installed" in problem:
        from tests.conftest import need

        need(False, problem)
    import sqlalchemy as sa

    from virtplane_state_postgresql import migrations

    return sa, migrations


def _affinity(declared: str) -> str:
    """SQLite's type affinity of a declared column type (what decides storage)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if any(k in t for k in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if any(k in t for k in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def _sqlite_schema(path) -> dict[str, object]:
    """Tables (columns with affinity, not-null, primary key) and named indexes."""
    raw = sqlite3.connect(path)
    try:
        out: dict[str, object] = {}
        tables = [r[0] for r in raw.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
            "AND name <> 'alembic_version' ORDER BY name")]
        for table in tables:
            cols = sorted((r[1], _affinity(r[2]), bool(r[3]) or bool(r[5]), r[5])
                          for r in raw.execute(f"PRAGMA table_info({table})"))
            indexes = sorted(
                (r[1], bool(r[2]), tuple(c[2] for c in raw.execute(f"PRAGMA index_info({r[1]})")))
                for r in raw.execute(f"PRAGMA index_list({table})")
                if not r[1].startswith("sqlite_autoindex"))
            sql = raw.execute("SELECT sql FROM sqlite_master WHERE name=?", (table,)).fetchone()[0]
            out[table] = (cols, indexes, "AUTOINCREMENT" in sql.upper())
        out["schema"] = raw.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
        return out
    finally:
        raw.close()


def _alembic_sqlite(path, revision: str = "head") -> None:
    sa, migrations = _alembic()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        migrations.upgrade(conn, revision)
    engine.dispose()


def test_alembic_and_the_core_make_the_same_sqlite_schema(tmp_path):
    StateStore(tmp_path / "core.db").close()
    _alembic_sqlite(tmp_path / "alembic.db")
    core, alembic = _sqlite_schema(tmp_path / "core.db"), _sqlite_schema(tmp_path / "alembic.db")
    assert core == alembic
    assert core["schema"] == str(SCHEMA_VERSION)


def test_each_alembic_revision_matches_the_cores_migration_path(tmp_path):
    """Revision 000N on an empty file == the core's version N schema migrated forward."""
    from tests.core.test_state import _v1_file

    _alembic_sqlite(tmp_path / "a1.db", "0001")
    _v1_file(tmp_path / "core1.db")
    with sqlite3.connect(tmp_path / "core1.db") as raw:
        raw.execute("DELETE FROM events")
    raw.close()
    assert _sqlite_schema(tmp_path / "a1.db") == _sqlite_schema(tmp_path / "core1.db")
    # the core's v1 file, upgraded by Alembic, equals a new file
    _alembic_sqlite(tmp_path / "core1.db")
    StateStore(tmp_path / "new.db").close()
    assert _sqlite_schema(tmp_path / "core1.db") == _sqlite_schema(tmp_path / "new.db")


def test_alembic_upgrades_a_v1_file_and_keeps_its_data(tmp_path):
    from tests.core.test_state import _v1_file

    dc = model.DataCenter(name="dc1", description="from v1")
    _v1_file(tmp_path / "s.db", dc)
    _alembic_sqlite(tmp_path / "s.db")
    s = StateStore(tmp_path / "s.db")
    assert s.migrated_from == SCHEMA_VERSION  # nothing left for the core to do
    got = s.find(model.DataCenter, "dc1")
    assert got == dc and got.revision == 1
    assert s.acquire_lease("h", "e", 5).epoch == 1
    _alembic_sqlite(tmp_path / "s.db")  # again: nothing to do, nothing broken
    assert s.check() == []


def test_the_core_migrates_a_v2_sqlite_file_to_leases(tmp_path, cli):
    _alembic_sqlite(tmp_path / "s.db", "0002")
    with sqlite3.connect(tmp_path / "s.db") as raw:
        raw.execute("INSERT INTO objects VALUES ('id1', 'datacenter', 'dc1', ?, 1.0, 4)",
                    (model.to_json(model.DataCenter(name="dc1", id="id1")),))
    raw.close()
    rc, out, err = cli("state", "migrate", str(tmp_path / "s.db"))
    assert (rc, err) == (0, "")
    assert out.strip() == (f"state store {tmp_path / 's.db'} migrated from schema version 2 "
                           f"to {SCHEMA_VERSION}")
    rc, out, _ = cli("state", "migrate", str(tmp_path / "s.db"))
    assert f"is at schema version {SCHEMA_VERSION}: nothing to do" in out
    s = StateStore(tmp_path / "s.db")
    assert s.find(model.DataCenter, "dc1").revision == 4
    assert s.list_leases() == []


def _v5_objects() -> tuple[list[Any], dict[str, list[str]]]:
    """A data center, two clusters, a host and VMs in both (rows as schema 5 held
    them), and cluster id -> the ids of its VMs."""
    dc = model.DataCenter(name="dc1")
    a, b = (model.Cluster(name=n, datacenter_id=dc.id) for n in ("a", "b"))
    vms = [model.Vm(spec=model.VmSpec(name=f"vm{i}"), cluster_id=(a if i % 3 else b).id)
           for i in range(7)]
    host = model.Host(name="h1", cluster_id=b.id, driver="kvm", uri="test:///default")
    by_cluster = {c.id: [v.id for v in vms if v.cluster_id == c.id] for c in (a, b)}
    return [dc, a, b, host, *vms], by_cluster


def _v5_rows(objects: list[Any]) -> list[tuple[str, str, str, str]]:
    from virtplane.state._core import _name_of, kind_of

    return [(o.id, kind_of(type(o)), _name_of(o), model.to_json(o))
            for o in objects]


def _found_through_the_column(s: StateStore, objects: list[Any],
                              by_cluster: dict[str, list[str]]) -> None:
    """After the migration every VM is found by its cluster, through the column."""
    for cluster_id, vm_ids in by_cluster.items():
        assert s.versions(model.Vm, cluster_ids=[cluster_id]) == dict.fromkeys(vm_ids, 3)
    host = next(o for o in objects if isinstance(o, model.Host))
    assert s.versions(model.Host, cluster_ids=list(by_cluster)) == {host.id: 3}
    column = dict(s._rows("SELECT id, cluster_id FROM objects"))
    assert column == {o.id: getattr(o, "cluster_id", None) for o in objects}
    assert s.check() == []
    # and the column follows later writes
    moved = s.find(model.Vm, "vm1")
    moved.cluster_id = next(iter(by_cluster))
    s.update(moved)
    assert moved.id in s.versions(model.Vm, cluster_ids=[moved.cluster_id])


@pytest.mark.parametrize("by", ["core", "alembic"])
def test_a_v5_sqlite_file_gets_the_cluster_column_from_its_vms(tmp_path, by):
    """Schema 5 to 6 on SQLite (the core on open, or Alembic): the column is filled
    from each row's JSON and the expression index is gone."""
    _alembic_sqlite(tmp_path / "s.db", "0005")
    objects, by_cluster = _v5_objects()
    with sqlite3.connect(tmp_path / "s.db") as raw:
        raw.executemany("INSERT INTO objects VALUES (?, ?, ?, ?, 1.0, 3)", _v5_rows(objects))
    raw.close()
    if by == "alembic":
        _alembic_sqlite(tmp_path / "s.db")
    s = StateStore(tmp_path / "s.db")
    assert s.migrated_from == (5 if by == "core" else SCHEMA_VERSION)
    assert s.schema_version() == SCHEMA_VERSION
    _found_through_the_column(s, objects, by_cluster)
    plan = " ".join(str(r[-1]) for r in s._rows(
        "EXPLAIN QUERY PLAN SELECT id, version FROM objects WHERE kind='vm' AND "
        "cluster_id IN ('x', 'y')"))
    assert "USING INDEX objects_cluster (kind=? AND cluster_id=?)" in plan
    (index_sql,) = s._rows("SELECT sql FROM sqlite_master WHERE name='objects_cluster'")[0]
    assert "json_extract" not in index_sql
    s.close()


# ----------------------------------------------------------------------- PostgreSQL


def _pg_at(url: str, revision: str) -> None:
    sa, migrations = _alembic()
    from virtplane_state_postgresql.store import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        migrations.upgrade(conn.execution_options(isolation_level="READ COMMITTED"), revision)
    engine.dispose()


def test_an_empty_postgresql_database_gets_the_schema_on_first_open(pg_url):
    s = StateStore(pg_url)
    assert s.schema_version() == SCHEMA_VERSION
    assert s.check() == []
    s.dispose()


def test_concurrent_first_opens_create_the_schema_once(pg_url):
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def opener() -> None:
        barrier.wait()
        try:
            s = StateStore(pg_url)
            s.add(model.DataCenter(name=f"dc-{threading.get_ident()}"))
            s.dispose()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    s = StateStore(pg_url)
    assert len(s.list(model.DataCenter)) == 3
    s.dispose()


def test_an_old_postgresql_store_is_refused_until_migrated(pg_url, cli):
    _pg_at(pg_url, "0002")
    import psycopg

    from tests.state.conftest import _conninfo

    schema = pg_url.rpartition("search_path%3D")[2]
    with psycopg.connect(_conninfo(pg_url.partition("?")[0]), autocommit=True) as conn:
        conn.execute(f"SET search_path={schema}")
        conn.execute("INSERT INTO objects VALUES ('id1', 'datacenter', 'dc1', %s, 1.0, 7)",
                     (model.to_json(model.DataCenter(name="dc1", id="id1")),))
    with pytest.raises(StateError, match=rf"has schema version 2 and needs migrating to "
                                         rf"{SCHEMA_VERSION}: stop the engines of the old "
                                         r"version and run 'virtplane state migrate "
                                         r"postgresql://virtplane:\*\*\*@"):
        StateStore(pg_url)
    rc, out, err = cli("state", "migrate", pg_url)
    assert (rc, err) == (0, "")
    assert f"migrated from schema version 2 to {SCHEMA_VERSION}" in out and ":virtplane@" not in out
    s = StateStore(pg_url)
    assert s.find(model.DataCenter, "dc1").revision == 7
    s.dispose()
    rc, out, _ = cli("state", "migrate", pg_url)
    assert f"is at schema version {SCHEMA_VERSION}: nothing to do" in out


def test_a_postgresql_store_from_a_newer_virtplane_is_refused(pg_url):
    s = StateStore(pg_url)
    with s.transaction():
        s._rows("UPDATE meta SET value='99' WHERE key='schema' RETURNING value")
    s.dispose()
    with pytest.raises(StateError, match="has schema version 99, written by a newer virtplane"):
        StateStore(pg_url)


def test_a_v5_postgresql_store_gets_the_cluster_column_from_its_vms(pg_url, cli):
    """Schema 5 to 6 on PostgreSQL (``virtplane state migrate``): the column is filled
    from each row's JSON, indexed, and the expression index is gone."""
    _pg_at(pg_url, "0005")
    import psycopg

    from tests.state.conftest import _conninfo

    objects, by_cluster = _v5_objects()
    schema = pg_url.rpartition("search_path%3D")[2]
    with psycopg.connect(_conninfo(pg_url.partition("?")[0]), autocommit=True) as conn:
        conn.execute(f"SET search_path={schema}")
        conn.cursor().executemany("INSERT INTO objects VALUES (%s, %s, %s, %s, 1.0, 3)",
                                  _v5_rows(objects))
    rc, out, err = cli("state", "migrate", pg_url)
    assert (rc, err) == (0, "")
    assert f"migrated from schema version 5 to {SCHEMA_VERSION}" in out
    s = StateStore(pg_url)
    try:
        _found_through_the_column(s, objects, by_cluster)
        (index_sql,) = s._rows("SELECT indexdef FROM pg_indexes WHERE schemaname=:s AND "
                               "indexname='objects_cluster'", {"s": schema})[0]
        assert index_sql.endswith("USING btree (kind, cluster_id)")
    finally:
        s.dispose()
