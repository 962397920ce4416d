"""``PUT /clusters/{id}`` goes through the core's ``Clusters.update``: the checks run on
the cluster and its data center as they are when the write happens, and only what the
body changes is written.

Before: the handler read the cluster, checked the body against it (and against its data
center as read then), and wrote back through ``store.modify`` the version it had read,
even for a rename or a fencing switch: a version changed meanwhile was overwritten, and
a data center raised meanwhile did not stop a cluster from going below it.
The core side: tests/core/test_cluster_set_update.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.api.raw_http import JSON, XML, Client, fault
from virtplane import model

FLOOR = ("[cluster 'c8' cannot be at compatibility version 4.6: its data center 'd6' is at "
         "4.7, and a cluster is never older than its data center (whose version is never "
         "lowered); use a version from 4.7 up]")


def _meanwhile(world: Any, monkeypatch: pytest.MonkeyPatch,
               change: Callable[[Callable[..., Any]], None]) -> None:
    """Run ``change`` (another writer) once, just before the first write of a cluster."""
    store = world.context.store
    real = store.modify
    done: list[bool] = []

    def racing(cls: Any, key: str, fn: Any, **kw: Any) -> Any:
        if cls is model.Cluster and not done:
            done.append(True)
            change(real)
        return real(cls, key, fn, **kw)

    monkeypatch.setattr(store, "modify", racing)


def _version(level: str) -> Callable[[Any], None]:
    return lambda obj: setattr(obj, "compat_version", level)


def test_a_rename_keeps_a_version_changed_meanwhile(client: Client, world: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    world.datacenters.add("d6", compat_version="4.6")
    cl = world.clusters.add("c6", "d6", compat_version="4.6")
    _meanwhile(world, monkeypatch, lambda real: real(model.Cluster, cl.id, _version("4.7")))
    body = b"<cluster><name>c6b</name><description>renamed</description></cluster>"
    status, _h, reply = client.api("PUT", f"/clusters/{cl.id}", body, XML)
    assert status == 200, reply
    assert b"<minor>7</minor>" in reply and b"<name>c6b</name>" in reply
    after = world.clusters.get(cl.id)
    assert (after.name, after.compat_version) == ("c6b", "4.7")


def test_fencing_alone_keeps_a_version_changed_meanwhile_json(
        client: Client, world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    world.datacenters.add("d6", compat_version="4.6")
    cl = world.clusters.add("c6", "d6", compat_version="4.6")
    _meanwhile(world, monkeypatch, lambda real: real(model.Cluster, cl.id, _version("4.8")))
    body = {"fencing_policy": {"enabled": False}}
    status, _h, reply = client.api("PUT", f"/clusters/{cl.id}", json.dumps(body).encode(),
                                   JSON)
    assert status == 200, reply
    shown = json.loads(reply)
    assert str(shown["version"]["minor"]) == "8"
    assert str(shown["fencing_policy"]["enabled"]).lower() == "false"
    after = world.clusters.get(cl.id)
    assert (after.compat_version, after.fencing_enabled) == ("4.8", False)


def _raised_meanwhile(world: Any, monkeypatch: pytest.MonkeyPatch) -> model.Cluster:
    """d6 at 4.6 with c8 at 4.8; d6 rises to 4.7 between the handler's read and its write."""
    world.datacenters.add("d6", compat_version="4.6")
    cl = world.clusters.add("c8", "d6", compat_version="4.8")
    _meanwhile(world, monkeypatch, lambda real: real(model.DataCenter, "d6", _version("4.7")))
    return cl


def test_the_version_floor_is_the_data_centers_as_it_is_then_json(
        client: Client, world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cl = _raised_meanwhile(world, monkeypatch)
    body = {"name": "c8b", "description": "lowered", "version": {"major": 4, "minor": 6}}
    status, detail = fault(client.api("PUT", f"/clusters/{cl.id}",
                                      json.dumps(body).encode(), JSON))
    assert (status, detail) == (409, FLOOR)
    after = world.clusters.get(cl.id)
    assert (after.name, after.compat_version) == ("c8", "4.8")
    shown = client.json("GET", f"/clusters/{cl.id}")
    assert shown["name"] == "c8" and not shown.get("description")


def test_the_version_floor_is_the_data_centers_as_it_is_then_xml(
        client: Client, world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cl = _raised_meanwhile(world, monkeypatch)
    body = (b"<cluster><name>c8b</name><fencing_policy><enabled>false</enabled>"
            b"</fencing_policy><version><major>4</major><minor>6</minor></version></cluster>")
    status, detail = fault(client.api("PUT", f"/clusters/{cl.id}", body, XML))
    assert (status, detail) == (409, FLOOR)
    after = world.clusters.get(cl.id)
    assert (after.name, after.compat_version, after.fencing_enabled) == ("c8", "4.8", True)
    # down to the data center's version is fine
    body = b"<cluster><version><major>4</major><minor>7</minor></version></cluster>"
    status, _h, reply = client.api("PUT", f"/clusters/{cl.id}", body, XML)
    assert status == 200 and world.clusters.get(cl.id).compat_version == "4.7", reply


def test_put_uses_the_service(client: Client, world: Any,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """What the body changes, and only that, reaches ``Clusters.update``."""
    cl = world.clusters.get("c1")
    seen: list[tuple[str, dict[str, Any]]] = []
    real = world.clusters.update

    def spy(name: str, **kw: Any) -> Any:
        seen.append((name, kw))
        return real(name, **kw)

    monkeypatch.setattr(world.clusters, "update", spy)
    body = b"<cluster><name>c1</name><cpu><type>Intel Skylake Server Family</type></cpu></cluster>"
    status, _h, reply = client.api("PUT", f"/clusters/{cl.id}", body, XML)
    assert status == 200, reply
    assert seen == [(cl.id, {"new_name": None, "compat": None,
                             "cpu_model": "Skylake-Server", "fencing_enabled": None})]
    assert world.clusters.get(cl.id).cpu_model == "Skylake-Server"
