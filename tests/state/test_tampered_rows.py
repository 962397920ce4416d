"""What the store does with a row it cannot use (the cases the tampered-rows fuzzer,
test_tampered_rows_fuzz.py, found), on both backends where the backend can hold the
bad value at all (PostgreSQL's columns are typed: no text versions, no bytes).

The rule (:meth:`virtplane.state.StateStore.list`): reading the bad object raises
:class:`~virtplane.state.UnreadableRow`, one line naming its kind, name and id and
pointing at ``virtplane state check``; listings leave it out with a warning; nothing
is written over it; ``state check`` names it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from virtplane import model
from virtplane.errors import InvalidInput, LeaseLost, StateError


def raw(store: Any, sql: str, **params: Any) -> None:
    """Write around the store (as another tool, or an administrator, would)."""
    store._rows(sql, params)


def sqlite_raw(store: Any, sql: str, *params: Any) -> None:
    """Write values SQLite keeps but the store's own parameters would not carry."""
    con = sqlite3.connect(store.path)
    try:
        con.execute(sql, params)
        con.commit()
    finally:
        con.close()


def need_sqlite(store: Any) -> None:
    if store.backend != "sqlite":
        pytest.skip("PostgreSQL's typed columns cannot hold this value")


def vms(store: Any) -> tuple[model.Vm, model.Vm]:
    a = model.Vm(spec=model.VmSpec(name="vm1", memory_mib=256), cluster_id="c1")
    b = model.Vm(spec=model.VmSpec(name="vm2", memory_mib=256), cluster_id="c1")
    store.add(a)
    store.add(b)
    return a, b


def assert_names_row(exc: Any, kind: str, obj_id: str, name: str | None = None) -> None:
    from virtplane.state import UnreadableRow

    assert isinstance(exc, UnreadableRow)
    text = str(exc)
    assert "\n" not in text and len(text) < 700, text
    assert f"the {kind} " in text and obj_id in text, text
    assert name is None or repr(name) in text, text
    assert "virtplane state check" in text, text


BAD_JSON = {
    "not JSON": "{",
    "a list": "[1, 2]",
    "null": "null",
    "a number": "12",
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "NaN": '{"spec": NaN}',
    "a wrong type": None,  # filled from the row itself
    "another kind's JSON": json.dumps({"id": "x", "name": "dc", "description": "",
                                       "compat_version": "4.8"}),
}


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_get_find_and_modify_of_a_bad_row_raise_unreadable_row(store: Any, case: str) -> None:
    from virtplane.state import UnreadableRow

    vm1, vm2 = vms(store)
    text = BAD_JSON[case]
    if text is None:
        data = json.loads(model.to_json(vm1))
        data["spec"]["memory_mib"] = "lots"
        text = json.dumps(data)
    raw(store, "UPDATE objects SET data=:d WHERE id=:id", d=text, id=vm1.id)
    for call in (lambda: store.get(model.Vm, vm1.id), lambda: store.find(model.Vm, "vm1"),
                 lambda: store.modify(model.Vm, "vm1", lambda v: None)):
        with pytest.raises(UnreadableRow) as info:
            call()
        assert_names_row(info.value, "vm", vm1.id, "vm1")
    # nothing was written over it, and the other VM is untouched
    assert store._rows("SELECT data, version FROM objects WHERE id=:id",
                       {"id": vm1.id}) == [(text, 1)]
    assert store.get(model.Vm, vm2.id) == vm2


def test_a_row_holding_another_objects_json_is_not_that_object(store: Any) -> None:
    """Before: get(vm1's id) returned vm2, and writing that copy back changed vm2."""
    from virtplane.state import UnreadableRow

    vm1, vm2 = vms(store)
    raw(store, "UPDATE objects SET data=:d WHERE id=:id", d=model.to_json(vm2), id=vm1.id)
    with pytest.raises(UnreadableRow, match="another object's") as info:
        store.get(model.Vm, vm1.id)
    assert_names_row(info.value, "vm", vm1.id, "vm1")
    assert [v.id for v in store.list(model.Vm)] == [vm2.id]


