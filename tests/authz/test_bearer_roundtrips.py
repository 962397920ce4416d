"""A request with a bearer token on PostgreSQL: its session and the permission tables'
version come in one statement, one round trip to the database (they were two: the
session, then the version).

The statements are counted on the connection of the API's authz store (the one the
sessions share), by a proxy put in front of it once it is open."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.authz.test_shared_principals import _pg_url

PW = "bearer-pass-1"


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _pg_url()


class Counting:
    """A psycopg connection that counts (and keeps) the statements sent through it."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.sent: list[str] = []

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(str(statement))
        return self._conn.execute(statement, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _count(store: Any) -> Counting:
    """Count what ``store`` sends from now on (its connection opened first)."""
    with store._lock:
        counting = Counting(store._db())
        store._conn = counting
    return counting


def test_a_bearer_request_is_one_round_trip(pg_url: str) -> None:
    from virtplane import Manager, config
    from virtplane_api_ovirt import Server, create_app
    from virtplane_api_ovirt.auth import UserStore
    from virtplane_api_ovirt.authz import SYSTEM

    UserStore.for_state(pg_url).set_password("admin@internal", PW)
    servers: list[Any] = []
    managers: list[Any] = []
    try:
        for _ in range(2):  # two engines on one database
            m = Manager(config.load(), state_path=pg_url)
            managers.append(m)
            app = create_app(m)
            server = Server(app).start()
            server.api = app.state.api
            servers.append(server)
        managers[0].datacenters.add("dc1")
        a, b = servers
        a.api.authz.add_user("carol", PW)
        base = b.url.removesuffix("/ovirt-engine/api")
        reply = requests.post(f"{base}/ovirt-engine/sso/oauth/token", data={
            "grant_type": "password", "scope": "ovirt-app-api", "username": "carol",
            "password": PW}, timeout=30)
        assert reply.status_code == 200, reply.text
        token = reply.json()["access_token"]

        def get(path: str) -> requests.Response:
            return requests.get(f"{b.url}{path}", timeout=30, headers={
                "Authorization": f"Bearer {token}", "Accept": "application/json"})

        assert get("/datacenters").status_code == 200  # the index built
        sent = _count(b.api.authz.store)
        for _ in range(5):
            reply = get("/datacenters")
            assert reply.status_code == 200, reply.text
            assert "dc1" not in reply.text  # carol may see nothing yet
        assert len(sent.sent) == 5, sent.sent  # one statement per request

        # a grant at the other engine: B's next request reads the tables again (the
        # version it got with the session is not its index's) and sees it
        a.api.authz.grant("carol", "SuperUser", SYSTEM)
        sent.sent.clear()
        reply = get("/datacenters")
        assert reply.status_code == 200 and "dc1" in reply.text, reply.text
        assert len(sent.sent) > 1, sent.sent  # the session, then the rebuild
        sent.sent.clear()
        assert "dc1" in get("/datacenters").text
        assert len(sent.sent) == 1, sent.sent

        # a removed user is still refused at once
        a.api.authz.remove_user("carol")
        assert get("/datacenters").status_code == 401
    finally:
        for s in servers:
            s.stop()
        for m in managers:
            m.close()
