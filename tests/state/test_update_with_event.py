"""StateStore.update_with_event: a row's update and its event, both or neither.

On PostgreSQL the usual case is one statement (a data-modifying ``WITH``); a
refused update (a conflict, a rename, a gone row) takes the general path, which
says why or writes both in one transaction. On SQLite it is always that
transaction. ``tests/core/test_status_event_atomic.py`` kills a process between
the transaction's two writes.
"""

from __future__ import annotations

from typing import Any

import pytest

from virtplane import model
from virtplane.errors import Conflict, NotFound, StateError


def _vm(store: Any, name: str = "vm1") -> model.Vm:
    vm = model.Vm(spec=model.VmSpec(name=name, memory_mib=64), cluster_id="c1")
    store.add(vm)
    return vm


def _messages(store: Any, vm: model.Vm) -> list[str]:
    return [message for _ts, _level, message in store.events(vm.id)]


def test_the_row_and_its_event_are_written(store: Any) -> None:
    vm = _vm(store)
    vm.status = model.VmStatus.UP
    store.update_with_event(vm, "started", "info", code=1)
    assert vm.revision == 2
    stored = store.get(model.Vm, vm.id)
    assert (stored.status, stored.revision) == (model.VmStatus.UP, 2)
    assert _messages(store, vm) == ["started"]
    vm.status = model.VmStatus.DOWN  # the same copy again: its revision moved
    store.update_with_event(vm, "stopped", "warning")
    assert store.get(model.Vm, vm.id).revision == 3
    assert store.events(vm.id)[-1][1:] == ("warning", "stopped")


def test_a_conflict_writes_neither(store: Any, open_store: Any) -> None:
    vm = _vm(store)
    other = open_store().get(model.Vm, vm.id)
    other.status_reason = "newer"
    open_store().update(other)
    vm.status = model.VmStatus.UP
    with pytest.raises(Conflict):
        store.update_with_event(vm, "never")
    assert _messages(store, vm) == []
    assert store.get(model.Vm, vm.id).status_reason == "newer"
    assert vm.revision == 1


def test_a_removed_row_is_not_found_and_gets_no_event(store: Any) -> None:
    vm = _vm(store)
    store.remove(model.Vm, vm.id)
    with pytest.raises(NotFound):
        store.update_with_event(vm, "never")
    assert _messages(store, vm) == []


def test_a_rename_takes_the_general_path_and_writes_both(store: Any) -> None:
    vm = _vm(store)
    vm.spec.name = "renamed"
    store.update_with_event(vm, "renamed it")
    assert store.find(model.Vm, "renamed").revision == 2
    assert _messages(store, vm) == ["renamed it"]


def test_postgresql_writes_both_in_one_statement(pg_url: str) -> None:
    from virtplane.state import StateStore

    store = StateStore(pg_url)
    try:
        vm = _vm(store)
        sent: list[str] = []
        run = store._run

        def counted(sql: str, *args: Any, **kwargs: Any) -> Any:
            sent.append(sql)
            return run(sql, *args, **kwargs)

        store._run = counted
        vm.status = model.VmStatus.UP
        store.update_with_event(vm, "started")
        assert len(sent) == 1 and sent[0].startswith("WITH u AS (UPDATE objects"), sent
        del store._run
        assert store.get(model.Vm, vm.id).status == model.VmStatus.UP
        assert _messages(store, vm) == ["started"]
    finally:
        store.dispose()


def test_postgresql_a_refused_event_leaves_the_row_as_it_was(pg_url: str) -> None:
    """The event insert fails inside the one statement (a constraint the test adds):
    the update in the same statement is not kept either."""
    from virtplane.state import StateStore

    store = StateStore(pg_url)
    try:
        vm = _vm(store)
        store._count("ALTER TABLE events ADD CONSTRAINT no_refused "
                     "CHECK (message <> 'refused')")
        vm.status = model.VmStatus.UP
        with pytest.raises(StateError, match="no_refused"):
            store.update_with_event(vm, "refused")
        stored = store.get(model.Vm, vm.id)
        assert (stored.status, stored.revision) == (model.VmStatus.DOWN, 1)
        assert _messages(store, vm) == []
        assert vm.revision == 1  # the copy can be written again
        store.update_with_event(vm, "accepted")
        assert store.get(model.Vm, vm.id).revision == 2
    finally:
        store.dispose()
