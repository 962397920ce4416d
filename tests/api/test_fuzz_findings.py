"""What the REST API fuzzer (test_api_fuzz.py) found, one request each: every one
was a 500 (or a reply no XML client could read, or a domain made where nobody
asked) before its fix, and is now a 4xx fault naming the field and what is
allowed."""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree

import pytest

from tests.api.raw_http import JSON, XML, Client
from tests.api.raw_http import fault as _fault
from virtplane import model
from virtplane.errors import InvalidInput
from virtplane_api_ovirt import faults, parse, render

# ---------------------------------------------------------- nesting (RecursionError)


@pytest.mark.parametrize("data", [
    b"<vm>" + b"<name>" * 5000 + b"</name>" * 5000 + b"</vm>",
    b"<vm>" + b"<name>" * 100 + b"</name>" * 100 + b"</vm>",
])
def test_deep_xml_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="the request body nests deeper than 64 levels"):
        parse.xml_body(data)


@pytest.mark.parametrize("data", [
    b"[" * 5000 + b"]" * 5000,
    b'{"vm": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"a": ' + b'{"a": ' * 100 + b"1" + b"}" * 101,
])
def test_deep_json_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="the request body nests deeper than 64 levels"):
        parse.json_body(data)


def test_nesting_entities_need_is_read() -> None:
    depth = 8  # the deepest an entity nests is a few levels
    tag, node = parse.xml_body(b"<vm>" + b"<a>" * depth + b"x" + b"</a>" * depth + b"</vm>")
    assert tag == "vm" and parse.text(node, *["a"] * depth) == "x"


def test_deep_body_over_http_is_a_400(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    before = client.json("GET", "/vms")
    reply = client.api("POST", "/vms", b"[" * 5000 + b"]" * 5000, JSON)
    assert _fault(reply) == (400, "[the request body nests deeper than 64 levels]")
    reply = client.api("PUT", "/tags/00000000-0000-0000-0000-000000000001",
                       b"<tag>" + b"<name>" * 5000 + b"</name>" * 5000 + b"</tag>", XML)
    assert _fault(reply)[0] == 400
    assert client.json("GET", "/vms") == before
    assert not [r for r in caplog.records if r.exc_info]


# ------------------------------------------- characters XML cannot carry (JSON bodies)


@pytest.mark.parametrize("text", ["a\x01b", "\x00", "x\x1fy", "\ud800", "\ufffe"])
def test_json_text_xml_cannot_carry_is_refused(text: str) -> None:
    body = json.dumps({"description": text}).encode()
    with pytest.raises(InvalidInput, match=r"<description> contains the character .* "
                                           "control characters other than tab"):
        parse.json_body(body)


def test_json_tab_and_line_ends_are_text() -> None:
    body = parse.json_body(json.dumps({"description": "a\tb\nc\r"}).encode())
    assert body == {"description": "a\tb\nc\r"}


def test_control_character_never_reaches_an_xml_reply(client: Client, world: Any) -> None:
    """Stored, a description with U+0001 made every XML reply showing it unreadable
    (the host's, the event list's)."""
    host = world.hosts.get("h1")
    status, detail = _fault(client.api("PUT", f"/hosts/{host.id}",
                                       json.dumps({"description": "a\u0001b"}).encode(), JSON))
    assert status == 400 and "<description> contains the character '\\x01'" in detail
    status, detail = _fault(client.api("POST", "/events", json.dumps(
        {"description": "a\u0001b"}).encode(), JSON))
    assert status == 400
    for path in (f"/hosts/{host.id}", "/events"):
        status, _h, body = client.api("GET", path, None, XML)
        assert status == 200 and ElementTree.fromstring(body) is not None


@pytest.mark.parametrize("path", [
    "/nosuch/%00x", "/jobs/%00/steps", "/users/%01/sshpublickeys/x"])
def test_fault_quoting_the_path_reads_as_xml(client: Client, path: str) -> None:
    """A fault whose detail quotes a control character of the path was not XML."""
    status, detail = _fault(client.api("GET", path, None, XML))
    assert status == 404 and ("\\x00" in detail or "\\x01" in detail)


def test_fault_detail_escapes_what_xml_cannot_carry() -> None:
    code, node = faults.fault(InvalidInput("no vm named 'a\x00\x1b\ud800'"))
    assert code == 400 and node["detail"] == "[no vm named 'a\\x00\\x1b\\ud800']"
    assert ElementTree.fromstring(render.xml_entity("fault", node)).tag == "fault"


# ---------------------------------------------- integers the store cannot hold


@pytest.mark.parametrize("value", ["9223372036854775808", "-9223372036854775809",
                                   "99999999999999999999"])
def test_integers_beyond_64_bits_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="<code> must be an integer from "
                                           "-9223372036854775808 to 9223372036854775807"):
        parse.integer({"code": value}, "code")


