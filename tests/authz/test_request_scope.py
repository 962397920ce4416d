"""One look at the authz tables' version per request (``request_scope``).

Outside a request every check asks the database whether the tables changed (on
PostgreSQL a round trip); inside one, the first look is the only one, and the
checks after it reuse that index. A write through the same store is still seen
by the very next check; another engine's (or a CLI's) from the next request on.

Two :class:`Authz` objects on one store stand for two engines; the version reads
are counted with a wrapper on the store's backend."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.authz.test_shared_principals import _pg_url

PW = "scope-pass-1"


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A state location of each backend: a file path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "state.db")
        return
    yield from _pg_url()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _pg_url()


@pytest.fixture
def engines(location: str) -> Iterator[Callable[[], Any]]:
    """``engine()`` -> a new Authz on ``location``'s tables (another engine)."""
    from virtplane_api_ovirt.authz import Authz
    from virtplane_api_ovirt.authz.store import AuthzStore

    made: list[Any] = []

    def make() -> Any:
        authz = Authz(AuthzStore.for_state(location))
        made.append(authz)
        return authz

    yield make
    for authz in made:
        authz.close()


def count_versions(store: Any) -> list[int]:
    """The versions ``store`` reads from its database from now on (one per read)."""
    reads: list[int] = []
    backend = store.backend
    real = backend.version

    def version(conn: Any) -> int:
        found = int(real(conn))
        reads.append(found)
        return found

    backend.version = version
    return reads


class Flat:
    """A tree where every object hangs right under System."""

    def parents(self, obj: Any) -> list[Any]:
        from virtplane_api_ovirt.authz.model import SYSTEM, Kind

        return [] if obj.kind == Kind.SYSTEM else [SYSTEM]

    def resolve(self, kind: Any, name_or_id: str) -> Any:
        from virtplane_api_ovirt.authz.model import ObjectRef

        return ObjectRef(kind, name_or_id)


def _vm(n: int) -> Any:
    from virtplane_api_ovirt.authz import Kind, ObjectRef

    return ObjectRef(Kind.VM, f"vm-{n}", f"web{n}")


def _may(authz: Any, user: str, n: int) -> bool:
    from virtplane_api_ovirt.authz import ActionGroup

    return bool(authz.check(user, ActionGroup.VM_BASIC_OPERATIONS, _vm(n), Flat()).granted)


# ------------------------------------------------------------ every backend


def test_the_checks_of_one_request_read_the_version_once(engines: Callable[[], Any]) -> None:
    from virtplane_api_ovirt.authz import Kind

    a = engines()
    alice = a.add_user("alice", PW)
    role = a.store.index().role("UserRole").id
    a.store.add_permissions([(alice.id, "user", role, Kind.VM, _vm(n).id)
                             for n in range(0, 40, 2)])
    a.store.index()
    reads = count_versions(a.store)
    with a.request():
        assert a.active("alice@internal") is not None  # the session's user
        answers = [_may(a, "alice@internal", n) for n in range(40)]  # a filtered list
        assert a.store.index().user("alice").id == alice.id
    assert answers == [n % 2 == 0 for n in range(40)]
    assert len(reads) == 1, reads
    # outside a request (a script, a test) each check still asks
    reads.clear()
    assert [_may(a, "alice@internal", n) for n in range(5)] == [True, False] * 2 + [True]
    assert len(reads) == 5
    # the next request asks again, once
    reads.clear()
    with a.request():
        assert _may(a, "alice@internal", 0) and not _may(a, "alice@internal", 1)
    assert len(reads) == 1


def test_a_grant_at_another_engine_holds_from_the_next_request(
        engines: Callable[[], Any]) -> None:
    a, b = engines(), engines()
    a.add_user("alice", PW)
    with b.request():
        assert not _may(b, "alice@internal", 1)
        a.grant("alice", "UserRole", _vm(1))  # at A, while B's request runs
        assert not _may(b, "alice@internal", 1)  # B's request keeps the view it began with
    with b.request():  # B's next request
        assert _may(b, "alice@internal", 1)
    assert _may(b, "alice@internal", 1)  # and outside any request


def test_a_revoke_at_another_engine_refuses_from_the_next_request(
        engines: Callable[[], Any]) -> None:
    a, b = engines(), engines()
    a.add_user("alice", PW)
    perm = a.grant("alice", "UserRole", _vm(1))
    with b.request():
        assert _may(b, "alice@internal", 1)
        a.revoke(perm.id)
        assert _may(b, "alice@internal", 1)
    with b.request():
        assert not _may(b, "alice@internal", 1)
    a.remove_user("alice")  # a removed user: refused at B's next request too
    with b.request():
        assert b.active("alice@internal") is None


