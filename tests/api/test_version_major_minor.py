"""``<version>`` of a data center or a cluster is MAJOR.MINOR: one with only ``<minor>``
or only ``<major>`` is refused with a 400 naming what is missing, and changes nothing.

Before: ``PUT /datacenters/{id}`` (and ``/clusters/{id}``) with ``<minor>`` alone was
silently ignored (200, version unchanged), POST made the object at 4.8 instead, and
``<major>`` alone was read as MAJOR.0 (a 400 about version 4.0, which nobody sent).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.raw_http import JSON, XML, Client, fault

PARTS = [("<minor>6</minor>", "major"), ("<major>4</major>", "minor"),
         ("<major>4</major><minor></minor>", "minor")]


def _missing(part: str) -> str:
    return (f"<version> needs both <major> and <minor> (a compatibility version is "
            f"MAJOR.MINOR, e.g. 4.8); <{part}> is missing")


@pytest.mark.parametrize(("given", "missing"), PARTS)
def test_put_dc_with_half_a_version_is_refused(client: Client, world: Any, given: str,
                                               missing: str) -> None:
    dc = world.datacenters.add("d5", compat_version="4.5")
    body = f"<data_center><name>d5b</name><version>{given}</version></data_center>"
    status, detail = fault(client.api("PUT", f"/datacenters/{dc.id}", body.encode(), XML))
    assert (status, detail) == (400, f"[{_missing(missing)}]")
    after = world.datacenters.get(dc.id)
    assert (after.name, after.compat_version) == ("d5", "4.5")


def test_put_dc_with_half_a_version_in_json_is_refused(client: Client, world: Any) -> None:
    dc = world.datacenters.add("d5", compat_version="4.5")
    body = {"description": "x", "version": {"minor": "7"}}
    status, detail = fault(client.api("PUT", f"/datacenters/{dc.id}",
                                      json.dumps(body).encode(), JSON))
    assert (status, detail) == (400, f"[{_missing('major')}]")
    after = world.datacenters.get(dc.id)
    assert (after.description, after.compat_version) == ("", "4.5")


@pytest.mark.parametrize(("given", "missing"), PARTS)
def test_post_dc_with_half_a_version_is_refused(client: Client, world: Any, given: str,
                                                missing: str) -> None:
    body = f"<data_center><name>dx</name><version>{given}</version></data_center>"
    status, detail = fault(client.api("POST", "/datacenters", body.encode(), XML))
    assert (status, detail) == (400, f"[{_missing(missing)}]")
    assert [d.name for d in world.datacenters.list()] == ["dc1"]


@pytest.mark.parametrize(("given", "missing"), PARTS)
def test_clusters_refuse_half_a_version(client: Client, world: Any, given: str,
                                        missing: str) -> None:
    body = ("<cluster><name>cx</name><data_center><name>dc1</name></data_center>"
            f"<version>{given}</version></cluster>")
    status, detail = fault(client.api("POST", "/clusters", body.encode(), XML))
    assert (status, detail) == (400, f"[{_missing(missing)}]")
    assert [c.name for c in world.clusters.list()] == ["c1"]
    c1 = world.clusters.get("c1")
    body = f"<cluster><name>c1b</name><version>{given}</version></cluster>"
    status, detail = fault(client.api("PUT", f"/clusters/{c1.id}", body.encode(), XML))
    assert (status, detail) == (400, f"[{_missing(missing)}]")
    after = world.clusters.get(c1.id)
    assert (after.name, after.compat_version) == ("c1", "4.8")


def test_whole_versions_still_work(client: Client, world: Any) -> None:
    dc = world.datacenters.add("d5", compat_version="4.5")
    body = b"<data_center><version><major>4</major><minor>6</minor></version></data_center>"
    status, _h, _b = client.api("PUT", f"/datacenters/{dc.id}", body, XML)
    assert status == 200 and world.datacenters.get(dc.id).compat_version == "4.6"
    body = b"<data_center><name>d5b</name></data_center>"
    status, _h, _b = client.api("PUT", f"/datacenters/{dc.id}", body, XML)
    assert status == 200 and world.datacenters.get(dc.id).compat_version == "4.6"
    body = (b"<cluster><name>c7</name><data_center><name>d5b</name></data_center>"
            b"<version><major>4</major><minor>7</minor></version></cluster>")
    status, _h, _b = client.api("POST", "/clusters", body, XML)
    assert status == 201 and world.clusters.get("c7").compat_version == "4.7"
