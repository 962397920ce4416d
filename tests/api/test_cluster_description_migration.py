"""A cluster description an earlier version kept as a REST annotation moves into the
model when the API starts, so clearing it later through the CLI or the services
(which know nothing of the API's annotations) does not bring the old text back.

Was: the annotation was shown as a fallback whenever the model's description was "",
so `virtplane cluster set --description ''` made the API show the old annotation
again.
"""

from __future__ import annotations

from typing import Any

from tests.api.raw_http import Client


def _extras(world: Any) -> Any:
    from virtplane_api_ovirt.extras import Extras

    return Extras(world.store)


def test_a_description_cleared_through_the_services_stays_cleared(serve: Any,
                                                                   world: Any) -> None:
    cl = world.clusters.get("c1")
    _extras(world).set(cl.id, "description", "kept by an older version")
    server = serve()  # the API starts: the annotation moves into the model
    assert world.clusters.get(cl.id).description == "kept by an older version"
    assert _extras(world).get(cl.id, "description") == ""
    client = Client(server.url)
    try:
        assert client.json("GET", f"/clusters/{cl.id}")["description"] == \
            "kept by an older version"
        world.clusters.update(cl.id, description="")  # what `cluster set` runs
        assert world.clusters.get(cl.id).description == ""
        assert client.json("GET", f"/clusters/{cl.id}").get("description", "") == ""
    finally:
        client.close()


def test_a_model_description_wins_over_an_older_annotation(serve: Any, world: Any) -> None:
    from virtplane_api_ovirt.resources.clusters import migrate_descriptions

    cl = world.clusters.get("c1")
    world.clusters.update(cl.id, description="in the model")
    extras = _extras(world)
    extras.set(cl.id, "description", "older annotation")
    assert migrate_descriptions(world.store, extras) == 0
    assert world.clusters.get(cl.id).description == "in the model"
    assert extras.get(cl.id, "description") == ""
    # nothing left to move: a second run changes nothing
    assert migrate_descriptions(world.store, extras) == 0