def test_a_write_through_this_engine_is_seen_at_once(engines: Callable[[], Any]) -> None:
    a, b = engines(), engines()
    a.add_user("alice", PW)
    reads = count_versions(b.store)
    with b.request():
        assert not _may(b, "alice@internal", 1)
        perm = b.grant("alice", "UserRole", _vm(1))  # through B, inside the request
        assert _may(b, "alice@internal", 1)  # the next check sees it
        b.revoke(perm.id)
        assert not _may(b, "alice@internal", 1)
        b.add_user("bob", PW)
        assert b.active("bob@internal") is not None
        a.grant("bob", "UserRole", _vm(2))  # at A: not part of B's view ...
        assert not _may(b, "bob@internal", 2)
    assert reads, "B never read the version"
    with b.request():
        assert _may(b, "bob@internal", 2)  # ... until B's next request


def test_a_context_copied_in_a_request_asks_again_once_it_ended(
        engines: Callable[[], Any]) -> None:
    """A task or callback that copied the request's context and outlives it is
    outside any request: it sees another engine's writes at its next check."""
    a, b = engines(), engines()
    a.add_user("alice", PW)
    with b.request():
        assert not _may(b, "alice@internal", 1)
        later = contextvars.copy_context()
    a.grant("alice", "UserRole", _vm(1))
    assert later.run(_may, b, "alice@internal", 1)


# ------------------------------------------------ the API, on PostgreSQL


def test_api_requests_read_the_version_once_and_follow_other_engines(pg_url: str) -> None:
    """Two engines serving the API on one database: at B, a VM list of a user seeing
    many VMs and a grant checked action by action each read the version once; a grant
    and a revoke through A hold at B's next request."""
    from virtplane import Manager, config, model
    from virtplane_api_ovirt import Server, create_app
    from virtplane_api_ovirt.auth import UserStore
    from virtplane_api_ovirt.authz import Kind, ObjectRef

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
        m = managers[0]
        m.datacenters.add("dc1")
        cluster = m.clusters.add("c1", "dc1")
        vms = []
        for n in range(30):
            vm = model.Vm(spec=model.VmSpec(name=f"vm{n:02d}", memory_mib=64, os="other"),
                          cluster_id=cluster.id)
            m.store.add(vm)
            vms.append(vm)
        a, b = (s.api.authz for s in servers)
        a.add_user("bob", PW)
        a.add_user("carol", PW)
        for vm in vms[:20]:
            a.grant("bob", "UserVmManager", ObjectRef(Kind.VM, vm.id, vm.spec.name))
        url = servers[1].url

        def call(user: str, method: str, path: str, body: str | None = None
                 ) -> requests.Response:
            return requests.request(method, f"{url}{path}", auth=(user, PW), data=body,
                                    timeout=30, headers={"Accept": "application/json",
                                                         "Content-Type": "application/xml"})

        def names(user: str) -> list[str]:
            reply = call(user, "GET", "/vms")
            assert reply.status_code == 200, reply.text
            return sorted(v["name"] for v in reply.json().get("vm", []))

        assert len(names("bob")) == 20  # logs in (a write), so not counted
        assert names("carol") == []
        reads = count_versions(b.store)
        assert len(names("bob")) == 20
        assert len(reads) == 1, reads
        # bob may hand out permissions on his VMs, but not a role with more than he has:
        # ClusterAdmin's ~30 actions are checked one by one, refused, nothing written
        reads.clear()
        reply = call("bob", "POST", f"/vms/{vms[0].id}/permissions",
                     "<permission><role><name>ClusterAdmin</name></role>"
                     "<user><user_name>carol</user_name></user></permission>")
        assert reply.status_code == 403 and "cannot give role" in reply.text, reply.text
        assert len(reads) == 1, reads
        reads.clear()
        reply = call("bob", "GET", f"/vms/{vms[25].id}")  # not his: refused, one read
        assert reply.status_code in (403, 404), reply.text
        assert len(reads) == 1, reads

        perm = a.grant("carol", "UserRole", ObjectRef(Kind.VM, vms[3].id, "vm03"))  # at A
        assert names("carol") == ["vm03"]  # B's next request
        a.revoke(perm.id)
        assert names("carol") == []
        reply = call("carol", "GET", f"/vms/{vms[3].id}")
        assert reply.status_code in (403, 404), reply.text
    finally:
        for s in servers:
            s.stop()
        for m in managers:
            m.close()
