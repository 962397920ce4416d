"""The API's users, groups, roles, permissions and sessions are the same at every
engine sharing a PostgreSQL state store (issue 20: engines behind a load balancer),
and stay per engine (``api-users.db``, sessions in memory) on SQLite.

Two :class:`Authz` objects on one store stand for two engines (or an engine and a
CLI); the behaviours every backend has are parametrised over both."""

from __future__ import annotations

import io
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import need

PW = "pass-word-1"


def _pg_url() -> Iterator[str]:
    from tests.state.conftest import PgSchemas, postgres_problem

    problem = postgres_problem()
    need(problem is None, problem or "")
    schemas = PgSchemas()
    try:
        yield schemas.new()
    finally:
        schemas.drop_all()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema (a store of its own); fails in CI when unreachable."""
    yield from _pg_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A state location of each backend: a file path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "state.db")
        return
    yield from _pg_url()


@pytest.fixture
def engines(location: str) -> Iterator[Callable[..., Any]]:
    """``engine()`` -> a new Authz on ``location``'s tables (another engine, or a CLI)."""
    from virtplane_api_ovirt.authz import Authz, Settings
    from virtplane_api_ovirt.authz.store import AuthzStore

    made: list[Any] = []

    def make(**settings: Any) -> Any:
        authz = Authz(AuthzStore.for_state(location), Settings(**settings))
        made.append(authz)
        return authz

    yield make
    for authz in made:
        authz.close()


def _shared(location: str) -> bool:
    return location.startswith("postgresql")


# ----------------------------------------------------------- every backend


def test_users_groups_roles_permissions(engines: Callable[..., Any]) -> None:
    from virtplane.errors import AlreadyExists, NotFound
    from virtplane_api_ovirt.authz import ActionGroup, Kind, ObjectRef

    a, b = engines(), engines()
    alice = a.add_user("alice", PW)
    assert b.login("alice", PW).id == alice.id  # added at one, logs in at the other
    group = a.add_group("ops")
    a.store.add_member(group.id, alice.id)
    a.store.add_member(group.id, alice.id)  # twice: once
    assert b.store.index().member_of[alice.id] == {group.id}
    with pytest.raises(AlreadyExists):
        b.add_group("ops")
    role = b.store.add_role("starter", [ActionGroup.VM_BASIC_OPERATIONS], "starts VMs")
    assert a.store.index().role("STARTER").actions == {ActionGroup.VM_BASIC_OPERATIONS,
                                                       ActionGroup.LOGIN}
    vm = ObjectRef(Kind.VM, "vm-1", "web1")
    perm = a.grant("ops", "starter", vm, group=True)
    with pytest.raises(AlreadyExists):
        b.grant("ops", "starter", vm, group=True)
    assert b.store.index().by_object["vm-1"] == (perm,)
    assert b.store.add_permissions([(alice.id, "user", role.id, Kind.VM, "vm-2"),
                                    (alice.id, "user", role.id, Kind.VM, "vm-2")]) == 2
    assert len(a.store.index().by_object["vm-2"]) == 1  # the duplicate is ignored
    assert b.store.forget_object("vm-1") == 1  # the object is gone: so are its grants
    assert "vm-1" not in a.store.index().by_object
    b.remove_user("alice")
    ix = a.store.index()
    assert "alice@internal" not in ix.users and not ix.by_principal.get(alice.id)
    assert a.active("alice@internal") is None
    with pytest.raises(NotFound):
        a.store.remove_role("nobody")


def test_lockout_counts_the_failures_at_every_engine(engines: Callable[..., Any]) -> None:
    from virtplane_api_ovirt.authz import LoginRefused

    a, b = engines(max_failed_logins=3), engines(max_failed_logins=3)
    a.add_user("alice", PW)
    for authz in (a, b, a):
        with pytest.raises(LoginRefused, match="incorrect"):
            authz.login("alice", "wrong-password")
    for authz in (a, b):  # locked for both, whatever the password
        with pytest.raises(LoginRefused, match="locked"):
            authz.login("alice", PW)
        assert authz.active("alice@internal") is None
    b.store.unlock("alice")
    assert a.login("alice", PW).failures == 0


