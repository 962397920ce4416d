"""``GET /vms`` for a user who sees part of the VMs reads only that part (through the
store's id and cluster indexes): the answer must be exactly what a check of every
VM would give, and follow VMs that are added, moved and removed."""

from __future__ import annotations

from typing import Any

import requests

from tests.api.conftest import PASSWORD
from tests.api.conftest import serve as serve  # fixtures
from tests.api.conftest import users as users
from tests.api.conftest import world as world
from virtplane import model
from virtplane_api_ovirt.authz import StoreTree
from virtplane_api_ovirt.authz.model import Kind
from virtplane_api_ovirt.authz.policy import Visibility

PW = "scope-pass-1"


def _vm(m: Any, name: str, cluster: str) -> model.Vm:
    vm = model.Vm(spec=model.VmSpec(name=name, memory_mib=64, os="other"),
                  cluster_id=m.clusters.get(cluster).id)
    m.store.add(vm)
    return vm


def _names(server: Any, user: str, password: str = PW) -> list[str]:
    reply = requests.get(f"{server.url}/vms", auth=(user, password), timeout=10,
                         headers={"Accept": "application/json"})
    assert reply.status_code == 200, reply.text
    return sorted(v["name"] for v in reply.json().get("vm", []))


def test_a_restricted_vm_list_is_exactly_what_the_user_sees(world: Any, users: Any,
                                                            serve: Any) -> None:
    m = world
    m.clusters.add("c2", "dc1")
    m.datacenters.add("dc2")
    m.clusters.add("c3", "dc2")
    vms = {name: _vm(m, name, cl) for name, cl in
           (("a1", "c1"), ("a2", "c1"), ("b1", "c2"), ("b2", "c2"), ("d1", "c3"))}
    store = users.authz.store
    role = store.index().role("UserRole").id
    grants = {"on-cluster": (Kind.CLUSTER, m.clusters.get("c1").id),
              "on-dc": (Kind.DATACENTER, m.datacenters.get("dc2").id),
              "on-vm": (Kind.VM, vms["b2"].id)}
    for user in (*grants, "nothing"):
        users.set_password(user, PW)
    ix = store.index()
    store.add_permissions([(ix.user(u).id, "user", role, kind, oid)
                           for u, (kind, oid) in grants.items()])
    server = serve()

    expected = {"on-cluster": ["a1", "a2"], "on-dc": ["d1"], "on-vm": ["b2"], "nothing": []}
    for user, names in expected.items():
        assert _names(server, user) == names, user
        # the same answer as judging every VM one by one
        seen = Visibility(store.index(), store.index().user(user), StoreTree(m.store))
        assert sorted(v.name for v in m.store.list(model.Vm)
                      if seen.sees(Kind.VM, v)) == names
    assert _names(server, "admin@internal", PASSWORD) == ["a1", "a2", "b1", "b2", "d1"]

    # a VM added to the cluster appears; one moved out leaves; a removed one goes
    _vm(m, "a3", "c1")
    moved = m.store.get(model.Vm, vms["a1"].id)
    moved.cluster_id = m.clusters.get("c2").id
    m.store.update(moved)
    m.store.remove(model.Vm, vms["b2"].id)
    assert _names(server, "on-cluster") == ["a2", "a3"]
    assert _names(server, "on-vm") == []
    # a VM moved into the data center's cluster is the data center user's
    back = m.store.get(model.Vm, vms["a2"].id)
    back.cluster_id = m.clusters.get("c3").id
    m.store.update(back)
    assert _names(server, "on-dc") == ["a2", "d1"]
    assert _names(server, "on-cluster") == ["a3"]

