"""Focused tests for the malformed or hostile agent answers the fuzzer
(test_agent_answer_fuzz.py) found, and for what the driver sends into vm.cfg;
against the fake agent (tests/ovm3/agent.py), not a real ``ovs-agent``."""

from __future__ import annotations

import pytest
from virtplane_ovm3 import client as ovm3_client

from tests.ovm3.agent import AgentServer, FakeAgent
from virtplane import model
from virtplane.errors import HypervisorError, InvalidInput


@pytest.fixture(autouse=True)
def password(monkeypatch):
    monkeypatch.setenv("VIRTPLANE_OVM3_PASSWORD", "secret")


@pytest.fixture
def agent():
    with AgentServer(FakeAgent("127.0.0.2", "ovs1")) as srv:
        yield srv


@pytest.fixture
def m(manager_factory, agent):
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.hosts.add("ovs1", "cl", agent.url(), driver="ovm3")
    m.hosts.setup("ovs1", repository="nfs1:/export/repo")
    return m


def _vm(m, network="xenbr0", path="/OVS/Repositories/r/VirtualDisks/a.raw"):
    return m.vms.create(model.VmSpec(
        name="g1", memory_mib=256, vcpus=1,
        disks=[model.DiskSpec(name="root", path=path)],
        nics=[model.NicSpec(name="n0", network=network)],
        display=model.DisplaySpec(type="vnc")), "cl")


def _one_line(exc, *words):
    msg = str(exc)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_non_numeric_hardware_is_refused_and_no_host_recorded(manager_factory):
    a = FakeAgent("127.0.0.4", "odd")
    a.answers["discover_hardware"] = lambda real, *p: real.replace(
        "<ThreadsPerCore>2<", "<ThreadsPerCore>two<")
    with AgentServer(a) as srv:
        m = manager_factory()
        m.datacenters.add("dc")
        m.clusters.add("cl", "dc")
        with pytest.raises(HypervisorError, match="ThreadsPerCore is two, not a whole "
                                                  "number") as exc:
            m.hosts.add("odd", "cl", srv.url(), driver="ovm3")  # was: ValueError
        _one_line(exc.value, "127.0.0.4", "discover_hardware")
        assert m.store.list(model.Host) == []


def test_a_string_for_the_vm_list_is_refused(m, agent):
    _vm(m)
    m.vms.start("g1")
    agent.agent.answers["list_vms"] = lambda real, *p: "not a list"
    with pytest.raises(HypervisorError, match="the VM list is str not a list, not an "
                                              "array") as exc:
        m.vms.stats("g1")  # was: ValueError from dict()
    _one_line(exc.value, "127.0.0.2", "list_vms")


def test_a_vm_listed_twice_is_refused(m, agent):
    _vm(m)
    m.vms.start("g1")
    agent.agent.answers["list_vms"] = lambda real, *p: [*real, real[-1]]
    with pytest.raises(HypervisorError, match="VM g1 .* is listed twice"):
        m.vms.stats("g1")


def test_negative_and_huge_counters_are_refused(m, agent):
    _vm(m)
    m.vms.start("g1")
    agent.agent.answers["ovs_domU_stats"] = lambda real, *p: dict(real, rx_bytes="-5")
    with pytest.raises(HypervisorError, match="rx_bytes is -5, not a finite number"):
        m.vms.stats("g1")
    agent.agent.answers["ovs_domU_stats"] = lambda real, *p: dict(real, uptime="1e999")
    with pytest.raises(HypervisorError, match="uptime is 1e999"):
        m.vms.stats("g1")  # was: OverflowError? no: inf passed through
    agent.agent.answers["ovs_dom0_stats"] = lambda real, *p: dict(real, free="x")
    with pytest.raises(HypervisorError, match="free is x, not a number"):
        m.hosts.stats("ovs1")  # was: ValueError


def test_unreadable_listing_after_start_undoes_the_start(m, agent):
    _vm(m)
    agent.agent.answers["list_vms"] = lambda real, *p: [{"name": 5}]
    with pytest.raises(HypervisorError, match="name is int 5, not a string"):
        m.vms.start("g1")
    agent.agent.answers.clear()
    assert m.vms.get("g1").status == model.VmStatus.DOWN
    assert agent.agent.vms == {}  # was: left running while recorded Down


