"""Users, roles and permissions through the real oVirt SDK, against real slapd.

The administrator's calls are written as the SDK's own examples write them
(``users_service().add(types.User(user_name=..., domain=types.Domain(...)))``,
``permissions_service().add(types.Permission(user=..., role=...))``,
``groups_service().add(...)``, ``roles_service().add(...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

import pytest

from tests.authz.conftest import PW, SUFFIX, Slapd
from tests.conftest import need


@pytest.fixture(autouse=True)
def _ldap3() -> None:
    need(find_spec("ldap3") is not None, "ldap3 is not installed (requirements-dev.txt)")


def _vm(conn: Any, name: str) -> Any:
    found = conn.system_service().vms_service().list(search=f"name={name}")
    assert len(found) == 1, f"{name} not visible: {found}"
    return found[0]


def _add_local(admin: Any, name: str) -> Any:
    import ovirtsdk4.types as types

    return admin.system_service().users_service().add(
        types.User(user_name=f"{name}@internal-authz",
                   domain=types.Domain(name="internal-authz")))


def _grant(admin: Any, service: Any, role: str, user_id: str | None = None,
           group_id: str | None = None) -> Any:
    import ovirtsdk4.types as types

    return service.permissions_service().add(types.Permission(
        user=types.User(id=user_id) if user_id else None,
        group=types.Group(id=group_id) if group_id else None,
        role=types.Role(name=role)))


def test_user_role_on_one_vm(login: Callable[..., Any]) -> None:
    import ovirtsdk4
    import ovirtsdk4.types as types

    admin = login()
    vms = admin.system_service().vms_service()
    alice_user = _add_local(admin, "alice")
    vm1 = _vm(admin, "vm1")
    _grant(admin, vms.vm_service(vm1.id), "UserRole", user_id=alice_user.id)
    perms = vms.vm_service(vm1.id).permissions_service().list()
    roles = {r.id: r.name for r in admin.system_service().roles_service().list()}
    assert [(p.user.id, roles[p.role.id]) for p in perms] == [(alice_user.id, "UserRole")]

    alice = login("alice@internal", PW)
    mine = alice.system_service().vms_service()
    assert [v.name for v in mine.list()] == ["vm1"], "alice sees only her VM"
    mine.vm_service(vm1.id).start()
    assert mine.vm_service(vm1.id).get().status == types.VmStatus.UP
    mine.vm_service(vm1.id).stop()
    assert mine.vm_service(vm1.id).get().status == types.VmStatus.DOWN

    vm2 = _vm(admin, "vm2")
    with pytest.raises(ovirtsdk4.AuthError) as refused:
        mine.vm_service(vm2.id).start()
    assert "403" in str(refused.value) or "VM_BASIC_OPERATIONS" in str(refused.value)
    assert "VM_BASIC_OPERATIONS" in str(refused.value) and "vm2" in str(refused.value)
    with pytest.raises(ovirtsdk4.AuthError, match="CREATE_VM"):
        mine.add(types.Vm(name="mine2", cluster=types.Cluster(name="cA"),
                          template=types.Template(name="Blank")))
    with pytest.raises(ovirtsdk4.AuthError, match="DELETE_VM"):
        mine.vm_service(vm1.id).remove()
    with pytest.raises(ovirtsdk4.AuthError, match="MANIPULATE_PERMISSIONS"):
        _grant(alice, mine.vm_service(vm1.id), "UserRole", user_id=alice_user.id)

    # the audit trail: who started vm1, and the refusal
    events = [e.description for e in admin.system_service().events_service().list(max=50)]
    assert any(d.startswith("alice@internal: POST /vms/{id}/start on vm 'vm1' (as UserRole")
               for d in events), events
    assert any(d.startswith("Refused: POST /vms/{id}/start by alice@internal") for d in events)


def test_cluster_admin_of_a_cannot_touch_b(login: Callable[..., Any]) -> None:
    import ovirtsdk4
    import ovirtsdk4.types as types

    admin = login()
    system = admin.system_service()
    bob = system.users_service()
    _add_local(admin, "alice")  # alice is the ClusterAdmin here
    alice_id = bob.list(search="usrname=alice@internal")[0].id
    ca = system.clusters_service().list(search="name=cA")[0]
    _grant(admin, system.clusters_service().cluster_service(ca.id), "ClusterAdmin",
           user_id=alice_id)

    alice = login("alice@internal", PW).system_service()
    assert sorted(c.name for c in alice.clusters_service().list()) == ["cA"]
    assert sorted(h.name for h in alice.hosts_service().list()) == ["hA"]
    assert sorted(v.name for v in alice.vms_service().list()) == ["vm1", "vm2"]
    new = alice.vms_service().add(types.Vm(name="vmA", cluster=types.Cluster(name="cA"),
                                           template=types.Template(name="Blank"),
                                           memory=256 << 20))
    alice.vms_service().vm_service(new.id).remove()

    vm3 = _vm(admin, "vm3")
    hb = system.hosts_service().list(search="name=hB")[0]
    for call, needs in [
        (lambda: alice.vms_service().vm_service(vm3.id).start(), "VM_BASIC_OPERATIONS"),
        (lambda: alice.vms_service().vm_service(vm3.id).get(), "any permission"),
        (lambda: alice.hosts_service().host_service(hb.id).deactivate(), "MANIPULATE_HOST"),
        (lambda: alice.vms_service().add(types.Vm(name="vmB", cluster=types.Cluster(name="cB"),
                                                  template=types.Template(name="Blank"))),
         "CREATE_VM"),
    ]:
        with pytest.raises(ovirtsdk4.AuthError) as refused:
            call()
        assert needs in str(refused.value) and "cluster 'cB'" in str(refused.value)


def test_directory_group_grants_its_members(login: Callable[..., Any], slapd: Slapd) -> None:
    import ovirtsdk4
    import ovirtsdk4.types as types

    admin = login()
    system = admin.system_service()
    domains = [d.name for d in system.domains_service().list()]
    assert domains == ["internal-authz", "corp"]
    group = system.groups_service().add(types.Group(name="vmusers",
                                                    domain=types.Domain(name="corp")))
    vm1 = _vm(admin, "vm1")
    _grant(admin, system.vms_service().vm_service(vm1.id), "UserRole", group_id=group.id)

    carol = login("carol@corp", PW).system_service()
    assert [v.name for v in carol.vms_service().list()] == ["vm1"]
    carol.vms_service().vm_service(vm1.id).start()
    carol.vms_service().vm_service(vm1.id).stop()
    users = {u.user_name: u for u in system.users_service().list()}
    assert "carol@corp" in users and users["carol@corp"].domain.name == "corp"
    groups = system.users_service().user_service(users["carol@corp"].id).groups_service().list()
    assert [g.name for g in groups] == ["vmusers"]

    dave = login("dave@corp", PW).system_service()  # in the directory, not in the group
    assert dave.vms_service().list() == []
    with pytest.raises(ovirtsdk4.AuthError, match="VM_BASIC_OPERATIONS"):
        dave.vms_service().vm_service(vm1.id).start()

    # removed from the directory: the next login fails
    slapd.delete(f"uid=carol,ou=people,{SUFFIX}")
    with pytest.raises(ovirtsdk4.AuthError, match="Cannot authenticate"):
        login("carol@corp", PW).system_service().vms_service().list()


def test_repeated_wrong_passwords_lock_the_account(login: Callable[..., Any]) -> None:
    import ovirtsdk4

    admin = login()
    for _ in range(3):  # max_failed_logins = 3 in the test configuration
        with pytest.raises(ovirtsdk4.AuthError):
            login("alice@internal", "wrong-password").test(raise_exception=True)
    with pytest.raises(ovirtsdk4.AuthError, match="locked"):
        login("alice@internal", PW).test(raise_exception=True)
    events = admin.system_service().events_service().list(search="type=100030")
    assert [e.code for e in events] == [100030]
    assert "alice@internal was locked" in events[0].description


def test_custom_role_as_the_sdk_example_adds_it(login: Callable[..., Any]) -> None:
    import ovirtsdk4.types as types

    admin = login()
    roles = admin.system_service().roles_service()
    role = roles.add(types.Role(name="myrole", administrative=False,
                                description="My custom role to create virtual machines",
                                permits=[types.Permit(id="1"), types.Permit(id="1300")]))
    permits = roles.role_service(role.id).permits_service().list()
    assert sorted(p.name for p in permits) == ["create_vm", "login"]
    alice_id = _add_local(admin, "alice").id
    ca = admin.system_service().clusters_service().list(search="name=cA")[0]
    admin.system_service().clusters_service().cluster_service(ca.id).permissions_service().add(
        types.Permission(user=types.User(id=alice_id), role=types.Role(name="myrole")))
    alice = login("alice@internal", PW).system_service()
    vm = alice.vms_service().add(types.Vm(name="made", cluster=types.Cluster(name="cA"),
                                          template=types.Template(name="Blank"),
                                          memory=256 << 20))
    assert vm.name == "made"
