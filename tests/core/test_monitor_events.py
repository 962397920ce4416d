"""The lifecycle-event handler runs on the hypervisor's event thread: it must never
raise there. A write that loses a compare-and-set race is re-read and judged again."""

from __future__ import annotations

from typing import Any

import pytest

from virtplane import model
from virtplane.errors import Conflict


def _running_vm(m: Any) -> tuple[model.Host, model.Vm]:
    m.datacenters.add("dc1")
    m.clusters.add("c1", "dc1")
    host = m.hosts.add("h1", "c1", "test:///default")
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "c1")

    def up(v: model.Vm) -> None:
        v.status, v.host_id = model.VmStatus.UP, host.id

    vm = m.context.store.modify(model.Vm, "vm1", up)
    return host, vm


def test_a_conflicting_down_is_read_again_and_recorded(manager_factory: Any) -> None:
    m = manager_factory()
    host, _vm = _running_vm(m)
    real = m.vms.mark_down
    calls: list[int] = []

    def racing(vm: model.Vm, reason: str) -> None:
        calls.append(vm.revision)
        if len(calls) == 1:  # a poll wrote the VM between the read and this write
            raise Conflict("vm", vm.name, vm.revision, vm.revision + 1)
        real(vm, reason)

    m.vms.mark_down = racing
    m.monitor.on_stopped(host, "vm1", "crashed")
    assert len(calls) == 2
    assert m.vms.get("vm1").status == model.VmStatus.DOWN


def test_a_down_that_always_conflicts_is_left_to_the_poll_without_raising(
        manager_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    m = manager_factory()
    host, _vm = _running_vm(m)

    def always(vm: model.Vm, reason: str) -> None:
        raise Conflict("vm", vm.name, vm.revision, vm.revision + 1)

    m.vms.mark_down = always
    m.monitor.on_stopped(host, "vm1", "crashed")  # no exception on the event thread
    assert m.vms.get("vm1").status == model.VmStatus.UP
    assert "the next host poll records it" in caplog.text
