"""The PostgreSQL backend's statement path (prepared statements through libpq), on a
real server: values and types both ways, statements it does not prepare, and
prepared statements the server dropped."""

from __future__ import annotations

from typing import Any

import pytest

from virtplane import model


@pytest.fixture
def pg(pg_url: str) -> Any:
    from virtplane.state import StateStore

    store = StateStore(pg_url)
    yield store
    store.dispose()


def test_values_and_result_types_round_trip(pg: Any) -> None:
    rows = pg._rows("SELECT CAST(:i AS BIGINT), CAST(:f AS DOUBLE PRECISION), :s || '', "
                    "CAST(:b AS BOOLEAN), CAST(:n AS TEXT), 2 > 1, CAST(1.5 AS NUMERIC)",
                    {"i": 2**40, "f": 0.1, "s": "é: 'q' %s $1", "b": False, "n": None})
    assert rows == [(2**40, 0.1, "é: 'q' %s $1", False, None, True, 1.5)]
    assert [type(v) for v in rows[0][:3]] == [int, float, str]


def test_writes_count_their_rows_and_long_in_lists_are_not_prepared(pg: Any) -> None:
    vms = [model.Vm(spec=model.VmSpec(name=f"vm{i}", memory_mib=256), cluster_id="c")
           for i in range(40)]
    for vm in vms:
        pg.add(vm)
    ids = [v.id for v in vms]
    assert pg.versions(model.Vm, ids=ids[:30]) == {i: 1 for i in ids[:30]}  # 30 parameters
    assert pg._count("UPDATE objects SET updated=:t WHERE kind=:k", {"t": 1.0, "k": "vm"}) == 40
    from virtplane_state_postgresql import fastpath

    assert len(fastpath._statements) <= fastpath._MAX_PREPARED


def test_a_statement_the_server_dropped_is_prepared_again(pg: Any) -> None:
    pg.add(model.DataCenter(name="dc1"))
    assert pg.find(model.DataCenter, "dc1").name == "dc1"  # prepared on the pooled connection
    pg._rows("DEALLOCATE ALL")  # as a pooler or a foreign client may
    assert pg.find(model.DataCenter, "dc1").name == "dc1"
    with pg.transaction():  # prepared inside a transaction that rolls back: still there
        pg._rows("SELECT kind FROM objects WHERE name=:n", {"n": "dc1"})
        pg._rows("ROLLBACK")
        pg._rows("BEGIN")
    assert pg._rows("SELECT kind FROM objects WHERE name=:n", {"n": "dc1"}) == [("datacenter",)]


def test_errors_are_the_stores_and_leave_the_connection_usable(pg: Any) -> None:
    from virtplane.errors import StateError

    with pytest.raises(StateError, match="division by zero"):
        pg._rows("SELECT 1 / CAST(:z AS INTEGER)", {"z": 0})
    assert pg._rows("SELECT 1 / CAST(:z AS INTEGER)", {"z": 1}) == [(1,)]