def test_integer_limits_and_long_text() -> None:
    assert parse.integer({"n": "9223372036854775807"}, "n") == parse.INT_MAX
    assert parse.integer({"n": "-9223372036854775808"}, "n") == parse.INT_MIN
    with pytest.raises(InvalidInput, match=r"must be an integer, not '1{40}\.\.\.'"):
        parse.integer({"n": "1" * 5000 + "x"}, "n")


@pytest.mark.parametrize(("method", "path", "body", "status", "detail"), [
    ("GET", "/events/99999999999999999999", None, 404, "no event 99999999999999999999"),
    ("GET", "/events?max=99999999999999999999", None, 400,
     "query parameter max must be an integer from"),
    ("GET", "/events?from=99999999999999999999", None, 400,
     "query parameter from must be an integer from"),
    ("GET", "/vms?max=-99999999999999999999", None, 400,
     "query parameter max must be an integer from"),
    ("POST", "/events", b"<event><description>x</description><code>99999999999999999999"
                        b"</code></event>", 400, "<code> must be an integer from"),
])
def test_huge_numbers_are_4xx(client: Client, caplog: pytest.LogCaptureFixture, method: str,
                              path: str, body: bytes | None, status: int,
                              detail: str) -> None:
    """Each was a 500 (OverflowError from SQLite) with a traceback in the log."""
    events = client.json("GET", "/events")
    got, text = _fault(client.api(method, path, body, XML))
    assert got == status and detail in text
    if method == "POST":  # one event more: the audit record of the refused request
        after = client.json("GET", "/events")["event"]
        assert len(after) == len(events["event"]) + 1
        assert "POST /events" in after[0]["description"]
    assert not [r for r in caplog.records if r.exc_info]


# ----------------------------------------------------------------- clusters, storage


@pytest.mark.parametrize("arch", ["bogus", "-119", "X86_64"])
def test_cluster_of_unknown_architecture_is_a_400(client: Client, world: Any,
                                                  arch: str) -> None:
    """Was a 500: the driver lookup's PluginError."""
    body = {"name": "cx", "data_center": {"name": "dc1"},
            "cpu": {"architecture": arch, "type": "Intel Nehalem Family"}}
    status, detail = _fault(client.api("POST", "/clusters", json.dumps(body).encode(), JSON))
    assert status == 400
    assert detail == (f"[<cpu/architecture> must be one of ppc64, x86_64 (the architecture "
                      f"drivers installed), not {arch!r}]")
    assert [c.name for c in world.store.list(model.Cluster)] == ["c1"]


@pytest.mark.parametrize("path", ["relative/dir", "../sd3", "sd2"])
def test_localfs_domain_needs_an_absolute_path(client: Client, world: Any, path: str,
                                               tmp_path: Any, monkeypatch: Any) -> None:
    """Was a 201 with the domain made relative to the server's working directory."""
    monkeypatch.chdir(tmp_path)
    body = {"name": "sd2", "type": "data", "host": {"name": "h1"},
            "storage": {"type": "localfs", "path": path}}
    status, detail = _fault(client.api("POST", "/storagedomains",
                                       json.dumps(body).encode(), JSON))
    assert status == 400
    assert detail == ("[<storage><path> of a localfs storage domain must be an absolute path "
                      f"(a folder on the host), not {path!r}]")
    assert [d.name for d in world.store.list(model.StorageDomain)] == ["data1"]
    assert not (tmp_path / path).exists()
