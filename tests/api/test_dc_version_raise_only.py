"""``PUT /datacenters/{id}`` with a lower ``<version>``: refused (409) as oVirt refuses
it, the data center unchanged. Before: 200, and the data center moved down (its clusters
then newer than it by any amount). The service's side: tests/core/test_dc_version_raise_only.py.
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree

from tests.api.raw_http import JSON, XML, Client, fault


def _dc(version: str, name: str | None = None) -> bytes:
    major, minor = version.split(".")
    named = f"<name>{name}</name>" if name else ""
    return (f"<data_center>{named}<version><major>{major}</major><minor>{minor}</minor>"
            "</version></data_center>").encode()


def test_put_a_lower_version_is_refused(client: Client, world: Any) -> None:
    dc = world.datacenters.add("d6", compat_version="4.6")
    status, detail = fault(client.api("PUT", f"/datacenters/{dc.id}", _dc("4.5", "d6b"), XML))
    assert (status, detail) == (409, "[data center 'd6' cannot move to compatibility version "
                                     "4.5: it is at 4.6, and a data center's version can only "
                                     "be raised, never lowered; allowed: 4.6, 4.7, 4.8]")
    after = world.datacenters.get(dc.id)
    assert (after.name, after.compat_version) == ("d6", "4.6")  # nothing of the PUT applied
    status, _h, body = client.api("GET", f"/datacenters/{dc.id}")
    assert status == 200
    assert ElementTree.fromstring(body).findtext("version/minor") == "6"


def test_put_a_lower_version_in_json_is_refused(client: Client, world: Any) -> None:
    dc = world.datacenters.add("d7", compat_version="4.7")
    body = {"version": {"major": "4", "minor": "2"}}
    status, detail = fault(client.api("PUT", f"/datacenters/{dc.id}",
                                      json.dumps(body).encode(), JSON))
    assert status == 409 and "can only be raised, never lowered; allowed: 4.7, 4.8" in detail
    assert world.datacenters.get(dc.id).compat_version == "4.7"


def test_put_the_same_or_a_higher_version_still_works(client: Client, world: Any) -> None:
    dc = world.datacenters.add("d5", compat_version="4.5")
    status, _h, body = client.api("PUT", f"/datacenters/{dc.id}", _dc("4.5"), XML)
    assert status == 200, body
    status, _h, body = client.api("PUT", f"/datacenters/{dc.id}", _dc("4.7"), XML)
    assert status == 200, body
    assert world.datacenters.get(dc.id).compat_version == "4.7"
    # a rename alone leaves the version as it is
    status, _h, body = client.api("PUT", f"/datacenters/{dc.id}",
                                  b"<data_center><name>d5b</name></data_center>", XML)
    assert status == 200, body
    assert world.datacenters.get(dc.id).compat_version == "4.7"
