"""The store's contract, the same on SQLite and PostgreSQL: objects, revisions
(compare-and-set), transactions, modify, jobs, events, messages."""

from __future__ import annotations

import logging
import threading

import attrs
import pytest

from virtplane import model
from virtplane.errors import AlreadyExists, Conflict, NotFound, StateError
from virtplane.state import SCHEMA_VERSION, StateStore


def test_the_backend_follows_the_location(store, store_url):
    expected = "sqlite" if "://" not in store_url else "postgresql"
    assert store.backend == expected
    assert isinstance(store, StateStore)
    assert store.schema_version() == SCHEMA_VERSION
    assert "virtplane:***@" in store.location or "://" not in store_url  # no password shown


def test_add_find_update_remove(store, open_store):
    dc = model.DataCenter(name="dc1")
    store.add(dc)
    assert dc.revision == 1
    assert store.find(model.DataCenter, "dc1") == dc
    assert store.find(model.DataCenter, dc.id) == dc
    assert store.has(model.DataCenter, dc.id) and store.exists(model.DataCenter, "dc1")
    dc.description = "changed"
    store.update(dc)
    assert open_store().get(model.DataCenter, dc.id).description == "changed"
    with pytest.raises(AlreadyExists, match="a datacenter named 'dc1' already exists"):
        store.add(model.DataCenter(name="dc1"))
    with pytest.raises(AlreadyExists, match="a data center named 'dc1' already exists"):
        store.require_free(model.DataCenter, "dc1", "data center")
    with pytest.raises(NotFound, match=r"no datacenter named 'dc2' \(known: dc1\)"):
        store.find(model.DataCenter, "dc2")
    store.remove(model.DataCenter, dc.id)
    assert store.list(model.DataCenter) == []
    with pytest.raises(NotFound, match="no datacenter with id"):
        store.remove(model.DataCenter, dc.id)


def test_every_kind_round_trips_and_lists_by_name(store):
    dc = model.DataCenter(name="dc")
    cl = model.Cluster(name="cl", datacenter_id=dc.id)
    host = model.Host(name="h", cluster_id=cl.id, driver="kvm", uri="test:///default")
    vms = [model.Vm(spec=model.VmSpec(name=n), cluster_id=cl.id) for n in ("b", "a", "c")]
    for obj in (dc, cl, host, *vms):
        store.add(obj)
    assert [v.spec.name for v in store.list(model.Vm)] == ["a", "b", "c"]
    assert store.get(model.Host, host.id) == host
    assert store.versions(model.Vm) == {v.id: 1 for v in vms}
    with pytest.raises(TypeError, match="str is not a stored model class"):
        store.add("not a model object")


def test_versions_by_id_and_by_cluster(store):
    """``versions`` narrowed to ids or to clusters (the cluster column's index): only
    matching objects of the asked kind, a VM that moves follows its cluster."""
    a, b = model.Cluster(name="a", datacenter_id="dc"), model.Cluster(name="b", datacenter_id="dc")
    in_a = [model.Vm(spec=model.VmSpec(name=f"a{i}"), cluster_id=a.id) for i in range(3)]
    in_b = [model.Vm(spec=model.VmSpec(name=f"b{i}"), cluster_id=b.id) for i in range(2)]
    host = model.Host(name="h", cluster_id=a.id, driver="kvm", uri="test:///default")
    for obj in (a, b, host, *in_a, *in_b):
        store.add(obj)
    assert store.versions(model.Vm, cluster_ids=[a.id]) == {v.id: 1 for v in in_a}
    assert store.versions(model.Host, cluster_ids=[a.id, b.id]) == {host.id: 1}
    assert store.versions(model.Vm, cluster_ids=[]) == {}
    assert store.versions(model.Vm, ids=[in_b[0].id, in_a[0].id, "no-such-id"]) == {
        in_b[0].id: 1, in_a[0].id: 1}
    assert store.versions(model.Vm, ids=[in_b[0].id], cluster_ids=[a.id]) == {}
    moved = in_a[0]
    moved.cluster_id = b.id
    store.update(moved)
    assert store.versions(model.Vm, cluster_ids=[b.id]) == {
        **{v.id: 1 for v in in_b}, moved.id: 2}
    many = [v.id for v in in_a] + [f"x{i}" for i in range(2000)]  # a long IN list
    assert set(store.versions(model.Vm, ids=many)) == {v.id for v in in_a}


