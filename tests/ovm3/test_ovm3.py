"""The ovm3 driver against the fake agent (tests/ovm3/agent.py) over real XML-RPC on
loopback: discovery, setup, lifecycle with hooks on vm.cfg, stats, NIC plug,
in-pool migration, and every failure the issue lists."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.ovm3.agent import AgentServer, FakeAgent
from virtplane import model
from virtplane.errors import HostUnreachable, HypervisorError, InvalidInput


@pytest.fixture(autouse=True)
def password(monkeypatch):
    monkeypatch.setenv("VIRTPLANE_OVM3_PASSWORD", "secret")


@pytest.fixture
def agents():
    a = AgentServer(FakeAgent("127.0.0.2", "ovs1"))
    b = AgentServer(FakeAgent("127.0.0.3", "ovs2"))
    with a, b:
        yield a, b


def _conf(xdg, text: str) -> None:
    folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "virtplane.toml").write_text(text)


@pytest.fixture
def m(manager_factory, agents):
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.hosts.add("ovs1", "cl", agents[0].url(), driver="ovm3")
    return m


def _ready(m, name="ovs1", create=True):
    return m.hosts.setup(name, repository="nfs1:/export/repo", pool_vip="192.0.2.10",
                         pool_alias="pool1", pool_create=create,
                         vlans=[("xenbr0", "eth0", 200)])


def _vm(m, name="g1", nics=("xenbr0",)):
    return m.vms.create(model.VmSpec(
        name=name, memory_mib=256, vcpus=2,
        disks=[model.DiskSpec(name="root", path="/OVS/Repositories/r/VirtualDisks/a.raw")],
        nics=[model.NicSpec(name=f"n{i}", network=n) for i, n in enumerate(nics)],
        display=model.DisplaySpec(type="vnc")), "cl")


def test_discovery_into_host_capabilities(m):
    host = m.store.find(model.Host, "ovs1")
    caps = host.capabilities
    assert caps["ovm_version"] == "3.3.1-1065" and caps["hypervisor"] == "xen"
    assert caps["hypervisor_version"] == "4.1.3OVM"
    assert caps["memory_bytes"] == 4194304 * 4096
    assert caps["cpu"] == {"model": "x86_64", "sockets": 1, "cores": 4, "threads": 2,
                           "mhz": 2400}
    assert caps["membership"] == "Unowned" and host.status == model.HostStatus.UP


@pytest.mark.parametrize("version", ["3.4.1-100", "2.2.0"])
def test_unsupported_versions_are_refused(manager_factory, version):
    with AgentServer(FakeAgent("127.0.0.4", "old", version=version)) as srv:
        m = manager_factory()
        m.datacenters.add("dc")
        m.clusters.add("cl", "dc")
        with pytest.raises(HypervisorError, match=f"runs Oracle VM {version}; only 3.2.x and "
                                                  "3.3.x are supported"):
            m.hosts.add("old", "cl", srv.url(), driver="ovm3")
        assert m.store.list(model.Host) == []


def test_setup_pool_repository_and_vlan_bridge(m, agents):
    done = _ready(m)
    a = agents[0].agent
    assert a.roles == "xen,utility" and a.manager == "0004fb0000010000d1a749d4295041fb"
    assert any("created and mounted at /OVS/Repositories/" in d for d in done)
    assert a.pool["alias"] == "pool1" and a.pool["vip"] == "192.0.2.10"
    assert a.bridges["xenbr0.200"]["phys"] == "eth0.200"
    assert "NOZEROCONF in place" in done[-1]
    # idempotent: a second run finds everything in place
    again = _ready(m)
    assert "already mounted" in " ".join(again) and "already in server pool" in " ".join(again)
    # a second server joins the pool
    m.hosts.add("ovs2", "cl", agents[1].url(), driver="ovm3")
    _ready(m, "ovs2", create=False)
    assert agents[1].agent.pool["id"] == a.pool["id"]
    assert a.pool["members"] == ["127.0.0.2", "127.0.0.3"]


def test_setup_refusals(m, agents):
    a = agents[0].agent
    a.manager = "someoneelse"
    with pytest.raises(HypervisorError, match="is owned by manager someoneelse, not this one"):
        _ready(m)
    a.manager = None
    a.bridges["xenbr0"]["address"] = "169.254.3.4"
    with pytest.raises(HypervisorError, match="bridge xenbr0 holds link-local 169.254.3.4: "
                                              "NOZEROCONF=yes is missing"):
        m.hosts.setup("ovs1")
    with pytest.raises(InvalidInput, match="VLAN id 5000 is out of range"):
        m.hosts.setup("ovs1", vlans=[("xenbr0", "eth0", 5000)])
    with pytest.raises(InvalidInput, match="must be an NFS export"):
        m.hosts.setup("ovs1", repository="/local/path")


def test_lifecycle_with_hooks_on_vm_cfg(m, agents, hooks):
    _ready(m)
    hooks.add("before_vm_start", "10_memory.py", """
        import os
        path = os.environ["_hook_domxml"]
        text = open(path).read()
        assert "OVM_domain_type = 'xen_pvm'" in text, text
        open(path, "w").write(text.replace("memory = 256", "memory = 384"))
    """)
    vm = _vm(m)
    m.vms.start("g1")
    a = agents[0].agent
    (uuid, entry), = a.vms.items()
    cfg = entry["config"]
    assert uuid == vm.id and cfg["name"] == "g1" and cfg["vcpus"] == 2
    assert cfg["memory"] == 384  # the hook's edit reached the agent
    assert cfg["disk"] == ["file:/OVS/Repositories/r/VirtualDisks/a.raw,xvda,w"]
    assert cfg["vif"][0].startswith("mac=00:16:3e:") and cfg["vif"][0].endswith(",bridge=xenbr0")
    assert cfg["vfb"][0].startswith("type=vnc,vncunused=1,vnclisten=0.0.0.0")
    assert m.vms.get("g1").status == model.VmStatus.UP
    assert "memory = 384" in m.vms.get("g1").started_xml
    stats = m.vms.stats("g1")
    assert stats["net_rx_bytes"] == 200 and stats["vcpus"] == 2 and stats["vnc_port"] == 5901
    m.vms.reboot("g1")
    with pytest.raises(HypervisorError, match="pausing a VM is not available on OVM3"):
        m.vms.pause("g1")
    with pytest.raises(InvalidInput, match="cannot snapshot a running VM"):
        m.snapshots.take("g1", "s1")
    # NIC plug and unplug rewrite the config with configure_vm
    m.devices.hotplug_nic("g1", model.NicSpec(name="extra", network="xenbr0.200"))
    assert len(a.vms[uuid]["config"]["vif"]) == 2
    m.devices.hotunplug_nic("g1", "extra")
    assert len(a.vms[uuid]["config"]["vif"]) == 1
    with pytest.raises(HypervisorError, match="hot-plugging a disk is not available"):
        m.devices.hotplug_disk("g1", model.DiskSpec(name="d2", path="/OVS/x.raw"))
    assert m.vms.shutdown("g1", timeout=5) == "shutdown"
    assert a.vms == {} and m.vms.get("g1").status == model.VmStatus.DOWN


def test_stop_that_the_guest_ignores_is_forced(m, agents):
    _ready(m)
    _vm(m)
    m.vms.start("g1")
    agents[0].agent.stop_ignored = True
    assert m.vms.shutdown("g1", timeout=0.5) == "destroyed"
    assert agents[0].agent.vms == {}


def test_failed_start_leaves_nothing(m, agents):
    _ready(m)
    _vm(m, nics=("nosuchbridge",))
    with pytest.raises(HypervisorError, match="Could not find bridge device nosuchbridge"):
        m.vms.start("g1")
    assert agents[0].agent.vms == {}
    vm = m.vms.get("g1")
    assert vm.status == model.VmStatus.DOWN and "nosuchbridge" in vm.status_reason


def test_no_repository_is_explained(m):
    _vm(m)
    with pytest.raises(HypervisorError, match="has no mounted repository; run `virtplane host "
                                              "setup"):
        m.vms.start("g1")


def test_migration_inside_a_pool_only(m, agents):
    m.hosts.add("ovs2", "cl", agents[1].url(), driver="ovm3")
    _ready(m)
    m.hosts.setup("ovs2", repository="nfs1:/export/repo")
    _vm(m)
    m.vms.start("g1", host="ovs1")
    with pytest.raises(HypervisorError, match="migrates only inside a server pool"):
        m.migrations.migrate("g1", "ovs2")
    vm = m.vms.get("g1")
    assert vm.status == model.VmStatus.UP and vm.host_id == m.store.find(model.Host, "ovs1").id
    assert agents[0].agent.vms and not agents[1].agent.vms
    _ready(m, "ovs2", create=False)
    m.migrations.migrate("g1", "ovs2")
    vm = m.vms.get("g1")
    assert vm.host_id == m.store.find(model.Host, "ovs2").id
    assert agents[1].agent.vms and not agents[0].agent.vms
    assert "migrate_vm" in agents[0].agent.calls
    m.vms.destroy("g1")
    assert agents[1].agent.vms == {}


def test_wrong_password(manager_factory, agents, monkeypatch):
    monkeypatch.setenv("VIRTPLANE_OVM3_PASSWORD", "wrong")
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    with pytest.raises(HypervisorError, match="refused user 'oracle': 401") as exc:
        m.hosts.add("ovs1", "cl", agents[0].url(), driver="ovm3")
    assert "wrong" not in str(exc.value)  # the password is never shown


def test_agent_fault_becomes_a_clear_error(m, agents):
    agents[0].agent.fail["discover_server"] = "Command: ['dmidecode'] failed (1)"
    # the message names the agent it came from
    with pytest.raises(HypervisorError, match=r"OVM3 agent http://oracle@127\.0\.0\.2:\d+ call "
                                              r"discover_server failed \(fault 1\): .*dmidecode"):
        m.hosts.setup("ovs1")


def test_slow_reply_times_out(manager_factory, agents, xdg):
    _conf(xdg, "[plugin.ovm3]\ntimeout_seconds = 0.5\n")
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.hosts.add("ovs1", "cl", agents[0].url(), driver="ovm3")
    agents[0].agent.delay = 2.0
    t0 = time.monotonic()
    with pytest.raises(HostUnreachable, match="did not answer discover_server within 0.5 s"):
        m.hosts.setup("ovs1")
    assert time.monotonic() - t0 < 1.9


def test_dropped_connection_mid_call(m, agents):
    agents[0].agent.drop.add("discover_server")
    with pytest.raises(HostUnreachable, match="unreachable during discover_server"):
        m.hosts.setup("ovs1")


def test_unreachable_agent(manager_factory):
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    with pytest.raises(HostUnreachable, match="unreachable"):
        m.hosts.add("gone", "cl", "http://oracle@127.0.0.9:1", driver="ovm3")


def test_bad_url(manager_factory):
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    with pytest.raises(InvalidInput, match="must start with http:// or https://"):
        m.hosts.add("x", "cl", "ovm3://host", driver="ovm3")


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.5", "-addext", "subjectAltName=IP:127.0.0.5",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def test_https_verification(manager_factory, xdg, cert):
    crt, key = cert
    with AgentServer(FakeAgent("127.0.0.5", "tls"), cert=str(crt), key=str(key)) as srv:
        m = manager_factory()
        m.datacenters.add("dc")
        m.clusters.add("cl", "dc")
        with pytest.raises(HostUnreachable, match="certificate not trusted .*verify_tls = false"):
            m.hosts.add("a", "cl", srv.url(), driver="ovm3")
        _conf(xdg, f"[plugin.ovm3]\nca_file = '{crt}'\n")
        m2 = manager_factory()
        assert m2.hosts.add("b", "cl", srv.url(), driver="ovm3").status == model.HostStatus.UP
        _conf(xdg, "[plugin.ovm3]\nverify_tls = false\n")
        m3 = manager_factory()
        assert m3.hosts.add("c", "cl", srv.url(), driver="ovm3").status == model.HostStatus.UP


def test_cli_on_an_ovm3_host(cli, agents):
    assert cli("dc", "add", "dc")[0] == 0
    assert cli("cluster", "add", "cl", "--dc", "dc")[0] == 0
    rc, out, err = cli("host", "add", "ovs1", agents[0].url(), "--driver", "ovm3",
                       "--cluster", "cl")
    assert rc == 0 and "Up" in out, err
    rc, out, err = cli("host", "options", "ovm3")
    assert rc == 0 and "pool_create" in out and "BRIDGE@INTERFACE:VLAN" in out, err
    rc, out, err = cli("host", "setup", "ovs1", "-o", "repository=nfs1:/r", "-o",
                       "pool_vip=192.0.2.1", "-o", "pool_create=yes", "-o",
                       "vlans=xenbr0@eth0:300")
    assert rc == 0 and "VLAN bridge xenbr0.300 on eth0" in out, err
    rc, out, err = cli("host", "setup", "ovs1", "-o", "vlans=bad")
    assert rc == 1 and "is not BRIDGE@INTERFACE:VLAN" in err
    rc, out, err = cli("host", "setup", "ovs1", "-o", "vlan=xenbr0@eth0:300")
    assert rc == 1 and "has no option 'vlan'" in err and "allowed: repository" in err
    rc, out, err = cli("host", "setup", "ovs1", "-o", "pool_create=maybe")
    assert rc == 1 and "is not a yes/no value" in err
    rc, out, err = cli("vm", "create", "g", "--cluster", "cl", "--memory", "256",
                       "--nic", "xenbr0")
    assert rc == 0, err
    rc, out, err = cli("vm", "start", "g")
    assert rc == 0, err
    rc, out, err = cli("vm", "stats", "g")
    assert rc == 0 and '"net_tx_bytes": 100' in out, err
    rc, out, err = cli("vm", "pause", "g")
    assert rc == 1 and "not available on OVM3" in err
    rc, out, err = cli("vm", "shutdown", "g", "--timeout", "5")
    assert rc == 0, err
    assert agents[0].agent.vms == {}


def test_memory_admission_check_holds_on_ovm3_hosts(m, agents):
    """OVM3 reports memory in bytes; 1.x read only ``memory_mib`` and let any VM through."""
    _ready(m)
    host = m.hosts.get("ovs1")
    total = m.hosts.typed_capabilities("ovs1").memory_mib
    assert total == host.capabilities["memory_bytes"] // (1 << 20) > 0
    m.vms.create(model.VmSpec(name="huge", memory_mib=total + 1024, vcpus=1), "cl")
    with pytest.raises(InvalidInput, match=f"asks for {total + 1024} MiB but host 'ovs1' "
                                           f"has {total} MiB"):
        m.vms.start("huge")
    assert agents[0].agent.vms == {}
