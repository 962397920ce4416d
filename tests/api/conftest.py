"""Fixtures for the oVirt-compatible API: a small world on libvirt's test driver,
the API served on loopback, and connections of the real oVirt SDK."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need

PASSWORD = "s3cret-pass"


def sdk_available() -> bool:
    return importlib.util.find_spec("ovirtsdk4") is not None


@pytest.fixture
def sdk() -> Any:
    """The real oVirt SDK: skipped locally when missing, a failure in CI."""
    need(sdk_available(), "ovirt-engine-sdk-python is not installed (requirements-dev.txt)")
    import ovirtsdk4

    return ovirtsdk4


@pytest.fixture
def world(manager_factory: Callable[..., Any], tmp_path: Path) -> Any:
    """dc1 / c1 / h1 (test:///default) and an active localfs domain data1."""
    m = manager_factory()
    m.datacenters.add("dc1")
    m.clusters.add("c1", "dc1")
    m.hosts.add("h1", "c1", "test:///default")
    (tmp_path / "sd").mkdir()
    m.storage.add("data1", "localfs", "dc1", {"path": str(tmp_path / "sd")})
    return m


@pytest.fixture
def users(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The API's users where a server over ``world`` keeps them: the file
    ``api-users.db``, or with a PostgreSQL state store
    (``VIRTPLANE_TEST_STATE_BACKEND=postgresql``) that database, so what a test writes
    here is what the server reads. A test without ``world`` gets the file."""
    from virtplane_api_ovirt.auth import UserStore

    path = tmp_path / "api-users.db"
    if "world" in request.fixturenames:
        store = UserStore.for_state(request.getfixturevalue("world").context.location, path)
    else:
        store = UserStore(path)
    store.set_password("admin@internal", PASSWORD)
    return store


@pytest.fixture
def serve(world: Any, users: Any) -> Iterator[Callable[..., Any]]:
    """Start the API over ``world`` (keyword arguments go to create_app)."""
    from virtplane_api_ovirt import Server, create_app

    started: list[Any] = []

    def start(**kwargs: Any) -> Any:
        pki = kwargs.pop("tls_pki", None)
        app = create_app(world, users=kwargs.pop("users", users), pki=pki, **kwargs)
        server = Server(app, pki=pki).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(serve: Callable[..., Any]) -> Any:
    return serve()


@pytest.fixture
def connect(sdk: Any, server: Any) -> Iterator[Callable[..., Any]]:
    """Open SDK connections to ``server`` (closed, with logout, afterwards)."""
    made: list[Any] = []

    def open_(**kwargs: Any) -> Any:
        args = {"url": server.url, "username": "admin@internal", "password": PASSWORD,
                "timeout": 30}
        args.update(kwargs)
        conn = sdk.Connection(**args)
        made.append(conn)
        return conn

    yield open_
    for conn in made:
        conn.close()


@pytest.fixture
def conn(connect: Callable[..., Any]) -> Any:
    return connect()


@pytest.fixture
def client(server: Any) -> Iterator[Any]:
    """Raw HTTP to ``server`` as the admin (:class:`tests.api.raw_http.Client`)."""
    from tests.api.raw_http import Client

    made = Client(server.url)
    yield made
    made.close()
