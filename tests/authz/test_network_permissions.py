"""Permissions on networks (``/networks/{id}/permissions``), which the API derives from
data centers and NICs rather than stores: granted, listed, inherited from the data
center, refused with the missing permission named, and 404 for a network that is
not there."""

from __future__ import annotations

from typing import Any

import requests

from tests.api.conftest import PASSWORD
from tests.api.conftest import serve as serve  # fixtures
from tests.api.conftest import users as users
from tests.api.conftest import world as world
from virtplane_api_ovirt.authz.model import Kind

PW = "net-pass-12"
JSON = {"Accept": "application/json", "Content-Type": "application/json"}


def _grant(server: Any, auth: tuple[str, str], net_id: str, user_id: str,
           role: str) -> requests.Response:
    return requests.post(f"{server.url}/networks/{net_id}/permissions", auth=auth,
                         headers=JSON, timeout=10,
                         json={"user": {"id": user_id}, "role": {"name": role}})


def test_permissions_on_a_network(world: Any, users: Any, serve: Any) -> None:
    for name in ("netuser", "dcadmin", "nobody"):
        users.set_password(name, PW)
    store = users.authz.store
    ix = store.index()
    dc1 = world.datacenters.get("dc1").id
    store.add_permissions([(ix.user("dcadmin").id, "user", ix.role("DataCenterAdmin").id,
                            Kind.DATACENTER, dc1)])
    server = serve()
    admin = ("admin@internal", PASSWORD)
    nets = requests.get(f"{server.url}/networks", auth=admin, headers=JSON, timeout=10).json()
    net = next(n for n in nets["network"] if n["name"] == "ovirtmgmt")
    netuser = ix.user("netuser").id

    made = _grant(server, admin, net["id"], netuser, "GlusterAdmin")
    assert made.status_code == 201, made.text
    listed = requests.get(f"{server.url}/networks/{net['id']}/permissions", auth=admin,
                          headers=JSON, timeout=10).json()["permission"]
    assert [(p["user"]["id"], p["role"]["id"], p["network"]["id"]) for p in listed] == [
        (netuser, ix.role("GlusterAdmin").id, net["id"])]
    assert store.index().by_object[net["id"]][0].object_kind == Kind.NETWORK

    # nobody holds nothing there: refused, naming what is missing
    refused = _grant(server, ("nobody", PW), net["id"], netuser, "NetworkAdmin")
    assert refused.status_code == 403
    assert "MANIPULATE_PERMISSIONS" in refused.text and "ovirtmgmt" in refused.text
    # the data center's administrator may: the network is below its data center
    inherited = _grant(server, ("dcadmin", PW), net["id"], netuser, "NetworkAdmin")
    assert inherited.status_code == 201, inherited.text
    missing = _grant(server, admin, "00000000-0000-0000-0000-00000000beef", netuser,
                     "NetworkAdmin")
    assert missing.status_code == 404 and "no network" in missing.text
