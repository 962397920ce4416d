"""``virtplane state copy``: an SQLite store moves into PostgreSQL with nothing lost
(every kind, revisions, jobs, events with their sequence numbers, lease epochs),
proven by counts and checksums; a mismatch rolls the copy back."""

from __future__ import annotations

import json
import time

import pytest

from virtplane import model
from virtplane.errors import StateError
from virtplane.state import SCHEMA_VERSION, StateStore
from virtplane.state import _copy as copy_mod


def _fill(store) -> dict[str, int]:
    """One or more objects of every kind, changed a few times; jobs, events, leases."""
    dc = model.DataCenter(name="dc")
    cl = model.Cluster(name="cl", datacenter_id=dc.id)
    host = model.Host(name="h1", cluster_id=cl.id, driver="kvm", uri="test:///default")
    sd = model.StorageDomain(name="data", type="localfs", datacenter_id=dc.id)
    vm = model.Vm(spec=model.VmSpec(name="vm1", memory_mib=512), cluster_id=cl.id)
    image = model.Image(domain_id=sd.id, alias="disk1")
    tmpl = model.Template(name="t1", spec=model.VmSpec(name="t1"))
    snap = model.Snapshot(name="s1", vm_id=vm.id, created=time.time())
    for obj in (dc, cl, host, sd, vm, image, tmpl, snap):
        store.add(obj)
    for i in range(3):
        store.modify(model.Vm, "vm1", lambda v, i=i: setattr(v, "status_reason", f"r{i}"))
    for i in range(5):
        store.add(model.Vm(spec=model.VmSpec(name=f"bulk{i:02}"), cluster_id=cl.id))
    job = model.Job(kind="start_vm", object_id=vm.id, correlation_id="req-1")
    store.add_job(job)
    job.status = model.JobStatus.FINISHED
    store.update_job(job)
    for i in range(4):
        store.add_event(vm.id, f"event {i}", code=i, correlation_id="req-1")
    lease = store.acquire_lease(host.id, "engine-a", 30)
    store.release_lease(lease)
    store.acquire_lease(host.id, "engine-b", 30)  # epoch 2
    return {"vm": 6, "job": 1, "event": 4, "lease": 1}


def test_copy_sqlite_into_postgresql_loses_nothing(tmp_path, pg_url, cli):
    src = StateStore(tmp_path / "state.db")
    counts = _fill(src)
    events_before = src.events_since(0)
    src.close()
    rc, out, err = cli("state", "copy", str(tmp_path / "state.db"), pg_url, "--json")
    assert (rc, err) == (0, "")
    report = json.loads(out)
    groups = {g["group"]: g for g in report["groups"]}
    assert set(groups) == {"cluster", "datacenter", "event", "host", "image", "job", "lease",
                           "snapshot", "storage_domain", "template", "vm"}
    for name, count in counts.items():
        assert groups[name]["source"] == groups[name]["copied"] == count
    assert all(g["ok"] and g["sha256"] == g["sha256_copied"] and len(g["sha256"]) == 64
               for g in groups.values())
    assert "virtplane:***@" in report["destination"]

    src, dst = StateStore(tmp_path / "state.db"), StateStore(pg_url)
    for cls in (model.DataCenter, model.Cluster, model.Host, model.StorageDomain, model.Vm,
                model.Image, model.Template, model.Snapshot):
        mine, theirs = src.list(cls), dst.list(cls)
        assert mine == theirs
        assert [o.revision for o in mine] == [o.revision for o in theirs]
    assert dst.find(model.Vm, "vm1").revision == 4
    cl = dst.find(model.Cluster, "cl")  # the cluster column came along
    assert dst.versions(model.Vm, cluster_ids=[cl.id]) == src.versions(model.Vm)
    assert set(dst.versions(model.Host, cluster_ids=[cl.id])) == {
        h.id for h in src.list(model.Host)}
    assert dst.check() == []
    assert dst.list_jobs() == src.list_jobs()
    assert dst.events_since(0) == events_before
    assert [(x.holder, x.epoch) for x in dst.list_leases()] == [("engine-b", 2)]
    # the copy goes on where the source stopped: new events follow, epochs keep growing
    dst.add_event("x", "after the copy")
    assert dst.last_event_seq() == events_before[-1][0] + 1
    dst.release_lease(dst.list_leases()[0])
    assert dst.acquire_lease(dst.list_leases()[0].resource, "engine-c", 30).epoch == 3
    dst.dispose()


def test_the_text_report_names_every_group(tmp_path, pg_url, cli):
    src = StateStore(tmp_path / "state.db")
    _fill(src)
    src.close()
    rc, out, _ = cli("state", "copy", str(tmp_path / "state.db"), pg_url)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"copied {tmp_path / 'state.db'} -> postgresql://virtplane:***@")
    vm_line = next(line for line in lines if line.startswith("vm "))
    assert vm_line.split()[1:3] == ["6", "6"] and vm_line.endswith("ok")
    assert lines[-1].startswith("19 rows in 11 groups copied in ")
    assert lines[-1].endswith("every count and checksum matches")


def test_a_destination_that_is_not_empty_is_refused(tmp_path, pg_url, cli):
    StateStore(tmp_path / "state.db").close()
    dst = StateStore(pg_url)
    dst.add(model.DataCenter(name="already"))
    dst.dispose()
    rc, _, err = cli("state", "copy", str(tmp_path / "state.db"), pg_url)
    assert rc == 1
    assert "is not empty (1 objects); copy only into an empty store" in err
    assert "Traceback" not in err


def test_a_mismatch_rolls_the_whole_copy_back(tmp_path, store_url, monkeypatch):
    """Both directions work through the interface; here a lost row is simulated."""
    src = StateStore(tmp_path / "src.db")
    _fill(src)
    dst = StateStore(store_url if "://" in store_url else tmp_path / "dst.db")
    real_many = type(dst)._many

    def lossy(self, sql, params):
        if sql.startswith("INSERT INTO events"):
            params = list(params)[:-1]  # one event gets lost on the way
        real_many(self, sql, params)

    monkeypatch.setattr(type(dst), "_many", lossy)
    with pytest.raises(StateError, match=r"rolled back: event differ after copying \(counts or "
                                         r"checksums\); nothing was written"):
        copy_mod.copy(src, dst)
    assert copy_mod.row_counts(dst) == {"objects": 0, "jobs": 0, "events": 0, "leases": 0}


def test_checksums_see_a_changed_value(tmp_path):
    s = StateStore(tmp_path / "s.db")
    s.add(model.DataCenter(name="dc"))
    before = copy_mod.checksums(s)
    s.modify(model.DataCenter, "dc", lambda d: setattr(d, "description", "x"))
    after = copy_mod.checksums(s)
    assert before["datacenter"].count == after["datacenter"].count == 1
    assert before["datacenter"].digest != after["datacenter"].digest


def test_an_outdated_source_must_be_migrated_first(tmp_path, pg_url):
    from tests.core.test_state import _v1_file

    _v1_file(tmp_path / "old.db")

    class Old:  # a v1 file as found, before anything migrated it
        location = str(tmp_path / "old.db")
        readonly = True

        def schema_version(self) -> int:
            return 1

    with pytest.raises(StateError, match=r"source state store .*old.db has schema version 1, "
                                         rf"not {SCHEMA_VERSION}: run 'virtplane state migrate"):
        copy_mod.copy(Old(), StateStore(pg_url))  # type: ignore[arg-type]
