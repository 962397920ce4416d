"""Both backends for the store's contract tests, and a real PostgreSQL cluster.

``store_url`` is parametrized over ``sqlite`` and ``postgresql``. The PostgreSQL
side gets a fresh schema in the test database for every test (``search_path`` in
the URL's ``options``), dropped afterwards. The database is the one
``tools/start-postgres.sh`` starts (``make daemons``), or ``VIRTPLANE_TEST_POSTGRES``;
when it is unreachable, or the plugin is not installed, the PostgreSQL cases skip
locally and fail in CI.
"""

from __future__ import annotations

import functools
import os
import subprocess
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need

#: read at import: the autouse ``xdg`` fixture clears VIRTPLANE_* variables
PG_URL = os.environ.get("VIRTPLANE_TEST_POSTGRES",
                        "postgresql://virtplane:virtplane@127.0.0.1:5499/virtplane")
ROOT = Path(__file__).resolve().parents[2]


def drill_cluster(action: str, cluster: str, port: int) -> str:
    """``tools/start-postgres.sh [stop]`` on a cluster of a test's own (stopping it
    never disturbs a run that uses the shared one); the state URL for a start."""
    cmd = ["bash", str(ROOT / "tools" / "start-postgres.sh")] + (["stop"] if action == "stop"
                                                                 else [])
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "VIRTPLANE_PG_CLUSTER": cluster,
                               "VIRTPLANE_PG_PORT": str(port)})
    if action == "stop":
        return ""
    lines = done.stdout.strip().splitlines()
    url = lines[-1] if lines else ""
    assert url.startswith("postgresql://"), (
        f"tools/start-postgres.sh printed no state URL as its last line: {done.stdout!r}")
    return url


@functools.cache
def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used here, or None."""
    try:
        import psycopg

        import virtplane_state_postgresql  # noqa: F401
    except ImportError as exc:
        return (f"the PostgreSQL backend is not installed ({exc}): "
                "pip install -e plugins/state_postgresql")
    try:
        psycopg.connect(_conninfo(PG_URL), connect_timeout=3).close()
    except psycopg.Error as exc:
        return (f"PostgreSQL at {PG_URL.rpartition('@')[2]} is unreachable ({exc}); "
                "start it with tools/start-postgres.sh")
    return None


def _conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def with_schema(url: str, schema: str) -> str:
    """``url`` with every connection's search_path set to ``schema``."""
    sep = "&" if "?" in url else "?"
    return url + sep + "options=" + urllib.parse.quote(f"-csearch_path={schema}")


class PgSchemas:
    """Throw-away schemas in the test database (each a separate, empty store)."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(_conninfo(PG_URL), autocommit=True) as conn:
            conn.execute(sql)

    def new(self) -> str:
        schema = "t_" + uuid.uuid4().hex[:12]
        self.admin(f"CREATE SCHEMA {schema}")
        self.made.append(schema)
        return with_schema(PG_URL, schema)

    def drop_all(self) -> None:
        for schema in self.made:
            self.admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def pg_schemas() -> Iterator[PgSchemas]:
    problem = postgres_problem()
    need(problem is None, problem or "")
    schemas = PgSchemas()
    yield schemas
    schemas.drop_all()


@pytest.fixture
def pg_url(pg_schemas: PgSchemas) -> str:
    """A URL of an empty PostgreSQL store (its own schema)."""
    return pg_schemas.new()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each backend: a file path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "state.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def open_store(store_url: str) -> Iterator[Callable[..., Any]]:
    """``open_store()`` -> a new StateStore instance on this test's store (as a second
    engine or a CLI process would have); all are closed afterwards."""
    from virtplane.state import StateStore

    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        store = StateStore(store_url, **kwargs)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
        if hasattr(store, "dispose"):
            store.dispose()


@pytest.fixture
def store(open_store: Callable[..., Any]) -> Any:
    return open_store()