def _cluster_column(store, obj_id: str) -> str | None:
    rows = store._rows("SELECT cluster_id FROM objects WHERE id=:id", {"id": obj_id})
    assert len(rows) == 1
    value: str | None = rows[0][0]
    return value


def test_every_write_keeps_the_cluster_column(store, open_store):
    """The ``cluster_id`` column follows the object through every write path (add,
    the one-statement update, an update inside a transaction, modify, a lenient
    overwrite of a stale copy); kinds without a cluster have NULL; ``versions``
    answers from the column, and ``check`` reports a column that disagrees."""
    a, b, c = (model.Cluster(name=n, datacenter_id="dc") for n in "abc")
    vm = model.Vm(spec=model.VmSpec(name="v"), cluster_id=a.id)
    host = model.Host(name="h", cluster_id=a.id, driver="kvm", uri="test:///default")
    for obj in (a, b, c, vm, host):
        store.add(obj)
    assert [_cluster_column(store, o.id) for o in (a, vm, host)] == [None, a.id, a.id]
    vm.cluster_id = b.id
    store.update(vm)  # one statement
    assert _cluster_column(store, vm.id) == b.id
    with store.transaction():
        vm.cluster_id = c.id
        store.update(vm)  # inside a transaction
    assert _cluster_column(store, vm.id) == c.id
    store.modify(model.Vm, "v", lambda v: setattr(v, "cluster_id", a.id))
    assert _cluster_column(store, vm.id) == a.id
    stale = open_store(strict=False).get(model.Host, host.id)
    store.modify(model.Host, "h", lambda h: setattr(h, "status_reason", "moved on"))
    stale.cluster_id = b.id
    open_store(strict=False).update(stale)  # a stale copy, written anyway
    assert _cluster_column(store, host.id) == b.id
    assert store.versions(model.Vm, cluster_ids=[a.id]) == {vm.id: 4}
    assert store.versions(model.Host, cluster_ids=[b.id]) == {host.id: 3}
    assert store.versions(model.Vm, cluster_ids=[b.id, c.id]) == {}
    assert store.check() == []
    # written around the store: versions() goes by the column, check() says so
    with store.transaction():
        store._count("UPDATE objects SET cluster_id=:c WHERE id=:id", {"c": b.id, "id": vm.id})
    assert store.versions(model.Vm, cluster_ids=[b.id]) == {vm.id: 4}
    assert store.versions(model.Vm, cluster_ids=[a.id]) == {}
    assert store.check() == [f"vm {vm.id}: its cluster_id column is {b.id!r}, its data says "
                             f"{a.id!r} (written around the store; listing by cluster misses "
                             "or wrongly includes it)"]


def test_renaming_onto_a_taken_name_is_refused(store):
    store.add(model.DataCenter(name="a"))
    b = model.DataCenter(name="b")
    store.add(b)
    b.name = "a"
    with pytest.raises(AlreadyExists, match="a datacenter named 'a' already exists"):
        store.update(b)
    assert b.revision == 1
    assert sorted(d.name for d in store.list(model.DataCenter)) == ["a", "b"]


def test_a_failed_transaction_leaves_nothing(store):
    with pytest.raises(AlreadyExists):
        with store.transaction():
            store.add(model.DataCenter(name="a"))
            store.add(model.DataCenter(name="b"))
            store.add(model.DataCenter(name="a"))
    assert store.list(model.DataCenter) == []
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add(model.DataCenter(name="c"))
            store.add_event("x", "inside")
            raise RuntimeError("operation failed half-way")
    assert store.list(model.DataCenter) == [] and store.events("x") == []
    with store.transaction():
        with store.transaction():  # nested: only the outer one commits
            store.add(model.DataCenter(name="d"))
        assert store.in_transaction()
    assert not store.in_transaction()
    assert [d.name for d in store.list(model.DataCenter)] == ["d"]