def test_failed_logins_at_once_are_all_counted(engines: Callable[..., Any]) -> None:
    """A read-modify-write of the failure count: two engines, four threads each."""
    a, b = engines(), engines()
    user = a.add_user("alice", PW)
    start = threading.Barrier(8)

    def fail(authz: Any) -> None:
        start.wait()
        for _ in range(10):
            authz.store.login_failed(user, 10_000, 60)

    threads = [threading.Thread(target=fail, args=(authz,)) for authz in (a, b) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.store.index().users["alice@internal"].failures == 80


def test_sessions_are_shared_only_on_postgresql(engines: Callable[..., Any],
                                                location: str) -> None:
    from virtplane_api_ovirt.auth import Sessions

    a, b = engines(), engines()
    at_a, at_b = Sessions(), Sessions()
    at_a.share(a.store)
    at_b.share(b.store)
    token, session = at_a.issue("alice@internal")
    assert at_a.check(token) == session
    if not _shared(location):  # one engine's memory, as before
        assert at_b.check(token) is None and len(at_b) == 0
        return
    assert at_b.check(token) == session and len(at_b) == 1  # issued at A, good at B
    assert at_b.revoke(token) == session  # logout at B ...
    assert at_a.check(token) is None  # ... refused at A at once
    assert at_a.revoke(token) is None


# ------------------------------------------------------- PostgreSQL only


def test_tokens_are_kept_hashed_and_expired_ones_purged(pg_url: str) -> None:
    import psycopg

    from tests.state.conftest import _conninfo
    from virtplane_api_ovirt import auth
    from virtplane_api_ovirt.authz.store import AuthzStore

    store = AuthzStore.for_state(pg_url)
    sessions = auth.Sessions(lifetime=-1)  # every token issued already expired
    sessions.share(store)
    old, _ = sessions.issue("alice@internal")
    assert sessions.check(old) is None
    sessions.lifetime = 60
    live, _ = sessions.issue("alice@internal")
    sessions._purged = 0  # as if the last purge was long ago
    sessions.issue("bob@internal")
    with psycopg.connect(_conninfo(pg_url)) as conn:
        rows = conn.execute("SELECT token_hash, user_name FROM authz_sessions").fetchall()
    assert len(rows) == 2  # the expired one was purged
    assert all(live not in h and old not in h for h, _ in rows)
    assert auth._digest(live) in {h for h, _ in rows}
    store.close()


def test_three_engines_create_the_tables_at_once(pg_url: str) -> None:
    from virtplane_api_ovirt.authz import Authz
    from virtplane_api_ovirt.authz.store import AuthzStore

    start = threading.Barrier(3)
    made: list[Any] = []
    errors: list[BaseException] = []

    def engine() -> None:
        start.wait()
        try:
            authz = Authz(AuthzStore.for_state(pg_url))
            made.append(authz)
            authz.store.index()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=engine) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    made[0].add_user("alice", PW)
    assert all("alice@internal" in a.store.index().users for a in made)
    for authz in made:
        authz.close()


def test_an_older_user_file_is_copied_in_once(pg_url: str, tmp_path: Path) -> None:
    from virtplane_api_ovirt.authz import Authz, Kind, ObjectRef
    from virtplane_api_ovirt.authz.store import AuthzStore

    old = Authz(tmp_path / "api-users.db")
    old.set_password("admin@internal", PW)
    old.add_user("alice", PW)
    old.grant("alice", "UserRole", ObjectRef(Kind.VM, "vm-1", "web1"))
    old.close()
    first = Authz(AuthzStore.for_state(pg_url, tmp_path / "api-users.db"))
    assert first.login("alice", PW).name == "alice@internal"
    assert len(first.store.index().by_object["vm-1"]) == 1
    later = Authz(tmp_path / "api-users.db")
    later.add_user("bob", PW)  # written to the old file afterwards: not copied again
    later.close()
    again = Authz(AuthzStore.for_state(pg_url, tmp_path / "api-users.db"))
    assert "bob@internal" not in again.store.index().users
    assert "alice@internal" in again.store.index().users
    with sqlite3.connect(tmp_path / "api-users.db") as conn:  # the file is left as it was
        assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 3
    first.close()
    again.close()