def test_a_list_leaves_a_bad_row_out_and_warns_once(store: Any,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    vm1, vm2 = vms(store)
    raw(store, "UPDATE objects SET data='{' WHERE id=:id", id=vm1.id)
    with caplog.at_level(logging.DEBUG, logger="virtplane.state"):
        assert store.list(model.Vm) == [vm2]
        assert store.list(model.Vm) == [vm2]
    warned = [r for r in caplog.records if "vm1" in r.getMessage()]
    assert [r.levelno for r in warned] == [logging.WARNING, logging.DEBUG]
    assert "left out of the list" in warned[0].getMessage()
    assert "virtplane state check" in warned[0].getMessage()
    # what the list has is usable: the intact VM is written as before
    store.modify(model.Vm, "vm2", lambda v: setattr(v, "status_reason", "ok"))
    assert store.get(model.Vm, vm2.id).status_reason == "ok"


def test_owned_and_mentioning_raise_for_a_bad_row_they_find(store: Any) -> None:
    """They answer a question about one object (what a VM owns, which VMs use a disk):
    a bad row among the answers is not silently dropped."""
    from virtplane.state import UnreadableRow

    vm1, _ = vms(store)
    image = model.Image(domain_id="d", owner=f"vm:{vm1.id}")
    store.add(image)
    raw(store, "UPDATE objects SET data='[]' WHERE id=:id", id=image.id)
    with pytest.raises(UnreadableRow):
        store.owned(model.Image, vm1.id)
    raw(store, "UPDATE objects SET data=:d WHERE id=:id",
        d=model.to_json(vm1).replace('"memory_mib": 256', '"memory_mib": "x"'), id=vm1.id)
    with pytest.raises(UnreadableRow):
        store.mentioning(model.Vm, ["c1"])


@pytest.mark.parametrize("version", [0, -1])
def test_a_version_the_store_never_writes_is_refused(store: Any, version: int) -> None:
    from virtplane.state import UnreadableRow

    vm1, vm2 = vms(store)
    raw(store, "UPDATE objects SET version=:v WHERE id=:id", v=version, id=vm1.id)
    with pytest.raises(UnreadableRow, match="version column") as info:
        store.get(model.Vm, vm1.id)
    assert_names_row(info.value, "vm", vm1.id, "vm1")
    assert store.list(model.Vm) == [vm2]
    assert vm1.id not in store.versions(model.Vm)
    with pytest.raises(UnreadableRow):
        store.remove(model.Vm, vm1.id, revision=1)  # never on a stale copy's say
    assert any(vm1.id in p and "version" in p for p in store.check())


@pytest.mark.parametrize("version", ["abc", 1.5, b"\x01"])
def test_a_text_version_is_never_written_over(store: Any, version: Any) -> None:
    """Before: the copy read with it carried revision 'abc'; an update of an older copy
    (the compare-and-set missing) failed with a TypeError or ValueError, and a lenient
    store wrote over the row, its version starting again from 1."""
    from virtplane.state import StateStore, UnreadableRow

    need_sqlite(store)
    vm1, vm2 = vms(store)
    sqlite_raw(store, "UPDATE objects SET version=? WHERE id=?", version, vm1.id)
    with pytest.raises(UnreadableRow):
        store.get(model.Vm, vm1.id)
    assert store.versions(model.Vm) == {vm2.id: 1}
    for strict in (True, False):
        other = StateStore(store.location, strict=strict)
        try:
            vm1.status_reason = "stale copy"
            with pytest.raises(UnreadableRow, match="version column"):
                other.update(vm1)
        finally:
            other.close()
    con = sqlite3.connect(store.path)
    try:
        assert con.execute("SELECT version FROM objects WHERE id=?",
                           (vm1.id,)).fetchone() == (version,)
    finally:
        con.close()


def test_bytes_that_are_not_utf8_are_an_unreadable_row(store: Any) -> None:
    from virtplane.state import UnreadableRow

    need_sqlite(store)
    vm1, vm2 = vms(store)
    sqlite_raw(store, "UPDATE objects SET data=? WHERE id=?", b"\xff\xfe\x00", vm1.id)
    with pytest.raises(UnreadableRow) as info:
        store.find(model.Vm, "vm1")
    assert_names_row(info.value, "vm", vm1.id, "vm1")
    assert store.list(model.Vm) == [vm2]
    from virtplane.state._copy import checksums

    assert checksums(store)["vm"].count == 2  # state show and copy: counted, not a crash


def test_a_bad_job_row(store: Any) -> None:
    from virtplane.state import UnreadableRow

    good, bad = model.Job(kind="a"), model.Job(kind="b")
    store.add_job(good)
    store.add_job(bad)
    raw(store, "UPDATE jobs SET data='{' WHERE id=:id", id=bad.id)
    with pytest.raises(UnreadableRow) as info:
        store.get_job(bad.id)
    assert_names_row(info.value, "job", bad.id)
    assert [j.id for j in store.list_jobs()] == [good.id]
    assert any(bad.id in p for p in store.check())


def test_a_lease_with_a_bad_epoch_is_never_taken_over(store: Any) -> None:
    """Before: listing it raised ValueError, and acquiring it silently started its
    epoch (the fencing token) again from 1."""
    from virtplane.errors import LeaseHeld
    from virtplane.state import UnreadableRow

    need_sqlite(store)
    lease = store.acquire_lease("h1", "engine-a", 30)
    store.acquire_lease("h2", "engine-a", 30)
    sqlite_raw(store, "UPDATE leases SET epoch='abc' WHERE resource='h1'")
    assert [le.resource for le in store.list_leases()] == ["h2"]
    with pytest.raises(UnreadableRow, match="lease 'h1'"):
        store.get_lease("h1")
    with pytest.raises(LeaseLost, match="unreadable"):
        with store.fenced(lease):
            pass
    with pytest.raises(LeaseLost, match="unreadable"):
        store.renew_lease(lease)
    for holder in ("engine-a", "engine-b"):
        with pytest.raises((UnreadableRow, LeaseHeld)) as info:
            store.acquire_lease("h1", holder, 30)
        assert "virtplane state check" in str(info.value)
    assert store._rows("SELECT epoch FROM leases WHERE resource='h1'") == [("abc",)]
    assert any(p.startswith("lease 'h1'") for p in store.check())


def test_a_negative_lease_epoch_is_refused(store: Any) -> None:
    from virtplane.state import UnreadableRow

    store.acquire_lease("h1", "engine-a", 30)
    raw(store, "UPDATE leases SET epoch=-5 WHERE resource='h1'")
    assert store.list_leases() == []
    with pytest.raises(UnreadableRow):
        store.acquire_lease("h1", "engine-b", 30)
    assert store._rows("SELECT epoch FROM leases WHERE resource='h1'") == [(-5,)]


@pytest.mark.parametrize("value", ["-4", "0"])
def test_a_schema_version_below_one_is_a_state_error(tmp_path: Path, value: str) -> None:
    """Before: KeyError -4 (no migration from it) out of every command."""
    from virtplane.state import StateStore

    path = tmp_path / "state.db"
    StateStore(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value=? WHERE key='schema'", (value,))
    con.commit()
    con.close()
    with pytest.raises(StateError, match="no valid schema version") as info:
        StateStore(path)
    assert "\n" not in str(info.value)


def test_removing_a_cluster_a_bad_row_mentions_is_refused(store: Any) -> None:
    """The service's check for what is still in the cluster lists its VMs, and the
    list leaves the bad one out: the removal itself refuses."""
    from virtplane.state import UnreadableRow

    cluster = model.Cluster(name="cl", datacenter_id="dc1")
    store.add(cluster)
    vm = model.Vm(spec=model.VmSpec(name="vm1", memory_mib=256), cluster_id=cluster.id)
    store.add(vm)
    raw(store, "UPDATE objects SET data=:d WHERE id=:id",
        d=model.to_json(vm).replace('"status": "Down"', '"status": "Sleeping"'), id=vm.id)
    assert [v for v in store.list(model.Vm) if v.cluster_id == cluster.id] == []
    with pytest.raises(UnreadableRow, match="is not removed") as info:
        store.remove(model.Cluster, cluster.id)
    assert_names_row(info.value, "vm", vm.id, "vm1")
    assert store.has(model.Cluster, cluster.id)
    store.remove(model.Vm, vm.id)  # removing the bad row itself is how to get rid of it
    store.remove(model.Cluster, cluster.id)


def test_check_names_rows_it_missed_before(store: Any) -> None:
    vm1, vm2 = vms(store)
    raw(store, "UPDATE objects SET data=:d WHERE id=:id", d=model.to_json(vm2), id=vm1.id)
    raw(store, "UPDATE objects SET version=-2 WHERE id=:id", id=vm2.id)
    problems = store.check()
    assert any(vm1.id in p and "another object's" in p for p in problems), problems
    assert any(vm2.id in p and "version column" in p for p in problems), problems


def test_check_keeps_each_problem_on_one_short_line(store: Any) -> None:
    vm1, _ = vms(store)
    data = json.loads(model.to_json(vm1))
    data["spec"]["memory_mib"] = "x\n" * 1_000_000
    raw(store, "UPDATE objects SET data=:d WHERE id=:id", d=json.dumps(data), id=vm1.id)
    (problem,) = store.check()
    assert "\n" not in problem and len(problem) < 400


@pytest.mark.parametrize("text", ["[1]", "null", "3", "{", "[" * 50_000, '{"a": NaN}'])
def test_from_json_raises_invalid_input_for_any_text(text: str) -> None:
    """Before: AttributeError, TypeError, JSONDecodeError or RecursionError."""
    with pytest.raises(InvalidInput, match="invalid DataCenter"):
        model.from_json(text, model.DataCenter)
