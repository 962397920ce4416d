"""Degrading well: when PostgreSQL is away, every call fails fast with StateUnavailable
(a clear message, exit 75, nothing written), and the same store works again once
the server is back, without being reopened."""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import need
from tests.state.conftest import ROOT, drill_cluster, postgres_problem, with_schema
from virtplane import model
from virtplane.errors import StateError, StateUnavailable
from virtplane.state import StateStore

SCRIPT = ROOT / "tools" / "start-postgres.sh"


def _plugin() -> None:
    problem = postgres_problem()
    if problem and "not installed" in problem:
        need(False, problem)


def test_nobody_listening_is_unavailable_at_once(cli):
    _plugin()
    url = "postgresql://virtplane:secret@127.0.0.1:1/virtplane"
    t0 = time.monotonic()
    with pytest.raises(StateUnavailable) as info:
        StateStore(url)
    assert time.monotonic() - t0 < 3
    msg = str(info.value)
    assert msg.startswith("state store postgresql://virtplane:***@127.0.0.1:1/virtplane is "
                          "unreachable (")
    assert msg.endswith("nothing was written: retry when the database is back")
    assert "secret" not in msg and info.value.exit_code == 75
    rc, _, err = cli("state", "show", url)
    assert rc == 75 and "is unreachable" in err and "Traceback" not in err


def test_a_server_that_never_answers_times_out_within_the_bound():
    """A listener that accepts connections but never speaks (a hung server, a dead
    pooler): the connect timeout from the URL bounds the wait."""
    _plugin()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(StateUnavailable, match="is unreachable"):
            StateStore(f"postgresql://virtplane@127.0.0.1:{port}/virtplane?connect_timeout=1")
        took = time.monotonic() - t0
    assert 0.9 < took < 4, took


def _pg(action: str) -> str:
    return drill_cluster(action, "virtplane-drill", 5498)


def test_stopping_and_starting_postgresql():
    """Stop a PostgreSQL cluster for a moment (tools/start-postgres.sh): calls fail fast
    and clearly, and the same store instance recovers when it is started again."""
    _plugin()
    need(os.geteuid() == 0 and SCRIPT.is_file() and Path("/usr/bin/pg_createcluster").exists(),
         "the outage drill creates its own cluster: it needs root and Debian's postgresql")
    import psycopg

    server = _pg("start")
    schema = "o_" + uuid.uuid4().hex[:12]  # a store of its own in the drill's database
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = with_schema(server, schema)
    store = StateStore(url)
    try:
        store.add(model.DataCenter(name="before"))
        try:
            _pg("stop")
            for call in (lambda: store.find(model.DataCenter, "before"),
                         lambda: store.add(model.DataCenter(name="during")),
                         lambda: store.acquire_lease("host-1", "engine-a", 10),
                         lambda: StateStore(url)):
                t0 = time.monotonic()
                with pytest.raises(StateUnavailable, match="is unreachable .*nothing was written"):
                    call()
                assert time.monotonic() - t0 < 3.5
        finally:
            _pg("start")
        # the same instance, its pooled connections dead: it reconnects by itself
        assert store.find(model.DataCenter, "before").name == "before"
        assert not store.exists(model.DataCenter, "during")
        store.add(model.DataCenter(name="after"))
        assert store.acquire_lease("host-1", "engine-a", 10).epoch == 1
        assert sorted(d.name for d in store.list(model.DataCenter)) == ["after", "before"]
    finally:
        store.dispose()
        _pg("start")  # a failed drill may have left it stopped
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
        _pg("stop")


def test_unavailable_is_a_state_error_for_callers_that_catch_those():
    assert issubclass(StateUnavailable, StateError)
    assert Path(SCRIPT).is_file()
