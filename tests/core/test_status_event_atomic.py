"""A VM's state change and the event that says it are written together or not at
all (``Context.record``): a failed or killed event write leaves the status as it
was, and a conflicting status write leaves no event behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from virtplane import model
from virtplane.errors import Conflict


def _plane(m: Any) -> Any:
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.hosts.add("h", "cl", "test:///default")
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "cl")
    return m


def _messages(m: Any, vm: model.Vm) -> list[str]:
    return [message for _ts, _level, message in m.context.store.events(vm.id)]


def test_start_writes_the_status_and_its_event(manager_factory: Any) -> None:
    m = _plane(manager_factory())
    vm = m.vms.start("vm1")
    stored = m.context.store.get(model.Vm, vm.id)
    assert stored.status == model.VmStatus.UP
    assert _messages(m, vm)[-1] == "started on h"
    m.vms.destroy("vm1")
    assert m.context.store.get(model.Vm, vm.id).status == model.VmStatus.DOWN
    assert _messages(m, vm)[-1] == "down: destroyed"


def test_a_failed_event_write_leaves_the_status_unwritten(manager_factory: Any,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    m = _plane(manager_factory())
    store = m.context.store
    vm = store.find(model.Vm, "vm1")
    before = (vm.revision, len(_messages(m, vm)))
    vm.status = model.VmStatus.UP

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("disk full")

    # the two-write path (SQLite's; PostgreSQL's for a rename): a separate event write
    monkeypatch.setattr(store, "_EVENT_WITH_UPDATE", False)
    monkeypatch.setattr(store, "add_event", broken)
    with pytest.raises(OSError, match="disk full"):
        m.context.record(vm, "changed")
    monkeypatch.undo()
    stored = store.get(model.Vm, vm.id)
    assert stored.status == model.VmStatus.DOWN  # the update went with the event
    assert (stored.revision, len(_messages(m, stored))) == before
    assert vm.revision == before[0]  # the caller's copy can be written again
    m.context.record(vm, "changed")
    assert store.get(model.Vm, vm.id).status == model.VmStatus.UP
    assert _messages(m, vm)[-1] == "changed"


def test_a_conflicting_write_adds_no_event(manager_factory: Any) -> None:
    m = _plane(manager_factory())
    store = m.context.store
    stale = store.find(model.Vm, "vm1")
    fresh = store.find(model.Vm, "vm1")
    fresh.status_reason = "newer"
    store.update(fresh)
    count = len(_messages(m, stale))
    stale.status = model.VmStatus.UP
    with pytest.raises(Conflict):
        m.context.record(stale, "should not be logged")
    assert len(_messages(m, stale)) == count
    assert store.get(model.Vm, stale.id).status == model.VmStatus.DOWN


def test_a_kill_between_the_two_writes_keeps_neither(manager_factory: Any,
                                                    state_backend: Any) -> None:
    """The process dies after the status update, before the event: after it, the
    store holds the old status and no event (a real kill, not an exception)."""
    m = _plane(manager_factory())
    store = m.context.store
    vm = store.find(model.Vm, "vm1")
    before = (vm.revision, len(_messages(m, vm)))
    m.close()
    script = textwrap.dedent("""
        import os, sys
        from virtplane import Manager, config, model
        m = Manager(config.load(), state_path=sys.argv[1])
        store = m.context.store
        vm = store.find(model.Vm, "vm1")
        vm.status = model.VmStatus.UP
        def die(*args, **kwargs):
            os._exit(9)  # killed after the update ran, before the event
        store.add_event = die
        store._EVENT_WITH_UPDATE = False  # PostgreSQL's one statement has no between
        m.context.record(vm, "never")
        """)
    location = state_backend.location(state_backend.default)
    done = subprocess.run([sys.executable, "-c", script, location], env=dict(os.environ),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 9, done.stderr
    m2 = manager_factory()
    stored = m2.context.store.get(model.Vm, vm.id)
    assert stored.status == model.VmStatus.DOWN
    assert (stored.revision, len(_messages(m2, stored))) == before
