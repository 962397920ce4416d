"""Schema migrations: the Alembic scripts and the core's SQLite schema stay the same
schema; old stores are upgraded with their data; PostgreSQL stores are migrated by
``virtplane state migrate`` only, and refused until then."""

from __future__ import annotations

import sqlite3
import threading

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
