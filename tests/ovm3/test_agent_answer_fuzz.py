"""No answer of an OVM3 agent, however malformed or hostile, ends in a traceback or in
half-made state.

A property-based test (hypothesis) makes the fake agent (tests/ovm3/agent.py,
protocol-faithful, not the real ``ovs-agent``) answer one of the calls the ovm3
driver makes with something else: a value of the wrong type, the real answer
with one field changed, dropped, duplicated or made huge, negative or
non-numeric (for the discover_* XML documents: one element's text replaced or
the document cut short), an XML-RPC fault with an odd code and text, or a raw
HTTP body (not UTF-8, not XML-RPC, a fault with a string code, bigger than the
reply limit). It then drives the driver through the Manager (host add and check,
host setup, host stats, VM start, stats and shutdown) and asserts: success with
sane values, or a VirtplaneError with a one-line message naming the agent or the
host; and after a failure, nothing half-made: no host record for a host that
was not added, a VM whose start failed Down with nothing defined on the agent,
never a VM recorded Down while the agent runs it.

Derandomized and bounded (about ten seconds) so CI stays fast and a failure
reproduces; more locally with VIRTPLANE_FUZZ_EXAMPLES=2000.
"""

from __future__ import annotations

import os
import re
from typing import Any
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from virtplane_ovm3 import client as ovm3_client

from tests.ovm3.agent import AgentServer, FakeAgent
from virtplane import model
from virtplane.errors import VirtplaneError

EXAMPLES = int(os.environ.get("VIRTPLANE_FUZZ_EXAMPLES", "120"))
#: the reply limit during the test (a bigger raw body must be refused, not read)
REPLY_LIMIT = 64 << 10

#: operation -> the agent calls it makes (one of them answers wrongly)
CALLS = {
    "add": ["discover_server", "discover_hardware"],
    "check": ["echo"],
    "setup": ["discover_server", "discover_repository_db", "discover_network"],
    "host_stats": ["ovs_dom0_stats"],
    "start": ["discover_repository_db", "create_vm", "start_vm", "get_vm_config", "list_vms",
              "stop_vm", "delete_vm"],
    "stats": ["list_vms", "ovs_domU_stats"],
    "shutdown": ["list_vms", "discover_repository_db", "stop_vm", "list_vm", "delete_vm"],
}

_special_text = st.sampled_from([
    "", "-1", "-4096", "0", "1e999", "nan", "inf", "99999999999999999999999", "3.2.1",
    "../../../etc/passwd", "/OVS/Repositories/../../etc", "a,script=/tmp/x", "put",
    "Domain-0", "g1", "r-----", "0.0.0.0:notaport", "0.0.0.0:99999", "x" * 3000,
    "line1\nline2", "\u00e9\u20ac", "00000000-0000-0000-0000-000000000000",
    "not-a-uuid", "169.254.1.1", "Mounted"])
_text = st.one_of(_special_text, st.text(max_size=12))
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31 - 1),
                    st.floats(allow_nan=True, allow_infinity=True), _text)
_keys = st.one_of(st.sampled_from(["name", "uuid", "state", "device", "vfb", "vbd", "location",
                                   "memory", "vcpus", "domid", "uname", "vif", "disk", "cpu",
                                   "free", "total", "rx_bytes", "cputime"]),
                  st.text(min_size=1, max_size=8))
_junk = st.recursive(_scalar, lambda c: st.lists(c, max_size=3)
                     | st.dictionaries(_keys, c, max_size=3), max_leaves=6)

_RAW = [
    b"\xff\xfe\x00garbage",
    b"<html><body>502 Bad Gateway</body></html>",
    b"",
    b"<?xml version='1.0' encoding='utf-8'?><methodResponse><params><param><value><string>"
    b"\xff\xfe\xfd</string></value></param></params></methodResponse>",
    b"<?xml version='1.0'?><methodResponse><fault><value><struct><member><name>faultCode"
    b"</name><value><string>NaN</string></value></member><member><name>faultString</name>"
    b"<value><string>odd\ncode</string></value></member></struct></value></fault>"
    b"</methodResponse>",
    b"<?xml version='1.0'?><methodResponse><fault><value><struct><member><name>faultCode"
    b"</name><value><int>7</int></value></member></struct></value></fault></methodResponse>",
    b"<?xml version='1.0'?><methodResponse><params><param><value><i8>"
    b"99999999999999999999999999</i8></value></param></params></methodResponse>",
    b"<?xml version='1.0'?><methodResponse><params><param><value><int>12x</int></value>"
    b"</param></params></methodResponse>",
    b"<?xml version='1.0'?><methodResponse><params><param><value><dateTime.iso8601>"
    b"20260101T00:00:00</dateTime.iso8601></value></param></params></methodResponse>",
    b"<?xml version='1.0'?><methodResponse><params><param><value><base64>AAEC</base64>"
    b"</value></param><param><value><nil/></value></param></params></methodResponse>",
    b"<?xml version='1.0'?><methodResponse><params><param><value><array><data>"
    + b"<value><array><data>" * 200 + b"</data></array></value>" * 200
    + b"</data></array></value></param></params></methodResponse>",
    b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;"
    b"&a;&a;&a;&a;&a;&a;&a;\">]><methodResponse><params><param><value><string>&b;&b;&b;"
    b"</string></value></param></params></methodResponse>",
    b"<?xml version='1.0'?><methodResponse><params><param><value><string>"
    + b"A" * (REPLY_LIMIT + 1000) + b"</string></value></param></params></methodResponse>",
]


