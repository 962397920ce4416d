"""POST /hosts: URI parameters that reach the engine's own machine need SuperUser.

A user allowed to add hosts to a cluster (ClusterAdmin there) could give
``?keyfile=/root/.ssh/id_rsa``, ``?socket=/run/...`` or ``?no_verify=1`` and make the
engine use its own keys and sockets, or trust any host. Such a URI is now refused
(403, naming each part) unless the user is SuperUser on System; nothing is made. An
unknown parameter is a 400 for everyone; a bare address must be a host name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.api.conftest import PASSWORD

BOB = ("bob@internal", "bob-password-7")


@pytest.fixture
def api(world: Any, users: Any) -> Iterator[tuple[str, Any]]:
    """The API over ``world`` with bob, ClusterAdmin on c1."""
    from virtplane_api_ovirt import Server, create_app
    from virtplane_api_ovirt.authz.model import Kind, ObjectRef

    app = create_app(world, users=users)
    authz = app.state.api.authz
    authz.add_user("bob", BOB[1])
    cl = world.clusters.get("c1")
    authz.grant("bob", "ClusterAdmin", ObjectRef(Kind.CLUSTER, cl.id, "c1"))
    server = Server(app).start()
    yield f"{server.url}", world
    server.stop()


def _add(url: str, auth: tuple[str, str], name: str, address: str) -> requests.Response:
    body = {"name": name, "address": address, "cluster": {"name": "c1"}}
    return requests.post(f"{url}/hosts", data=json.dumps(body), auth=auth, timeout=30,
                         headers={"Accept": "application/json",
                                  "Content-Type": "application/json"})


def _names(world: Any) -> list[str]:
    return sorted(h.name for h in world.hosts.list())


def test_a_cluster_admin_adds_a_plain_host(api: tuple[str, Any]) -> None:
    url, world = api
    reply = _add(url, BOB, "h2", "test:///default")
    assert reply.status_code == 201, reply.text
    assert _names(world) == ["h1", "h2"]


@pytest.mark.parametrize("query, named", [
    ("keyfile=/root/.ssh/id_rsa", "keyfile=/root/.ssh/id_rsa"),
    ("socket=/run/libvirt/libvirt-sock", "socket=/run/libvirt/libvirt-sock"),
    ("no_verify=1", "no_verify=1"),
    ("known_hosts_verify=ignore", "known_hosts_verify=ignore"),
    ("pkipath=/etc/pki/libvirt&no_tty=1", "pkipath=/etc/pki/libvirt"),
    ("K%65yfile=/k", "keyfile=/k"),
])
def test_privileged_parameters_need_superuser(api: tuple[str, Any], query: str,
                                              named: str) -> None:
    url, world = api
    reply = _add(url, BOB, "h2", f"test:///default?{query}")
    assert reply.status_code == 403, reply.text
    detail = reply.json()["detail"]
    assert named in detail and "SuperUser on System" in detail
    assert _names(world) == ["h1"]  # nothing made
    from virtplane_api_ovirt.authz.model import SYSTEM_ID

    refused = [msg for _, _, msg in world.store.events(SYSTEM_ID)
               if msg.startswith("Refused: POST /hosts by bob@internal")]
    assert len(refused) == 1 and named in refused[0]  # audited
    # the administrator may: the check lets it through to the driver (the test
    # driver reads none of these, so the host is added)
    reply = _add(url, ("admin@internal", PASSWORD), "h3", f"test:///default?{query}")
    assert reply.status_code == 201, reply.text
    assert _names(world) == ["h1", "h3"]


@pytest.mark.parametrize("who", [BOB, ("admin@internal", PASSWORD)])
def test_an_unknown_parameter_is_a_400_for_everyone(api: tuple[str, Any],
                                                    who: tuple[str, str]) -> None:
    url, world = api
    reply = _add(url, who, "h2", "test:///default?keyfle=/k")
    assert reply.status_code == 400, reply.text
    assert "unknown parameter 'keyfle'" in reply.json()["detail"]
    assert _names(world) == ["h1"]


@pytest.mark.parametrize("address", ["-oProxyCommand=x", "h1?keyfile=/k", "h1/x", "a b",
                                     "h1@h2"])
def test_a_bare_address_must_be_a_host_name(api: tuple[str, Any], address: str) -> None:
    url, world = api
    reply = _add(url, ("admin@internal", PASSWORD), "h2", address)
    assert reply.status_code == 400, reply.text
    detail = reply.json()["detail"]
    assert repr(address) in detail and "host name or IP address" in detail
    assert _names(world) == ["h1"]
