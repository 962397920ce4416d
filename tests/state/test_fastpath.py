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


def test_large_results_and_other_types_come_back_as_text(pg: Any) -> None:
    rows = pg._rows("SELECT g, CAST(g AS TEXT) || 'é', CAST(NULL AS INTEGER) "
                    "FROM generate_series(1, 5000) AS g")
    assert len(rows) == 5000
    assert rows[4999] == (5000, "5000é", None)
    assert all(type(r) is tuple for r in rows)
    other = pg._rows("SELECT CAST('{\"a\": 1}' AS JSONB), CAST('2026-01-02' AS DATE), "
                     "CAST('x' AS VARCHAR), CAST('n' AS NAME)")
    assert other == [('{"a": 1}', "2026-01-02", "x", "n")]


def test_statements_reuse_the_connection_given_back(pg: Any) -> None:
    pid = pg._rows("SELECT pg_backend_pid()")[0][0]
    for _ in range(3):
        assert pg._rows("SELECT pg_backend_pid()")[0][0] == pid
    with pg.transaction():
        assert pg._rows("SELECT pg_backend_pid()")[0][0] == pid
    assert pg._rows("SELECT pg_backend_pid()")[0][0] == pid


def test_a_connection_left_inside_a_transaction_is_not_reused_as_it_is(pg: Any) -> None:
    from psycopg.pq import TransactionStatus

    pg._rows("BEGIN")  # outside the store's transactions: rolled back before reuse
    assert [p.driver_connection.pgconn.transaction_status for p in pg._idle] == \
        [TransactionStatus.IDLE]
    assert pg._rows("SELECT CAST(:s AS TEXT)", {"s": "x"}) == [("x",)]


def test_a_closed_store_keeps_no_connection_and_reconnects(pg: Any) -> None:
    pg._rows("SELECT 1")
    pg.close()
    assert not pg._idle
    assert pg._engine.pool.checkedout() == 0
    assert pg._rows("SELECT 1") == [(1,)]


def _analyzed_rows(pg: Any) -> float:
    return float(pg._rows("SELECT reltuples FROM pg_class WHERE oid = "
                          "to_regclass('objects')")[0][0])


def test_a_store_that_grew_the_table_analyzes_it(pg: Any) -> None:
    pg._analyze_after = 5  # ANALYZE_GROWTH is 1,000
    for i in range(4):
        pg.add(model.DataCenter(name=f"dc{i}"))
    assert _analyzed_rows(pg) < 0  # never analyzed
    pg.add(model.DataCenter(name="dc4"))
    assert _analyzed_rows(pg) == 5
    assert pg._analyze_after == 1000  # the next one once the table doubled
    pg._analyze_after = 3
    with pg.transaction():  # in a transaction: when it commits
        for i in range(5, 8):
            pg.add(model.DataCenter(name=f"dc{i}"))
        assert _analyzed_rows(pg) == 5
    assert _analyzed_rows(pg) == 8


def test_begin_goes_with_the_first_statement(pg: Any) -> None:
    from virtplane.errors import StateError

    with pg.transaction():  # no statement: nothing sent, nothing left open
        pass
    with pytest.raises(StateError, match="division by zero"):
        with pg.transaction():  # the first statement fails: BEGIN ran, is rolled back
            pg._rows("SELECT 1 / CAST(:z AS INTEGER)", {"z": 0})
    with pg.transaction():
        pg.add(model.DataCenter(name="dc1"))
        assert pg._rows("SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid() "
                        "AND state = 'active' AND backend_xid IS NOT NULL") == [(1,)]
    with pytest.raises(RuntimeError):
        with pg.transaction():
            pg.add(model.DataCenter(name="dc2"))
            raise RuntimeError
    assert [d.name for d in pg.list(model.DataCenter)] == ["dc1"]
    pg._rows("DEALLOCATE ALL")  # the first statement of a transaction is prepared again
    with pg.transaction():
        assert pg.find(model.DataCenter, "dc1").name == "dc1"


def test_a_transaction_whose_connection_died_with_the_server_away(
        pg: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    from virtplane.errors import StateUnavailable

    pid = pg._rows("SELECT pg_backend_pid()")[0][0]
    with psycopg.connect(pg_url, autocommit=True) as other:  # the server drops it ...
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def refused() -> None:  # ... and takes no new connection
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(pg._engine, "raw_connection", refused)
    with pytest.raises(StateUnavailable):
        with pg.transaction():
            pg.add(model.DataCenter(name="dc1"))
    monkeypatch.undo()
    pg.add(model.DataCenter(name="dc2"))  # the server is back
    assert [d.name for d in pg.list(model.DataCenter)] == ["dc2"]


def test_a_long_statement_lets_other_threads_run(pg: Any) -> None:
    """Past the polling budget the answer is awaited in ``select``, without Python's
    lock and without using the processor: a thread counting meanwhile gets most of
    the 0.3 s, and the waiting thread uses little CPU time."""
    import threading
    import time

    from virtplane_state_postgresql import fastpath

    stop = threading.Event()
    counted = [0]

    def count() -> None:
        while not stop.is_set():
            counted[0] += 1

    counter = threading.Thread(target=count)
    counter.start()
    try:
        time.sleep(0.05)
        before = counted[0]
        t0, cpu0 = time.perf_counter(), time.thread_time()
        assert pg._rows("SELECT 7 FROM pg_sleep(CAST(:s AS DOUBLE PRECISION))",
                        {"s": 0.3}) == [(7,)]
        took, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
        during = counted[0] - before
    finally:
        stop.set()
        counter.join()
    assert took >= 0.3
    assert cpu < 0.05, cpu  # it polled for SPIN, then slept: no busy wait of 0.3 s
    # the counter's rate alone, for comparison
    t0 = time.perf_counter()
    alone = 0
    while time.perf_counter() - t0 < 0.1:
        alone += 1
    assert during > alone, (during, alone)  # it ran for more than 0.1 s of the 0.3
    assert fastpath.SPIN < 0.01


def test_a_connection_killed_during_a_statement_is_unavailable_not_a_hang(
        pg: Any, pg_url: str) -> None:
    import threading

    import psycopg

    from virtplane.errors import StateUnavailable

    pid = pg._rows("SELECT pg_backend_pid()")[0][0]

    def kill() -> None:
        with psycopg.connect(pg_url, autocommit=True) as other:
            for _ in range(100):  # until its statement is running
                if other.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s "
                                 "AND state = 'active'", (pid,)).fetchone() == (1,):
                    break
                threading.Event().wait(0.02)
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))

    killer = threading.Thread(target=kill)
    killer.start()
    try:
        # inside a transaction (outside one, a statement on a connection that died is
        # retried once on a new one)
        with pytest.raises(StateUnavailable, match="unreachable"):
            with pg.transaction():
                pg.add(model.DataCenter(name="lost"))
                pg._rows("SELECT pg_sleep(5)")
    finally:
        killer.join()
    pg.add(model.DataCenter(name="after"))  # the next statement has a new connection
    assert [d.name for d in pg.list(model.DataCenter)] == ["after"]
