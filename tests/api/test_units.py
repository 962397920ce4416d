"""Rendering, parsing, search and the status tables, without a server."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from virtplane import model
from virtplane.errors import InvalidInput
from virtplane_api_ovirt import enums, parse, render, search


def test_xml_rules() -> None:
    xml = render.xml_entity("vm", {
        "href": "/ovirt-engine/api/vms/1", "id": "1", "name": "a<b&c",
        "link": [("nics", "/ovirt-engine/api/vms/1/nics")], "memory": 0, "stateless": False,
        "host": None, "os": {"boot": {"devices": ["hd", "cdrom"]}}, "empty": [],
        "cluster": {"href": "/c/2", "id": "2"}})
    assert xml == ('<vm href="/ovirt-engine/api/vms/1" id="1"><name>a&lt;b&amp;c</name>'
                   '<link href="/ovirt-engine/api/vms/1/nics" rel="nics"/><memory>0</memory>'
                   '<stateless>false</stateless><os><boot><devices><device>hd</device>'
                   '<device>cdrom</device></devices></boot></os><cluster href="/c/2" id="2"/>'
                   '</vm>')
    assert render.xml_collection("vms", []) == "<vms/>"


def test_json_shape_is_ovirts() -> None:
    node = {"id": "1", "name": "x", "memory": 5, "ok": True, "link": [("nics", "/n")],
            "storage_domains": [{"id": "s"}], "devices": ["hd"]}
    assert render.json_node(node) == {
        "id": "1", "name": "x", "memory": "5", "ok": "true",
        "link": [{"href": "/n", "rel": "nics"}],
        "storage_domains": {"storage_domain": [{"id": "s"}]}, "devices": {"device": ["hd"]}}


def test_parse_reads_what_the_sdk_writes() -> None:
    tag, body = parse.xml_body(
        b'<vm href="/x" id="1"><name>a</name><cluster><name>c1</name></cluster>'
        b'<disk_attachments href="/x/diskattachments"/><storage_domains>'
        b'<storage_domain id="s1"/></storage_domains><memory>10</memory></vm>')
    assert tag == "vm" and parse.ref(body, "cluster") == "c1"
    assert parse.items(body, "storage_domains") == [{"id": "s1"}]
    assert parse.integer(body, "memory") == 10
    with pytest.raises(InvalidInput, match="integer"):
        parse.integer({"memory": "lots"}, "memory")
    with pytest.raises(InvalidInput, match="namespaces"):
        parse.xml_body(b'<v:vm xmlns:v="urn:x"/>')
    assert parse.json_body(b'{"storage_domains": {"storage_domain": [{"name": "d"}]}}') == {
        "storage_domains": [{"name": "d"}]}


@pytest.mark.parametrize("query,expected", [
    ("name=web1", ["web1"]), ('name="web1"', ["web1"]), ("name=web*", ["web1", "web2"]),
    ("name=web1 or name=db", ["web1", "db"]), ("name=web* and status=up", ["web2"]),
    ("web2", ["web2"]), ("name!=web*", ["db"]), ("name=WEB1", []),
    ("Vms: name=db", ["db"]), ("sortby name desc", ["web2", "web1", "db"]),
])
def test_search(query: str, expected: list[str]) -> None:
    objs = [{"name": "web1", "status": "down"}, {"name": "web2", "status": "up"},
            {"name": "db", "status": "up"}]
    s: search.Searcher[dict[str, str]] = search.Searcher(
        "VM", {"name": lambda o: [o["name"]], "status": lambda o: [o["status"]]},
        lambda o: o["name"])
    assert [o["name"] for o in s.apply(objs, query)] == expected


def test_search_case_pages_and_unknown_keys() -> None:
    s: search.Searcher[str] = search.Searcher("VM", {"name": lambda o: [o]}, lambda o: o)
    objs = ["a", "b", "c"]
    assert s.apply(objs, "name=A", case_sensitive=False) == ["a"]
    assert s.apply(objs, "page 2", max_results=1) == ["b"]
    assert s.apply(objs, None, max_results=2) == ["a", "b"]
    with pytest.raises(InvalidInput, match="no key 'colour'; known: name"):
        s.apply(objs, "colour=red")


def test_every_status_maps_to_a_value_the_sdk_knows() -> None:
    if importlib.util.find_spec("ovirtsdk4") is None:
        from tests.conftest import need

        need(False, "ovirt-engine-sdk-python is not installed")
    from ovirtsdk4 import types

    def values(enum: Any) -> set[str]:
        return {e.value for e in enum}

    assert set(enums.VM_STATUS) == set(model.VmStatus)
    assert set(enums.VM_STATUS.values()) | {"suspended"} <= values(types.VmStatus)
    assert set(enums.HOST_STATUS) == set(model.HostStatus)
    assert set(enums.HOST_STATUS.values()) <= values(types.HostStatus)
    assert set(enums.DOMAIN_STATUS) == set(model.DomainStatus)
    assert set(enums.DOMAIN_STATUS.values()) <= values(types.StorageDomainStatus)
    assert set(enums.JOB_STATUS.values()) <= values(types.JobStatus)
    assert set(enums.SEVERITY.values()) <= values(types.LogSeverity)
    assert set(enums.STORAGE_TYPE.values()) <= values(types.StorageType)
    assert set(enums.DISK_FORMAT.values()) <= values(types.DiskFormat)
