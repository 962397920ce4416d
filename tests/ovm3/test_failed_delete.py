"""A stop that worked, then a ``delete_vm`` that failed: the VM is Down, and its next
start deletes the stopped definition left on the server before creating it again.

Before, the delete's error failed the whole stop: the VM stayed Up in the store
while the guest was stopped, and the next start's ``create_vm`` was refused ("VM
... already exists") until someone deleted the definition by hand. Against the fake
agent of tests/ovm3/agent.py over real XML-RPC on loopback.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.ovm3.agent import AgentServer, FakeAgent
from tests.ovm3.test_failed_stop import _started
from virtplane import model
from virtplane.errors import HypervisorError

DELETE_FAULT = "Command: ['rm', '-rf', 'VirtualMachines/x'] failed (1): Device or resource busy"


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTPLANE_OVM3_PASSWORD", "secret")


@pytest.fixture
def agent():
    with AgentServer(FakeAgent("127.0.0.2", "ovs1")) as srv:
        yield srv


def _left_defined(srv: AgentServer) -> dict[str, Any]:
    (entry,) = srv.agent.vms.values()
    assert not entry["domid"]  # stopped, still defined
    return entry


@pytest.mark.parametrize("how", ["shutdown", "destroy"])
def test_a_failed_delete_after_the_stop_records_down_and_the_next_start_works(
        manager_factory: Any, agent: AgentServer, caplog: Any, how: str) -> None:
    m = _started(manager_factory, agent)
    agent.agent.fail["delete_vm"] = DELETE_FAULT
    if how == "shutdown":
        assert m.vms.shutdown("g1", timeout=5) == "shutdown"
    else:
        m.vms.destroy("g1")
    vm = m.vms.get("g1")
    assert vm.status == model.VmStatus.DOWN and vm.host_id is None
    _left_defined(agent)
    assert any("deleting its definition failed" in r.getMessage() and "Device or resource "
               "busy" in r.getMessage() for r in caplog.records)
    del agent.agent.fail["delete_vm"]
    before = len(agent.agent.calls)
    m.vms.start("g1")  # the leftover is deleted first, then created again
    assert m.vms.get("g1").status == model.VmStatus.UP
    (entry,) = agent.agent.vms.values()
    assert entry["domid"]
    calls = [c for c in agent.agent.calls[before:] if c in ("create_vm", "delete_vm")]
    assert calls == ["create_vm", "delete_vm", "create_vm"], agent.agent.calls[before:]


def test_a_running_guest_of_the_same_id_is_not_deleted(manager_factory: Any,
                                                       agent: AgentServer) -> None:
    """create_vm refused while the guest runs (the store says Down, the server
    disagrees): nothing is deleted, the refusal stands."""
    m = _started(manager_factory, agent)
    m.store.modify(model.Vm, "g1", lambda v: setattr(v, "status", model.VmStatus.DOWN)
                   or setattr(v, "host_id", None))
    with pytest.raises(HypervisorError, match="already exists"):
        m.vms.start("g1")
    (entry,) = agent.agent.vms.values()
    assert entry["domid"]  # still running, still defined
    assert "delete_vm" not in agent.agent.calls


def test_another_vms_definition_under_the_id_is_not_deleted(manager_factory: Any,
                                                            agent: AgentServer) -> None:
    m = _started(manager_factory, agent)
    agent.agent.fail["delete_vm"] = DELETE_FAULT
    m.vms.destroy("g1")
    del agent.agent.fail["delete_vm"]
    entry = _left_defined(agent)
    entry["config"]["name"] = "someone-else"  # the id's definition is not g1's
    with pytest.raises(HypervisorError, match="already exists"):
        m.vms.start("g1")
    assert _left_defined(agent)["config"]["name"] == "someone-else"
    assert m.vms.get("g1").status == model.VmStatus.DOWN
