"""Several writers on one state file: compare-and-set lets exactly one stale writer win,
``modify`` never loses an update, across store instances, threads and processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from virtplane import model
from virtplane.errors import Conflict
from virtplane.state import StateStore


def _counter(s: StateStore) -> str:
    dc = model.DataCenter(name="dc1", description="0")
    s.add(dc)
    return dc.id


def _bump(dc: model.DataCenter) -> None:
    dc.description = str(int(dc.description) + 1)


def test_two_stores_on_one_file_one_stale_update_loses(tmp_path):
    a = StateStore(tmp_path / "s.db")
    b = StateStore(tmp_path / "s.db")
    _counter(a)
    in_a = a.find(model.DataCenter, "dc1")
    in_b = b.find(model.DataCenter, "dc1")
    in_a.description = "from a"
    a.update(in_a)
    in_b.description = "from b"
    with pytest.raises(Conflict, match="the datacenter 'dc1' was changed by another writer"):
        b.update(in_b)
    assert b.find(model.DataCenter, "dc1").description == "from a"
    fresh = b.refresh(in_b)
    fresh.description = "from b"
    b.update(fresh)
    assert a.find(model.DataCenter, "dc1").description == "from b"


@pytest.mark.parametrize("shared_store", [True, False], ids=["one store", "two stores"])
def test_two_threads_racing_an_update_exactly_one_wins(tmp_path, shared_store):
    first = StateStore(tmp_path / "s.db")
    second = first if shared_store else StateStore(tmp_path / "s.db")
    _counter(first)
    barrier = threading.Barrier(2)
    outcome: dict[str, str] = {}

    def writer(store: StateStore, who: str) -> None:
        dc = store.find(model.DataCenter, "dc1")
        barrier.wait()  # both have read revision 1 before either writes
        dc.description = who
        try:
            store.update(dc)
            outcome[who] = "won"
        except Conflict as exc:
            outcome[who] = str(exc)
        finally:
            store.close()  # this thread's connection

    threads = [threading.Thread(target=writer, args=(st, who))
               for st, who in ((first, "t1"), (second, "t2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcome) == ["t1", "t2"]
    winners = [who for who, what in outcome.items() if what == "won"]
    assert len(winners) == 1, outcome
    loser = "t2" if winners == ["t1"] else "t1"
    assert "(read at revision 1, now 2)" in outcome[loser]
    stored = first.find(model.DataCenter, "dc1")
    assert (stored.description, stored.revision) == (winners[0], 2)


def test_modify_from_many_threads_loses_no_update(tmp_path):
    db = tmp_path / "s.db"
    _counter(StateStore(db))
    per_thread, threads = 40, 4

    def worker() -> None:
        s = StateStore(db)  # its own instance, as an engine thread and an API would be
        for _ in range(per_thread):
            s.modify(model.DataCenter, "dc1", _bump)
        s.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    dc = StateStore(db).find(model.DataCenter, "dc1")
    assert dc.description == str(per_thread * threads)
    assert dc.revision == 1 + per_thread * threads


BUMPER = textwrap.dedent("""
    import sys
    from virtplane import model
    from virtplane.state import StateStore

    s = StateStore(sys.argv[1])
    for _ in range(int(sys.argv[2])):
        s.modify(model.DataCenter, "dc1",
                 lambda dc: setattr(dc, "description", str(int(dc.description) + 1)))
""")


def test_modify_from_two_processes_loses_no_update(tmp_path):
    db = tmp_path / "s.db"
    _counter(StateStore(db))
    procs = [subprocess.Popen([sys.executable, "-c", BUMPER, str(db), "60"]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert StateStore(db).find(model.DataCenter, "dc1").description == "120"


def test_modify_retries_after_a_conflict_and_converges(tmp_path):
    s = StateStore(tmp_path / "s.db")
    _counter(s)
    calls: list[int] = []

    def interfering(dc: model.DataCenter) -> None:
        calls.append(dc.revision)
        if len(calls) == 1:
            # another writer (here: a second copy written meanwhile) gets there first
            other = s.find(model.DataCenter, "dc1")
            other.compat_version = "4.7"
            s.update(other)
        _bump(dc)

    out = s.modify(model.DataCenter, "dc1", interfering)
    assert calls == [1, 1]  # the first attempt was rolled back, the second one re-read
    assert out.description == "1" and out.revision == 2
    assert s.find(model.DataCenter, "dc1").description == "1"


def test_modify_gives_up_after_a_bounded_number_of_attempts(tmp_path):
    s = StateStore(tmp_path / "s.db")
    _counter(s)
    calls: list[int] = []

    def always_beaten(dc: model.DataCenter) -> None:
        calls.append(1)
        other = s.find(model.DataCenter, "dc1")
        s.update(other)

    with pytest.raises(Conflict, match=r"the datacenter 'dc1' was changed by another writer "
                                       r"since it was read \(read at revision 1, now 2\); "
                                       r"gave up after 3 attempts: re-read it and retry"):
        s.modify(model.DataCenter, "dc1", always_beaten, attempts=3)
    assert len(calls) == 3
    assert s.find(model.DataCenter, "dc1").revision == 1  # every attempt rolled back


def test_modify_inside_an_outer_transaction_commits_with_it(tmp_path):
    s = StateStore(tmp_path / "s.db")
    _counter(s)
    with pytest.raises(RuntimeError):
        with s.transaction():
            s.modify(model.DataCenter, "dc1", _bump)
            raise RuntimeError("the operation failed after the change")
    assert s.find(model.DataCenter, "dc1").description == "0"
    with s.transaction():
        out = s.modify(model.DataCenter, "dc1", _bump)
        s.modify(model.DataCenter, "dc1", _bump)
    assert out.revision == 2
    assert s.find(model.DataCenter, "dc1").description == "2"


def test_a_destroy_whose_vm_record_moved_meanwhile_still_records_it_down(manager_factory,
                                                                         monkeypatch):
    """A monitor's write between a destroy's read and its write (its status refresh)
    does not fail the destroy after the guest is gone: the Down transition is applied
    to the current record, and the other writer's change is kept."""
    m = manager_factory()
    m.datacenters.add("dc1")
    m.clusters.add("c1", "dc1")
    m.hosts.add("h1", "c1", "test:///default")
    m.vms.create(model.VmSpec(name="raced", memory_mib=256), "c1")
    m.vms.start("raced")
    conn = m.context.connections.get(m.hosts.get("h1"))
    real = conn.destroy

    def destroy_while_the_monitor_writes(name: str) -> None:
        def refresh(v: model.Vm) -> None:
            v.spec.custom_properties["seen_by"] = "monitor"

        m.context.store.modify(model.Vm, name, refresh)
        real(name)

    monkeypatch.setattr(conn, "destroy", destroy_while_the_monitor_writes)
    done = m.vms.destroy("raced")
    vm = m.vms.get("raced")
    assert vm.status == model.VmStatus.DOWN and vm.status_reason == "destroyed"
    assert vm.host_id is None and vm.spec.custom_properties["seen_by"] == "monitor"
    assert done.revision == vm.revision
