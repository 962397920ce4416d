"""The SQLite state store: transactions, revisions, schema versions, permissions, errors,
read-only files, jobs, and a process killed mid-write."""

from __future__ import annotations

import collections
import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time

import attrs
import pytest

from virtplane import model
from virtplane import state as state_mod
from virtplane.errors import AlreadyExists, Conflict, NotFound, StateError
from virtplane.state import SCHEMA_VERSION, StateStore, _sqlite


def test_add_find_update_remove(tmp_path):
    s = StateStore(tmp_path / "s.db")
    dc = model.DataCenter(name="dc1")
    s.add(dc)
    assert s.find(model.DataCenter, "dc1") == dc
    assert s.find(model.DataCenter, dc.id) == dc
    dc.description = "changed"
    s.update(dc)
    assert StateStore(tmp_path / "s.db").get(model.DataCenter, dc.id).description == "changed"
    with pytest.raises(AlreadyExists, match="a datacenter named 'dc1' already exists"):
        s.add(model.DataCenter(name="dc1"))
    with pytest.raises(NotFound, match=r"no datacenter named 'dc2' \(known: dc1\)"):
        s.find(model.DataCenter, "dc2")
    s.remove(model.DataCenter, dc.id)
    assert s.list(model.DataCenter) == []
    with pytest.raises(NotFound):
        s.remove(model.DataCenter, dc.id)


def test_failed_transaction_leaves_nothing(tmp_path):
    s = StateStore(tmp_path / "s.db")
    with pytest.raises(AlreadyExists):
        with s.transaction():
            s.add(model.DataCenter(name="a"))
            s.add(model.DataCenter(name="b"))
            s.add(model.DataCenter(name="a"))
    assert s.list(model.DataCenter) == []
    with pytest.raises(RuntimeError):
        with s.transaction():
            s.add(model.DataCenter(name="c"))
            raise RuntimeError("operation failed half-way")
    assert s.list(model.DataCenter) == []


def test_unreadable_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="bad.db is unreadable: it is not an SQLite database"):
        StateStore(bad)



# ---------------------------------------------------------------- revisions (CAS)


def test_revisions_count_writes(tmp_path):
    s = StateStore(tmp_path / "s.db")
    dc = model.DataCenter(name="dc1")
    assert dc.revision == 0
    s.add(dc)
    assert dc.revision == 1
    assert s.find(model.DataCenter, "dc1").revision == 1
    dc.description = "one"
    s.update(dc)
    dc.description = "two"
    s.update(dc)  # the same copy again: it knows its new revision
    assert dc.revision == 3
    assert s.get(model.DataCenter, dc.id).revision == 3
    assert [d.revision for d in s.list(model.DataCenter)] == [3]


def test_stale_copy_is_refused_naming_the_object(tmp_path):
    s = StateStore(tmp_path / "s.db")
    s.add(model.DataCenter(name="dc1"))
    first = s.find(model.DataCenter, "dc1")
    second = s.find(model.DataCenter, "dc1")
    first.description = "first"
    s.update(first)
    second.description = "second"
    with pytest.raises(Conflict) as info:
        s.update(second)
    msg = str(info.value)
    assert "the datacenter 'dc1' was changed by another writer since it was read" in msg
    assert "(read at revision 1, now 2)" in msg
    assert "re-read it and retry" in msg
    assert isinstance(info.value, StateError)
    assert info.value.exit_code == 75
    assert (info.value.kind, info.value.name) == ("datacenter", "dc1")
    assert s.find(model.DataCenter, "dc1").description == "first"
    # re-read and retry works
    again = s.refresh(second)
    assert again.revision == 2 and again.description == "first"
    again.description = "second"
    s.update(again)
    assert s.find(model.DataCenter, "dc1").description == "second"


def test_copies_made_with_evolve_keep_their_revision(tmp_path):
    s = StateStore(tmp_path / "s.db")
    vm = model.Vm(spec=model.VmSpec(name="vm1"), cluster_id="c")
    s.add(vm)
    read = s.find(model.Vm, "vm1")
    copy = attrs.evolve(read, status=model.VmStatus.UP)
    assert copy.revision == read.revision == 1
    s.update(copy)
    assert s.find(model.Vm, "vm1").status is model.VmStatus.UP
    with pytest.raises(Conflict, match="the vm 'vm1' was changed by another writer"):
        s.update(read)  # the original copy is stale now


