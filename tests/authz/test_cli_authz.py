"""The CLI's user, role and permission commands, and the check of commands an engine
runs for an OS user (the rules; the engine's socket owner lookup is tested here too)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from virtplane import model


def test_user_role_permission_commands(cli: Callable[..., tuple[int, str, str]],
                                       manager_factory: Callable[..., Any],
                                       monkeypatch: Any, tmp_path: Any) -> None:
    import io

    m = manager_factory()
    m.datacenters.add("dc1")
    m.clusters.add("c1", "dc1")
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "c1")
    state = ["--state", str(tmp_path / "state.db")]
    monkeypatch.setattr("sys.stdin", io.StringIO("pass-word-1\n"))
    assert cli(*state, "user", "add", "alice", "--password-stdin")[0] == 0
    rc, out, _ = cli(*state, "role", "show", "UserRole")
    assert rc == 0 and "vm_basic_operations" in out and "create_vm" not in out
    assert cli(*state, "role", "add", "starter", "vm_basic_operations", "1")[0] == 0
    rc, out, err = cli(*state, "permission", "add", "alice", "UserRole", "vm:vm1")
    assert rc == 0, err
    perm_id = out.split()[1].rstrip(":")
    rc, out, _ = cli(*state, "permission", "explain", "alice", "vm_basic_operations", "vm:vm1")
    assert rc == 0 and "role UserRole on vm 'vm1'" in out
    rc, out, _ = cli(*state, "permission", "explain", "alice", "create_vm", "cluster:c1")
    assert rc == 1
    assert "lacks permission CREATE_VM on cluster 'c1'" in out
    assert "cluster 'c1' → data center 'dc1' → System" in out
    assert cli(*state, "permission", "remove", perm_id)[0] == 0
    rc, out, _ = cli(*state, "permission", "explain", "alice", "vm_basic_operations", "vm:vm1")
    assert rc == 1 and "it holds no role there" in out
    assert cli(*state, "user", "remove", "alice")[0] == 0
    rc, _, err = cli(*state, "permission", "explain", "alice", "login", "system")
    assert rc == 1 and "no user 'alice'" in err


def test_engine_command_check_for_an_os_user(manager_factory: Callable[..., Any]) -> None:
    from virtplane.cli import _common
    from virtplane_api_ovirt.authz import Authz
    from virtplane_api_ovirt.authz.commands import check_command
    from virtplane_engine.commands import parse

    m = manager_factory()
    m.datacenters.add("dc1")
    m.clusters.add("c1", "dc1")
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "c1")
    m.vms.create(model.VmSpec(name="vm2", memory_mib=256), "c1")
    authz = Authz.for_manager(m)
    authz.add_user("alice", "pass-word-1")
    from virtplane_api_ovirt.authz.tree import StoreTree

    authz.grant("alice", "UserRole", StoreTree(m.store).resolve(model_kind("vm"), "vm1"))
    _common.share_manager(m)
    try:
        def check(*argv: str, who: str = "alice@internal") -> str | None:
            return check_command(parse(argv), argv, who)

        assert check("vm", "start", "vm1") is None
        refused = check("vm", "start", "vm2")
        assert refused and "VM_BASIC_OPERATIONS on vm 'vm2'" in refused
        refused = check("vm", "create", "x", "--cluster", "c1")
        assert refused and "CREATE_VM on cluster 'c1'" in refused
        refused = check("dc", "add", "dc9")
        assert refused and "CREATE_STORAGE_POOL on System" in refused
        assert check("dc", "add", "dc9", who="admin@internal") is None
        refused = check("vm", "list", who="mallory@internal")
        assert refused and "not a virtplane user" in refused
        events = [r[4] for r in m.store.events_since(0, 100)]
        assert any(e.startswith("alice@internal: virtplane vm start vm1 (as UserRole") for e in
                   events)
        assert any(e.startswith("Refused: virtplane vm start vm2 by alice@internal")
                   for e in events)
    finally:
        _common.share_manager(None)
        authz.close()


def model_kind(name: str) -> Any:
    from virtplane_api_ovirt.authz.model import KIND_ALIASES

    return KIND_ALIASES[name]


def test_engine_reads_the_socket_owner() -> None:
    import os

    from virtplane_engine.peer import peer_uid, user_of

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            conn, addr = server.accept()
            with conn:
                assert peer_uid(addr, server.getsockname()) == os.getuid()
                assert client.getsockname() == addr
    assert user_of(0) == "admin@internal"
    assert user_of(None) is None