def test_a_stale_copy_is_refused_and_a_fresh_one_wins(store, open_store):
    store.add(model.DataCenter(name="dc1"))
    other = open_store()
    first = store.find(model.DataCenter, "dc1")
    second = other.find(model.DataCenter, "dc1")
    first.description = "first"
    store.update(first)
    second.description = "second"
    with pytest.raises(Conflict) as info:
        other.update(second)
    assert "(read at revision 1, now 2)" in str(info.value)
    assert info.value.exit_code == 75 and isinstance(info.value, StateError)
    assert store.find(model.DataCenter, "dc1").description == "first"
    again = other.refresh(second)
    again.description = "second"
    other.update(again)
    assert store.find(model.DataCenter, "dc1").description == "second"
    lookalike = model.DataCenter(name="dc1", id=first.id)
    with pytest.raises(Conflict, match="'dc1' was not read from the state store"):
        store.update(lookalike)
    with pytest.raises(NotFound, match="no datacenter named 'ghost'"):
        store.update(model.DataCenter(name="ghost"))


def test_remove_can_check_the_revision(store):
    dc = model.DataCenter(name="dc1")
    store.add(dc)
    other = store.find(model.DataCenter, "dc1")
    store.update(other)
    with pytest.raises(Conflict, match="changed by another writer"):
        store.remove(model.DataCenter, dc.id, revision=dc.revision)
    store.remove(model.DataCenter, dc.id, revision=other.revision)
    assert not store.has(model.DataCenter, dc.id)


def test_rollback_restores_revisions(store):
    dc = model.DataCenter(name="dc1")
    store.add(dc)
    with pytest.raises(RuntimeError):
        with store.transaction():
            dc.description = "lost"
            store.update(dc)
            assert dc.revision == 2
            raise RuntimeError("failed half-way")
    assert dc.revision == 1
    dc.description = "kept"
    store.update(dc)
    assert store.find(model.DataCenter, "dc1").description == "kept"


def test_modify_and_its_bounded_retries(store):
    store.add(model.Host(name="h1", cluster_id="c", driver="kvm", uri="test:///default"))
    out = store.modify(model.Host, "h1", lambda h: setattr(h, "status",
                                                           model.HostStatus.MAINTENANCE))
    assert out.revision == 2 and store.find(model.Host, "h1").status is model.HostStatus.MAINTENANCE
    out = store.modify(model.Host, out.id, lambda h: attrs.evolve(h, status_reason="why"))
    assert store.find(model.Host, "h1").status_reason == "why"
    with pytest.raises(NotFound, match="no host named 'h2'"):
        store.modify(model.Host, "h2", lambda h: None)
    with pytest.raises(ValueError, match="returned a different object"):
        store.modify(model.Host, "h1", lambda h: model.Host(name="h1", cluster_id="c",
                                                           driver="kvm", uri="x"))


def test_lenient_store_lets_a_stale_copy_win_with_a_warning(open_store, caplog):
    s = open_store(strict=False)
    s.add(model.DataCenter(name="dc1"))
    first = s.find(model.DataCenter, "dc1")
    second = s.find(model.DataCenter, "dc1")
    first.description = "first"
    s.update(first)
    second.description = "second"
    with caplog.at_level(logging.WARNING, logger="virtplane.state"):
        s.update(second)
    assert s.find(model.DataCenter, "dc1").description == "second" and second.revision == 3
    assert "written from a stale copy (read at revision 1, now 2)" in caplog.text