def test_an_object_that_never_came_from_the_store_is_refused(tmp_path):
    s = StateStore(tmp_path / "s.db")
    dc = model.DataCenter(name="dc1")
    s.add(dc)
    lookalike = model.DataCenter(name="dc1", description="blind", id=dc.id)
    with pytest.raises(Conflict, match="'dc1' was not read from the state store"):
        s.update(lookalike)
    with pytest.raises(NotFound, match="no datacenter named 'ghost'"):
        s.update(model.DataCenter(name="ghost"))


def test_revision_is_not_part_of_the_json(tmp_path):
    s = StateStore(tmp_path / "s.db")
    dc = model.DataCenter(name="dc1")
    s.add(dc)
    s.update(dc)
    assert "revision" not in model.to_json(dc)
    assert "revision" not in model.unstructure(dc)
    with sqlite3.connect(tmp_path / "s.db") as raw:
        data, version = raw.execute("SELECT data, version FROM objects").fetchone()
    assert "revision" not in data and version == 2
    with pytest.raises(Exception, match=r"extra fields found \(revision\)"):
        model.structure({"name": "x", "revision": 7}, model.DataCenter)
    # equality ignores it: the same data read at another time is the same object
    assert s.find(model.DataCenter, "dc1") == attrs.evolve(dc, revision=0)


def test_rollback_restores_the_revisions_of_written_copies(tmp_path):
    s = StateStore(tmp_path / "s.db")
    dc = model.DataCenter(name="dc1")
    s.add(dc)
    with pytest.raises(RuntimeError):
        with s.transaction():
            dc.description = "lost"
            s.update(dc)
            assert dc.revision == 2
            new = model.DataCenter(name="dc2")
            s.add(new)
            raise RuntimeError("operation failed half-way")
    assert dc.revision == 1 and new.revision == 0
    dc.description = "kept"
    s.update(dc)  # the copy is still good for a retry
    assert s.find(model.DataCenter, "dc1").description == "kept"
    s.add(new)


def test_remove_can_check_the_revision(tmp_path):
    s = StateStore(tmp_path / "s.db")
    dc = model.DataCenter(name="dc1")
    s.add(dc)
    other = s.find(model.DataCenter, "dc1")
    s.update(other)
    with pytest.raises(Conflict, match="the datacenter 'dc1' was changed by another writer"):
        s.remove(model.DataCenter, dc.id, revision=dc.revision)
    assert s.has(model.DataCenter, dc.id)
    s.remove(model.DataCenter, dc.id, revision=other.revision)
    assert not s.has(model.DataCenter, dc.id)


def test_modify_changes_in_place_or_takes_the_returned_object(tmp_path):
    s = StateStore(tmp_path / "s.db")
    s.add(model.Host(name="h1", cluster_id="c", driver="kvm", uri="test:///default"))

    def in_place(h: model.Host) -> None:
        h.status = model.HostStatus.MAINTENANCE

    out = s.modify(model.Host, "h1", in_place)
    assert out.status is model.HostStatus.MAINTENANCE and out.revision == 2
    out = s.modify(model.Host, out.id, lambda h: attrs.evolve(h, status_reason="why"))
    stored = s.find(model.Host, "h1")
    assert (stored.status, stored.status_reason, stored.revision) == (
        model.HostStatus.MAINTENANCE, "why", 3)
    with pytest.raises(NotFound, match="no host named 'h2'"):
        s.modify(model.Host, "h2", in_place)
    with pytest.raises(ValueError, match="returned a different object"):
        s.modify(model.Host, "h1", lambda h: model.Host(name="h1", cluster_id="c",
                                                         driver="kvm", uri="x"))
    assert s.find(model.Host, "h1").revision == 3


