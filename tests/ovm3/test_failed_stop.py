"""A stop whose ``stop_vm`` call fails: what the server says decides the VM's status.

The agent may stop the guest and still fail the call (a fault raised after xend
stopped it, a reply that comes after the driver's timeout). The driver then asks
the agent (``list_vm``): a guest that is down is recorded Down at once, with its
event; a guest that still runs gives the call's error, saying so, and stays Up.
Against the fake agent of tests/ovm3/agent.py over real XML-RPC on loopback.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.ovm3.agent import AgentServer, FakeAgent
from virtplane import model
from virtplane.errors import HostUnreachable, HypervisorError

FAULT = "Command: ['xm', 'shutdown', 'g1'] failed (1): stderr: Error: xend timed out"


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTPLANE_OVM3_PASSWORD", "secret")


@pytest.fixture
def agent():
    with AgentServer(FakeAgent("127.0.0.2", "ovs1")) as srv:
        yield srv


def _started(manager_factory: Any, srv: AgentServer, xdg: Any = None,
             timeout: float | None = None) -> Any:
    """A manager with host ovs1 set up and VM g1 running on it."""
    if timeout is not None:
        folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "virtplane.toml").write_text(f"[plugin.ovm3]\ntimeout_seconds = {timeout}\n")
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.hosts.add("ovs1", "cl", srv.url(), driver="ovm3")
    m.hosts.setup("ovs1", repository="nfs1:/export/repo")
    m.vms.create(model.VmSpec(name="g1", memory_mib=256, vcpus=1, disks=[model.DiskSpec(
        name="root", path="/OVS/Repositories/r/VirtualDisks/a.raw")]), "cl")
    m.vms.start("g1")
    assert m.vms.get("g1").status == model.VmStatus.UP
    return m


def _messages(m: Any) -> list[str]:
    return [msg for _t, _level, msg in m.vms.events("g1")]


def _is_down(m: Any, srv: AgentServer, how: str) -> None:
    vm = m.vms.get("g1")
    assert vm.status == model.VmStatus.DOWN and vm.host_id is None
    assert vm.status_reason == how
    assert srv.agent.vms == {}  # stopped and deleted on the server
    said = _messages(m)
    assert f"down: {how}" in said
    assert not any("failed" in s for s in said), said


def _is_up(m: Any, srv: AgentServer) -> None:
    vm = m.vms.get("g1")
    assert vm.status == model.VmStatus.UP
    assert vm.host_id == m.store.find(model.Host, "ovs1").id
    (entry,) = srv.agent.vms.values()
    assert entry["domid"]  # still running on the server
    assert not any(s.startswith("down:") for s in _messages(m))


def test_shutdown_whose_stop_faults_after_the_guest_stopped_records_down(
        manager_factory, agent, caplog):
    m = _started(manager_factory, agent)
    agent.agent.fail_after["stop_vm"] = FAULT
    assert m.vms.shutdown("g1", timeout=5) == "shutdown"
    _is_down(m, agent, "shutdown")
    # the call's failure is not lost: the driver logs it
    assert any("stop_vm of VM 'g1' failed" in r.getMessage() and "lists it as stopped"
               in r.getMessage() for r in caplog.records)


def test_shutdown_whose_stop_times_out_after_the_guest_stopped_records_down(
        manager_factory, agent, xdg):
    m = _started(manager_factory, agent, xdg, timeout=0.3)
    agent.agent.slow_after["stop_vm"] = 1.0
    assert m.vms.shutdown("g1", timeout=5) == "shutdown"
    _is_down(m, agent, "shutdown")


def test_destroy_whose_stop_faults_after_the_guest_stopped_records_down(
        manager_factory, agent):
    m = _started(manager_factory, agent)
    agent.agent.fail_after["stop_vm"] = FAULT
    m.vms.destroy("g1")
    _is_down(m, agent, "destroyed")


def test_forced_stop_after_the_timeout_that_faults_after_stopping_records_down(
        manager_factory, agent):
    m = _started(manager_factory, agent)
    agent.agent.stop_ignored = True

    def forced_fails(real: Any, repo: str, vm: str, force: bool = False) -> Any:
        if force:
            raise RuntimeError(FAULT)
        return real

    agent.agent.answers["stop_vm"] = forced_fails
    assert m.vms.shutdown("g1", timeout=0.3) == "destroyed"
    _is_down(m, agent, "destroyed")


@pytest.mark.parametrize("after", [True, False], ids=["fault-after-the-call", "fault"])
def test_shutdown_that_fails_while_the_guest_runs_keeps_it_up(manager_factory, agent, after):
    m = _started(manager_factory, agent)
    agent.agent.stop_ignored = True  # a graceful stop that ran changed nothing
    (agent.agent.fail_after if after else agent.agent.fail)["stop_vm"] = FAULT
    with pytest.raises(HypervisorError, match=r"call stop_vm failed \(fault 1\): .*xend timed "
                                              r"out.* \(VM 'g1' is still running on "
                                              r"http://oracle@127\.0\.0\.2:\d+: xen state "
                                              r"r-----\)") as exc:
        m.vms.shutdown("g1", timeout=5)
    assert "Traceback" not in str(exc.value) and "\n" not in str(exc.value)
    _is_up(m, agent)
    vm = m.vms.get("g1")
    assert "is still running" in vm.status_reason
    assert any(s.startswith("shutdown failed: ") and "is still running" in s
               for s in _messages(m))


def test_destroy_that_fails_while_the_guest_runs_keeps_it_up(manager_factory, agent):
    m = _started(manager_factory, agent)
    agent.agent.fail["stop_vm"] = FAULT
    with pytest.raises(HypervisorError, match=r"\(VM 'g1' is still running on .*xen state "
                                              r"r-----\)"):
        m.vms.destroy("g1")
    _is_up(m, agent)
    assert any(s.startswith("destroy failed: ") and "is still running" in s
               for s in _messages(m))


def test_a_stop_whose_outcome_cannot_be_read_keeps_the_vm_up(manager_factory, agent, xdg):
    """The agent stopped answering: nothing says the guest is down, so the error
    stands (with both causes) and the monitor decides later."""
    m = _started(manager_factory, agent, xdg, timeout=0.3)
    agent.agent.slow_after["stop_vm"] = 1.0
    agent.agent.fail["list_vm"] = "Command: ['xm', 'list'] failed (1)"
    with pytest.raises(HostUnreachable, match=r"did not answer stop_vm within 0\.3 s \(whether "
                                              r"VM 'g1' stopped is unknown: its state could "
                                              r"not be read: .*list_vm failed"):
        m.vms.shutdown("g1", timeout=5)
    vm = m.vms.get("g1")
    assert vm.status == model.VmStatus.UP and "stopped is unknown" in vm.status_reason
    assert not any(s.startswith("down:") for s in _messages(m))
