"""``/clusters``: the description is the core model's (``model.Cluster.description``),
so what the REST API, the command line and the services set is one value.

Before: the REST API kept a cluster's description as its own annotation. A description
written that way is still shown (the model has none), until it is next set here, when
the model takes it and the annotation goes. The core side:
tests/core/test_cluster_description.py.
"""

from __future__ import annotations

import json
from typing import Any

from tests.api.raw_http import JSON, XML, Client, fault


def _extras(world: Any) -> Any:
    """The attributes the REST API keeps in the store (what an older version wrote)."""
    from virtplane_api_ovirt.extras import Extras

    return Extras(world.store)


def test_post_and_put_write_the_model(client: Client, world: Any) -> None:
    dc = world.datacenters.get("dc1")
    made = client.json(
        "POST", "/clusters", {"name": "c2", "data_center": {"id": dc.id}, "description": "new one"}
    )
    assert made["description"] == "new one"
    cl = world.clusters.get("c2")
    assert cl.description == "new one"
    assert _extras(world).get(cl.id, "description") == ""
    body = b"<cluster><description>changed</description></cluster>"
    status, _h, reply = client.api("PUT", f"/clusters/{cl.id}", body, XML)
    assert status == 200, reply
    assert b"<description>changed</description>" in reply
    assert world.clusters.get(cl.id).description == "changed"
    # set through the services, seen through the API
    world.clusters.update(cl.id, description="from the core")
    assert client.json("GET", f"/clusters/{cl.id}")["description"] == "from the core"


def test_an_annotation_written_before_is_shown_then_replaced(client: Client, world: Any) -> None:
    cl = world.clusters.get("c1")
    extras = _extras(world)
    extras.set(cl.id, "description", "kept by an older version")
    extras.set(cl.id, "comment", "a comment")
    shown = client.json("GET", f"/clusters/{cl.id}")
    assert (shown["description"], shown["comment"]) == ("kept by an older version", "a comment")
    # the same text again is no change: nothing is written
    client.json("PUT", f"/clusters/{cl.id}", {"description": "kept by an older version"})
    assert world.clusters.get(cl.id).description == ""
    assert extras.get(cl.id, "description") == "kept by an older version"
    client.json("PUT", f"/clusters/{cl.id}", {"description": "now in the model"})
    assert world.clusters.get(cl.id).description == "now in the model"
    assert extras.get(cl.id, "description") == ""
    assert extras.get(cl.id, "comment") == "a comment"
    # cleared: the old annotation does not come back
    shown = client.json("PUT", f"/clusters/{cl.id}", {"description": ""})
    assert shown.get("description", "") == ""
    assert client.json("GET", f"/clusters/{cl.id}").get("description", "") == ""


def test_a_bad_description_is_a_400_and_nothing_changes(client: Client, world: Any) -> None:
    cl = world.clusters.get("c1")
    body = {"name": "renamed", "description": "x" * 4001}
    status, text = fault(client.api("PUT", f"/clusters/{cl.id}", json.dumps(body).encode(), JSON))
    assert status == 400 and "cluster description is 4001 characters long" in text
    assert world.clusters.get(cl.id).name == "c1"
    dc = world.datacenters.get("dc1")
    body = {"name": "c3", "data_center": {"id": dc.id}, "description": "a\x9bb"}
    status, text = fault(client.api("POST", "/clusters", json.dumps(body).encode(), JSON))
    assert status == 400 and "control character U+009B" in text
    assert [c.name for c in world.clusters.list()] == ["c1"]