def test_lenient_store_lets_a_stale_copy_win_with_a_warning(tmp_path, caplog):
    s = StateStore(tmp_path / "s.db", strict=False)
    s.add(model.DataCenter(name="dc1"))
    first = s.find(model.DataCenter, "dc1")
    second = s.find(model.DataCenter, "dc1")
    first.description = "first"
    s.update(first)
    second.description = "second"
    with caplog.at_level(logging.WARNING, logger="virtplane.state"):
        s.update(second)
    assert s.find(model.DataCenter, "dc1").description == "second"
    assert second.revision == 3
    assert "datacenter 'dc1' written from a stale copy (read at revision 1, now 2)" in caplog.text


# ------------------------------------------------------------------- schema versions

V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE objects (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE UNIQUE INDEX objects_kind_name ON objects(kind, name);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    object_id TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX events_object ON events(object_id);
INSERT INTO meta(key, value) VALUES ('schema', '1');
"""


def _v1_file(path, *objects):
    with sqlite3.connect(path) as raw:
        raw.executescript(V1_SCHEMA)
        for obj in objects:
            raw.execute("INSERT INTO objects VALUES (?,?,?,?,?)",
                        (obj.id, state_mod.kind_of(type(obj)), obj.name, model.to_json(obj), 1.0))
        raw.execute("INSERT INTO events(ts, object_id, level, message) VALUES (1, 'x', 'info', 'old')")
    raw.close()


def _schema_of(path):
    raw = sqlite3.connect(path)
    try:
        return raw.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
    finally:
        raw.close()


def test_a_new_file_records_the_schema_version(tmp_path):
    StateStore(tmp_path / "s.db").close()
    assert _schema_of(tmp_path / "s.db") == str(SCHEMA_VERSION)


def test_a_v1_file_is_migrated_and_keeps_its_data(tmp_path, caplog, capsys):
    db = tmp_path / "s.db"
    dc = model.DataCenter(name="dc1", description="from v1")
    cl = model.Cluster(name="cl1", datacenter_id=dc.id)
    _v1_file(db, dc, cl)
    with caplog.at_level(logging.INFO, logger="virtplane.state"):
        s = StateStore(db)
    assert "migrated state store" in caplog.text
    assert f"from schema version 1 to {SCHEMA_VERSION}" in caplog.text
    assert capsys.readouterr() == ("", "")  # the library logs, it never prints
    assert _schema_of(db) == str(SCHEMA_VERSION)
    got = s.find(model.DataCenter, "dc1")
    assert got == dc and got.revision == 1
    assert s.find(model.Cluster, "cl1") == cl
    assert s.events("x") == [(1.0, "info", "old")]
    got.description = "after"
    s.update(got)
    assert s.find(model.DataCenter, "dc1").revision == 2
    s.add_event("x", "new", code=31, correlation_id="c-1")
    s.add_job(model.Job(kind="start_vm"))
    assert s.check() == []
    s.close()
    StateStore(db).close()  # opening a migrated file again changes nothing
    assert _schema_of(db) == str(SCHEMA_VERSION)


def test_a_failed_migration_leaves_the_v1_file_alone(tmp_path, monkeypatch):
    db = tmp_path / "s.db"
    _v1_file(db, model.DataCenter(name="dc1"))
    broken = (*_sqlite.MIGRATIONS[1], "THIS IS NOT SQL")
    monkeypatch.setitem(_sqlite.MIGRATIONS, 1, broken)
    with pytest.raises(StateError, match=r"migrating state store .*s.db from schema version 1 "
                                         r"to 2 failed \(near \"THIS\": syntax error\); "
                                         "the file is unchanged"):
        StateStore(db)
    assert _schema_of(db) == "1"
    with sqlite3.connect(db) as raw:
        columns = [r[1] for r in raw.execute("PRAGMA table_info(objects)")]
    raw.close()
    assert "version" not in columns


def test_a_file_from_a_newer_virtplane_is_refused(tmp_path):
    db = tmp_path / "s.db"
    StateStore(db).close()
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE meta SET value='99' WHERE key='schema'")
    raw.close()
    with pytest.raises(StateError) as info:
        StateStore(db)
    assert str(info.value) == (
        f"state store {db} has schema version 99, written by a newer virtplane; this "
        f"virtplane understands up to version {SCHEMA_VERSION}: upgrade virtplane")
    assert _schema_of(db) == "99"


def test_an_sqlite_file_that_is_not_a_state_store_is_refused(tmp_path):
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as raw:
        raw.execute("CREATE TABLE songs (title TEXT)")
    raw.close()
    with pytest.raises(StateError, match=r"other.db is an SQLite database but not a virtplane "
                                         r"state store \(tables: songs\)"):
        StateStore(db)


# --------------------------------------------------------- permissions and paths


def test_file_and_folder_are_private(tmp_path):
    old = os.umask(0o022)
    try:
        db = tmp_path / "a" / "b" / "state.db"
        s = StateStore(db)
        s.add(model.DataCenter(name="dc1"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    wal = db.with_name("state.db-wal")
    assert wal.exists() and stat.S_IMODE(wal.stat().st_mode) == 0o600


def test_an_existing_folder_keeps_its_mode(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    StateStore(folder / "s.db").close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_a_folder_that_cannot_be_created_is_a_clear_error(tmp_path):
    (tmp_path / "plain").write_text("a file, not a folder")
    with pytest.raises(StateError, match=r"cannot create the folder .*plain/sub of the "
                                         r"state store s.db: Not a directory"):
        StateStore(tmp_path / "plain" / "sub" / "s.db")


def test_a_directory_instead_of_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "s.db").mkdir()
    with pytest.raises(StateError, match="s.db is unreadable"):
        StateStore(tmp_path / "s.db")


# ------------------------------------------------------------------- read-only files


def _filled(db):
    s = StateStore(db)
    s.add(model.DataCenter(name="dc1"))
    s.add_event("x", "hello")
    s.close()


def test_a_read_only_store_serves_reads_and_refuses_writes(tmp_path):
    db = tmp_path / "s.db"
    _filled(db)
    ro = StateStore(db, readonly=True)
    assert ro.readonly
    dc = ro.find(model.DataCenter, "dc1")
    assert dc.revision == 1 and ro.events("x")[0][2] == "hello"
    assert ro.check() == []
    for write in (lambda: ro.add(model.DataCenter(name="dc2")), lambda: ro.update(dc),
                  lambda: ro.add_event("x", "more"),
                  lambda: ro.modify(model.DataCenter, "dc1", lambda d: None)):
        with pytest.raises(StateError, match=rf"state store {db} is read-only .*this command "
                                             "needs to change it"):
            write()
    assert [d.name for d in ro.list(model.DataCenter)] == ["dc1"]


def test_an_unwritable_file_is_opened_read_only(tmp_path, monkeypatch):
    db = tmp_path / "s.db"
    _filled(db)
    real_access = os.access
    monkeypatch.setattr(state_mod.os, "access",
                        lambda p, mode: False if mode == os.W_OK else real_access(p, mode))
    s = StateStore(db)
    assert s.readonly and s.find(model.DataCenter, "dc1").name == "dc1"
    with pytest.raises(StateError, match="is read-only"):
        s.add(model.DataCenter(name="dc2"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write a 0400 file")
def test_a_chmod_0400_file_serves_reads(tmp_path):
    db = tmp_path / "s.db"
    _filled(db)
    os.chmod(db, 0o400)
    s = StateStore(db)
    assert s.readonly and s.find(model.DataCenter, "dc1").name == "dc1"


def test_a_read_only_v1_file_cannot_be_migrated(tmp_path):
    db = tmp_path / "s.db"
    _v1_file(db, model.DataCenter(name="dc1"))
    with pytest.raises(StateError, match=rf"has schema version 1 and needs migrating to "
                                         rf"{SCHEMA_VERSION}, "
                                         r"but it is read-only: open it once with write access"):
        StateStore(db, readonly=True)


def test_a_missing_file_cannot_be_opened_read_only(tmp_path):
    with pytest.raises(StateError, match="does not exist, so it cannot be opened read-only"):
        StateStore(tmp_path / "nope.db", readonly=True)
    assert not (tmp_path / "nope.db").exists()


# ----------------------------------------------------------------- jobs and events


def test_jobs_round_trip_with_revisions(tmp_path):
    s = StateStore(tmp_path / "s.db")
    job = model.Job(kind="start_vm", object_id="vm-1", correlation_id="req-1",
                    steps=[model.JobStep("schedule")])
    s.add_job(job)
    assert job.revision == 1
    other = model.Job(kind="snapshot_vm", object_id="vm-2", correlation_id="req-1",
                      created=job.created + 1)
    s.add_job(other)
    with pytest.raises(AlreadyExists, match=f"a job with id {job.id} already exists"):
        s.add_job(job)
    got = s.get_job(job.id)
    assert got == job and got.revision == 1
    got.status = model.JobStatus.STARTED
    got.steps[0].progress = 50
    got.progress = 25
    before = got.updated
    s.update_job(got)
    assert got.revision == 2 and got.updated >= before
    job.status = model.JobStatus.ABORTED
    with pytest.raises(Conflict, match=rf"the job 'start_vm {job.id}' was changed by another "
                                       r"writer since it was read \(read at revision 1, now 2\)"):
        s.update_job(job)
    assert s.get_job(job.id).status is model.JobStatus.STARTED
    assert s.get_job(job.id).steps[0].progress == 50
    assert [j.id for j in s.list_jobs()] == [job.id, other.id]
    assert [j.id for j in s.list_jobs(correlation_id="req-1", object_id="vm-2")] == [other.id]
    assert [j.id for j in s.list_jobs(status=model.JobStatus.STARTED)] == [job.id]
    assert [j.id for j in s.list_jobs(status=[model.JobStatus.QUEUED,
                                              model.JobStatus.STARTED])] == [job.id, other.id]
    assert s.list_jobs(correlation_id="req-2") == []
    with pytest.raises(NotFound, match="no job with id nope"):
        s.get_job("nope")
    with pytest.raises(NotFound, match="no job with id"):
        s.update_job(model.Job(kind="x"))
    assert s.check() == []
    assert model.JobStatus.ABORTED.done and not model.JobStatus.STARTED.done


def test_job_progress_is_a_percentage():
    with pytest.raises(ValueError, match="progress must be between 0 and 100, not 101"):
        model.Job(kind="x", progress=101)
    with pytest.raises(ValueError, match="progress must be between 0 and 100, not -1"):
        model.JobStep("x", progress=-1)


def test_events_carry_an_optional_code_and_correlation_id(tmp_path):
    db = tmp_path / "s.db"
    s = StateStore(db)
    s.add_event("vm-1", "plain")  # the old signature still works
    s.add_event("vm-1", "coded", "warning", code=31, correlation_id="req-1")
    assert [e[1:] for e in s.events("vm-1")] == [("info", "plain"), ("warning", "coded")]
    with sqlite3.connect(db) as raw:
        rows = raw.execute("SELECT message, code, correlation_id FROM events ORDER BY seq")
        assert rows.fetchall() == [("plain", None, None), ("coded", 31, "req-1")]
    raw.close()


WRITER = textwrap.dedent("""
    import sys
    from virtplane import model
    from virtplane.state import StateStore

    s = StateStore(sys.argv[1])
    batch = 0
    while True:
        with s.transaction():
            for j in range(25):
                s.add(model.DataCenter(name=f"b{batch}-{j}", description="x" * 2000))
        if batch == 2:
            print("writing", flush=True)
        batch += 1
""")


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.5])
def test_killed_mid_write_leaves_a_consistent_store(tmp_path, delay):
    db = tmp_path / "s.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    s = StateStore(db)
    assert s.check() == []
    per_batch = collections.Counter(dc.name.split("-")[0] for dc in s.list(model.DataCenter))
    assert len(per_batch) >= 3
    # every batch is complete: a transaction landed whole or not at all
    assert set(per_batch.values()) == {25}, per_batch
    # and the store is writable again
    s.add(model.DataCenter(name="after-kill"))