def test_unreadable_create_vm_answer_leaves_nothing_defined(m, agent):
    _vm(m)
    # the agent did create it, but its answer cannot be read (a control character)
    agent.agent.answers["create_vm"] = lambda real, *p: {"\x1f": None}
    with pytest.raises(HypervisorError, match="not an XML-RPC response"):
        m.vms.start("g1")
    assert agent.agent.vms == {}  # was: a defined VM left behind


def test_config_read_back_with_an_injected_line_is_refused(m, agent):
    _vm(m)
    agent.agent.answers["get_vm_config"] = lambda real, *p: {
        **real, "x = 1\nbootloader": "/tmp/evil"}
    with pytest.raises(HypervisorError, match="VM config key .* is not a plain name"):
        m.vms.start("g1")  # was: rendered as a second line of vm.cfg
    agent.agent.answers.clear()
    assert agent.agent.vms == {} and m.vms.get("g1").status == model.VmStatus.DOWN


def test_config_of_another_vm_is_refused(m, agent):
    _vm(m)
    agent.agent.answers["get_vm_config"] = lambda real, *p: {**real, "name": "other"}
    with pytest.raises(HypervisorError, match="names VM other"):
        m.vms.start("g1")
    assert agent.agent.vms == {}


def test_repository_id_with_a_traversal_is_refused(m, agent):
    _vm(m)
    agent.agent.answers["discover_repository_db"] = lambda real, *p: real.replace(
        'Uuid="', 'Uuid="../../', 1)
    with pytest.raises(HypervisorError, match="is not a repository UUID"):
        m.vms.start("g1")  # was: sent to create_vm as the repository
    assert agent.agent.vms == {}


def test_huge_reply_is_refused(m, agent, monkeypatch):
    monkeypatch.setattr(ovm3_client, "MAX_REPLY_BYTES", 4096, raising=False)
    agent.agent.answers["echo"] = lambda real, *p: "x" * 10000
    with pytest.raises(HypervisorError, match="with more than 4096 bytes; refused"):
        m.hosts.check("ovs1")


def test_odd_fault_is_one_line_naming_the_agent(m, agent):
    agent.agent.faults["discover_server"] = (-7, "line one\nline two" + "z" * 5000)
    with pytest.raises(HypervisorError, match=r"call discover_server failed \(fault -7\): "
                                              r"line one\\nline two") as exc:
        m.hosts.setup("ovs1")
    _one_line(exc.value, "127.0.0.2")
    assert len(str(exc.value)) < 700


@pytest.mark.parametrize(("network", "path", "what"), [
    ("xenbr0,script=/tmp/x", "/OVS/Repositories/r/VirtualDisks/a.raw", "is not a Linux bridge"),
    ("xenbr0", "/OVS/Repositories/../../etc/shadow", "without . or .. components"),
    ("xenbr0", "/OVS/Repositories/r/a.raw,xvdb,w", "without . or .. components"),
])
def test_what_goes_into_vm_cfg_is_checked(m, agent, network, path, what):
    _vm(m, network=network, path=path)
    with pytest.raises(InvalidInput, match=what):
        m.vms.start("g1")  # was: sent to create_vm as is
    assert agent.agent.vms == {} and "create_vm" not in agent.agent.calls


def test_a_hook_cannot_rename_the_vm_or_inject_a_disk(m, agent, hooks):
    hooks.add("before_vm_start", "10_bad.py", """
        import os
        path = os.environ["_hook_domxml"]
        text = open(path).read()
        open(path, "w").write(text.replace("xvda,w'", "xvda,w', 'file:/etc/shadow,xvdb,w'"))
    """)
    _vm(m)
    m.vms.start("g1")  # a plain path is a disk like any other
    assert agent.agent.vms
    m.vms.destroy("g1")
    hooks.add("before_vm_start", "20_bad.py", """
        import os
        path = os.environ["_hook_domxml"]
        text = open(path).read()
        open(path, "w").write(text.replace("name = 'g1'", "name = 'g2'"))
    """)
    with pytest.raises(InvalidInput, match="vm.cfg name 'g2' is not the VM's name 'g1'"):
        m.vms.start("g1")
    assert agent.agent.vms == {}