@st.composite
def _answer(draw: Any) -> tuple[str, Any]:
    """How an agent call is answered: (kind, what), fixed before the call is made."""
    kind = draw(st.sampled_from(["junk", "mutate", "mutate", "mutate", "fault", "raw"]))
    if kind == "junk":
        return kind, draw(_junk)
    if kind == "fault":
        return kind, (draw(st.integers(-(2**31), 2**31 - 1)), draw(_text))
    if kind == "raw":
        return kind, draw(st.sampled_from(_RAW))
    how = draw(st.sampled_from(["set", "drop", "dup", "cut", "wrap"]))
    return kind, (how, draw(st.integers(0, 10**6)), draw(_keys), draw(_junk), draw(_text))


def _xml_text(value: Any) -> str:
    """A value as XML element text (control characters dropped: the XML must parse)."""
    s = value if isinstance(value, str) else repr(value)
    return escape("".join(c for c in s if c.isprintable() or c in "\t"))


def _mutate(real: Any, plan: tuple[str, int, Any, Any, str]) -> Any:
    """The real answer with one thing wrong."""
    how, n, key, junk, text = plan
    if isinstance(real, str) and real.lstrip().startswith("<?xml"):
        leaves = list(re.finditer(r">([^<>]*)<", real))
        if how == "cut":
            return real[: n % max(len(real), 1)]
        if how == "wrap":
            return real.replace(">", f">{_xml_text(text)}", 1)
        if leaves:
            m = leaves[n % len(leaves)]
            repl = "" if how == "drop" else _xml_text(junk if how == "set" else text * 2)
            return real[: m.start(1)] + repl + real[m.end(1):]
        return real + _xml_text(text)
    if isinstance(real, list) and real:
        i = n % len(real)
        if how == "dup":
            return [*real, real[i]]
        if how == "drop":
            return real[:i] + real[i + 1:]
        if how == "set":
            return [*real[:i], _mutate(real[i], plan) if isinstance(real[i], dict) else junk,
                    *real[i + 1:]]
        return [*real, junk]
    if isinstance(real, dict) and real:
        keys = sorted(real)
        k = keys[n % len(keys)] if how != "wrap" else key
        out = dict(real)
        if how == "drop":
            out.pop(k, None)
        elif how == "dup" and isinstance(out.get(k), dict | list):
            out[k] = _mutate(out[k], plan)
        else:
            out[k] = junk
        return out
    return junk


def _install(agent: FakeAgent, method: str, answer: tuple[str, Any]) -> None:
    kind, what = answer
    if kind == "raw":
        reply = what
        if method == "echo" and reply == b"":
            reply = b"<html/>"
        agent.raw[method] = reply
    elif kind == "fault":
        agent.faults[method] = what
    elif kind == "junk":
        agent.answers[method] = lambda _real, *_p: what
    else:
        agent.answers[method] = lambda real, *_p: _mutate(real, what)


def _one_line(exc: VirtplaneError, *names: str) -> None:
    msg = str(exc)
    assert msg and "\n" not in msg and "\r" not in msg, repr(msg)
    assert len(msg) < 2000, len(msg)
    assert "Traceback" not in msg
    assert any(n in msg for n in names), f"{msg!r} names none of {names}"