def test_database_away_is_a_clear_error_and_comes_back(pg_url: str,
                                                      monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    import psycopg

    from tests.state.conftest import PgSchemas
    from virtplane.errors import StateUnavailable
    from virtplane_api_ovirt.auth import Sessions
    from virtplane_api_ovirt.authz import Authz
    from virtplane_api_ovirt.authz.store import AuthzStore

    parts = urllib.parse.urlsplit(pg_url)
    secret = urllib.parse.urlunsplit(parts._replace(
        netloc=f"{parts.username or 'virtplane'}:s3cret-pw@{parts.hostname}:{parts.port}"))
    authz = Authz(AuthzStore.for_state(pg_url))
    authz.add_user("alice", PW)
    sessions = Sessions()
    sessions.share(authz.store)
    token, _ = sessions.issue("alice@internal")
    # the server drops the engine's idle connection (a restart): it connects again
    for call in (authz.store.index, lambda: sessions.check(token),
                 lambda: authz.add_user(f"u{len(authz.store.index().users)}", PW)):
        pid = authz.store._conn.info.backend_pid
        PgSchemas().admin(f"SELECT pg_terminate_backend({pid})")
        assert call()
        assert authz.store._conn.info.backend_pid != pid

    # no server at all: refused quickly, the message names the store, never a password
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise psycopg.OperationalError("connection refused")

    authz.close()
    monkeypatch.setattr(psycopg, "connect", refuse)
    for call in (lambda: authz.login("alice", PW), lambda: sessions.check(token),
                 lambda: authz.add_user("bob", PW)):
        with pytest.raises(StateUnavailable, match="state store postgresql://") as away:
            call()
        assert "API's users" in str(away.value) and "Traceback" not in str(away.value)
    other = Authz(AuthzStore.for_state(secret))
    with pytest.raises(StateUnavailable) as away:
        other.store.index()
    assert "s3cret-pw" not in str(away.value) and ":***@" in str(away.value)
    monkeypatch.undo()
    assert authz.login("alice", PW).name == "alice@internal"


def test_cli_writes_where_the_engines_read(pg_url: str, cli: Callable[..., Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from virtplane_api_ovirt.authz import Authz
    from virtplane_api_ovirt.authz.model import SYSTEM_ID
    from virtplane_api_ovirt.authz.store import AuthzStore

    monkeypatch.setattr("sys.stdin", io.StringIO(PW + "\n"))
    rc, _, err = cli("--state", pg_url, "user", "add", "alice", "--password-stdin")
    assert rc == 0, err
    rc, out, err = cli("--state", pg_url, "permission", "add", "alice", "UserRole", "system")
    assert rc == 0, err
    engine = Authz(AuthzStore.for_state(pg_url))
    assert engine.login("alice", PW).name == "alice@internal"
    assert engine.store.index().by_object[SYSTEM_ID]
    rc, out, _ = cli("--state", pg_url, "user", "list")
    assert rc == 0 and "alice@internal" in out
    engine.close()


def test_virtplane_api_set_password_writes_the_database(pg_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: Any) -> None:
    from virtplane_api_ovirt import cli
    from virtplane_api_ovirt.authz import Authz
    from virtplane_api_ovirt.authz.store import AuthzStore

    monkeypatch.setattr("sys.stdin", io.StringIO(PW + "\n"))
    assert cli.main(["--state", pg_url, "set-password", "--password-stdin"]) == 0
    assert cli.main(["--state", pg_url, "users"]) == 0
    assert "admin@internal" in capsys.readouterr().out
    engine = Authz(AuthzStore.for_state(pg_url))
    assert engine.login("admin@internal", PW).name == "admin@internal"
    engine.close()


def test_two_api_engines_behind_a_load_balancer(pg_url: str, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """Log in at A, call B with A's token; a user and a permission added through A
    hold at B; a logout at B is refused at A at once; with the database away a login
    is a clear 503, without a traceback."""
    import psycopg

    from virtplane import Manager, config
    from virtplane_api_ovirt import Server, create_app
    from virtplane_api_ovirt.auth import UserStore
    from virtplane_api_ovirt.authz.model import SYSTEM

    UserStore.for_state(pg_url).set_password("admin@internal", PW)
    servers: list[Any] = []
    managers: list[Any] = []
    try:
        for _ in range(2):
            m = Manager(config.load(), state_path=pg_url)
            managers.append(m)
            app = create_app(m)
            server = Server(app).start()
            server.api = app.state.api
            servers.append(server)
        managers[0].datacenters.add("dc1")
        a, b = (s.url.removesuffix("/ovirt-engine/api") for s in servers)

        def token(base: str, user: str) -> str:
            reply = requests.post(f"{base}/ovirt-engine/sso/oauth/token", data={
                "grant_type": "password", "scope": "ovirt-app-api", "username": user,
                "password": PW}, timeout=30)
            assert reply.status_code == 200, reply.text
            return str(reply.json()["access_token"])

        def get(base: str, tok: str, path: str = "") -> requests.Response:
            return requests.get(f"{base}/ovirt-engine/api{path}", timeout=30, headers={
                "Authorization": f"Bearer {tok}", "Accept": "application/json"})

        admin = token(a, "admin@internal")
        assert get(b, admin).status_code == 200  # A's token at B
        servers[0].api.authz.add_user("carol", PW)  # through engine A
        carol = token(b, "carol@internal")  # logs in at B
        assert "dc1" not in get(b, carol, "/datacenters").text
        servers[0].api.authz.grant("carol", "SuperUser", SYSTEM)  # given at A ...
        reply = get(b, carol, "/datacenters")
        assert reply.status_code == 200 and "dc1" in reply.text  # ... holds at B
        out = requests.post(f"{b}/ovirt-engine/services/sso-logout", data={"token": admin},
                            timeout=30)
        assert out.status_code == 200
        assert get(a, admin).status_code == 401  # logged out at B: refused at A at once

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise psycopg.OperationalError("connection refused")

        servers[0].api.authz.store.close()
        monkeypatch.setattr(psycopg, "connect", refuse)
        reply = requests.post(f"{a}/ovirt-engine/sso/oauth/token", data={
            "grant_type": "password", "scope": "ovirt-app-api", "username": "carol",
            "password": PW}, timeout=30)
        assert reply.status_code == 503, reply.text
        assert "unreachable" in reply.json()["error"]
        # a request with a token: the session cannot be checked, a clear 503 too
        reply = get(a, carol, "/datacenters")
        assert reply.status_code == 503, reply.text
        assert "unreachable" in reply.text
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
        assert any("unreachable" in r.getMessage() for r in caplog.records)
        monkeypatch.undo()
        assert token(a, "carol@internal")  # back
    finally:
        for s in servers:
            s.stop()
        for m in managers:
            m.close()