def test_jobs(store):
    job = model.Job(kind="start_vm", object_id="vm-1", correlation_id="req-1",
                    steps=[model.JobStep("schedule")])
    store.add_job(job)
    other = model.Job(kind="snapshot_vm", object_id="vm-2", correlation_id="req-1",
                      created=job.created + 1)
    store.add_job(other)
    with pytest.raises(AlreadyExists, match=f"a job with id {job.id} already exists"):
        store.add_job(job)
    got = store.get_job(job.id)
    assert got == job and got.revision == 1
    got.status = model.JobStatus.STARTED
    store.update_job(got)
    job.status = model.JobStatus.ABORTED
    with pytest.raises(Conflict, match=r"the job 'start_vm .*' was changed by another writer"):
        store.update_job(job)
    assert store.get_job(job.id).status is model.JobStatus.STARTED
    assert [j.id for j in store.list_jobs()] == [job.id, other.id]
    assert [j.id for j in store.list_jobs(status=[model.JobStatus.QUEUED,
                                                  model.JobStatus.STARTED])] == [job.id, other.id]
    assert [j.id for j in store.list_jobs(status=[])] == []
    assert [j.id for j in store.list_jobs(correlation_id="req-1", object_id="vm-2")] == [other.id]
    with pytest.raises(NotFound, match="no job with id nope"):
        store.get_job("nope")
    with pytest.raises(NotFound, match="no job with id"):
        store.update_job(model.Job(kind="x"))
    assert store.check() == []


def test_events_keep_order_codes_and_a_global_sequence(store):
    assert store.last_event_seq() == 0
    store.add_event("vm-1", "plain")
    store.add_event("vm-2", "other")
    store.add_event("vm-1", "coded", "warning", code=31, correlation_id="req-1")
    assert [e[1:] for e in store.events("vm-1")] == [("info", "plain"), ("warning", "coded")]
    seqs = [e[0] for e in store.events_since(0)]
    assert seqs == sorted(seqs) and len(seqs) == 3 and store.last_event_seq() == seqs[-1]
    assert store.events_since(seqs[0], limit=1)[0][2:] == ("vm-2", "info", "other", None, None)
    assert store.events_since(seqs[1])[0][5:] == (31, "req-1")


def test_a_read_only_store_refuses_writes(store, open_store):
    store.add(model.DataCenter(name="dc1"))
    ro = open_store(readonly=True)
    assert ro.find(model.DataCenter, "dc1").name == "dc1"
    with pytest.raises(StateError, match="is read-only"):
        ro.add(model.DataCenter(name="dc2"))


def test_threads_racing_an_update_exactly_one_wins(store, open_store):
    store.add(model.DataCenter(name="dc1", description="0"))
    barrier = threading.Barrier(2)
    outcome: dict[str, str] = {}

    def writer(who: str) -> None:
        s = open_store()  # a connection of its own, as another engine has
        dc = s.find(model.DataCenter, "dc1")
        barrier.wait()  # both read revision 1 before either writes
        dc.description = who
        try:
            s.update(dc)
            outcome[who] = "won"
        except Conflict as exc:
            outcome[who] = str(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in ("t1", "t2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [w for w, what in outcome.items() if what == "won"]
    assert len(winners) == 1, outcome
    loser = ({"t1", "t2"} - set(winners)).pop()
    assert "(read at revision 1, now 2)" in outcome[loser]
    stored = store.find(model.DataCenter, "dc1")
    assert (stored.description, stored.revision) == (winners[0], 2)


def test_modify_from_many_threads_loses_no_update(store, open_store):
    store.add(model.DataCenter(name="dc1", description="0"))
    per_thread, threads = 25, 4

    def bump(dc: model.DataCenter) -> None:
        dc.description = str(int(dc.description) + 1)

    def worker() -> None:
        s = open_store()
        for _ in range(per_thread):
            s.modify(model.DataCenter, "dc1", bump)
        s.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    dc = store.find(model.DataCenter, "dc1")
    assert dc.description == str(per_thread * threads)
    assert dc.revision == 1 + per_thread * threads