@pytest.fixture
def world(manager_factory, monkeypatch):
    monkeypatch.setenv("VIRTPLANE_OVM3_PASSWORD", "secret")
    monkeypatch.setattr(ovm3_client, "MAX_REPLY_BYTES", REPLY_LIMIT, raising=False)
    a = AgentServer(FakeAgent("127.0.0.2", "ovs1"))
    b = AgentServer(FakeAgent("127.0.0.3", "ovs2"))
    with a, b:
        m = manager_factory()
        m.datacenters.add("dc")
        m.clusters.add("cl", "dc")
        m.hosts.add("ovs1", "cl", a.url(), driver="ovm3")
        m.hosts.setup("ovs1", repository="nfs1:/export/repo")
        m.vms.create(model.VmSpec(
            name="g1", memory_mib=256, vcpus=2,
            disks=[model.DiskSpec(name="root", path="/OVS/Repositories/r/VirtualDisks/a.raw")],
            nics=[model.NicSpec(name="n0", network="xenbr0")],
            display=model.DisplaySpec(type="vnc")), "cl")
        yield m, a, b


def _calm(agent: FakeAgent) -> None:
    agent.answers.clear()
    agent.raw.clear()
    agent.faults.clear()


def _reset(m: Any, a: AgentServer, b: AgentServer) -> None:
    for srv in (a, b):
        _calm(srv.agent)
    if m.hosts.get("ovs1").status == model.HostStatus.INSTALL_FAILED:
        m.hosts.setup("ovs1", repository="nfs1:/export/repo")  # a failed setup, redone
    if m.hosts.get("ovs1").status != model.HostStatus.UP:
        assert m.hosts.check("ovs1").status == model.HostStatus.UP
    vm = m.vms.get("g1")
    if vm.status != model.VmStatus.DOWN:
        try:
            m.vms.destroy("g1")
        except VirtplaneError:
            # a shutdown that failed after the agent stopped the guest: recorded Up
            # until the monitor sees it gone (never the other way round)
            m.vms.mark_down(vm, "fuzz reset")
    a.agent.vms.clear()
    for h in m.store.list(model.Host):
        if h.name != "ovs1":
            m.hosts.remove(h.name)


def _running_on_agent(a: AgentServer) -> bool:
    return any(v["domid"] for v in a.agent.vms.values())


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(op=st.sampled_from(sorted(CALLS)), data=st.data())
def test_no_agent_answer_escapes_or_half_makes(world: Any, op: str,
                                               data: st.DataObject) -> None:
    m, a, b = world
    _reset(m, a, b)
    method = data.draw(st.sampled_from(CALLS[op]), label="method")
    answer = data.draw(_answer(), label="answer")
    if op in ("stats", "shutdown"):
        m.vms.start("g1")
    target = b if op == "add" else a
    _install(target.agent, method, answer)
    names = (target.agent.ip, "ovs1", "ovs2", "g1")
    try:
        if op == "add":
            host = m.hosts.add("ovs2", "cl", b.url(), driver="ovm3")
            caps = host.capabilities
            assert isinstance(caps["memory_bytes"], int) and caps["memory_bytes"] >= 0
            assert 0 <= caps["free_memory_bytes"] <= caps["memory_bytes"]
            assert all(isinstance(caps["cpu"][k], int) and caps["cpu"][k] >= 0
                       for k in ("sockets", "cores", "threads", "mhz"))
        elif op == "check":
            m.hosts.check("ovs1")
        elif op == "setup":
            m.hosts.setup("ovs1", repository="nfs1:/export/repo")
        elif op == "host_stats":
            stats = m.hosts.stats("ovs1")
            assert 0 <= stats["memory_free_bytes"] <= stats["memory_total_bytes"]
        elif op == "start":
            m.vms.start("g1")
            assert m.vms.get("g1").status == model.VmStatus.UP
        elif op == "stats":
            s = m.vms.stats("g1")
            for key in ("net_rx_bytes", "net_tx_bytes", "disk_read_bytes", "disk_write_bytes"):
                assert isinstance(s[key], int) and s[key] >= 0, (key, s[key])
            assert s["vnc_port"] is None or 1 <= s["vnc_port"] <= 65535
        else:
            m.vms.shutdown("g1", timeout=0.3)
    except VirtplaneError as exc:
        _one_line(exc, *names)
        failed = True
    else:
        failed = False
    _calm(a.agent)
    _calm(b.agent)
    hosts = {h.name for h in m.store.list(model.Host)}
    if op == "add" and failed:
        assert hosts == {"ovs1"}, "a host that was not added is recorded"
    vm = m.vms.get("g1")
    if op == "start" and failed:
        assert vm.status == model.VmStatus.DOWN and vm.status_reason
        assert a.agent.vms == {}, f"a failed start left {a.agent.vms} on the agent"
    if vm.status == model.VmStatus.DOWN:
        assert not _running_on_agent(a), "the VM is recorded Down but runs on the agent"
