"""A row written by a newer or broken writer, or tampered with, never breaks the store.

Several writers share one store and an administrator may edit or restore the file,
so every row is untrusted input. A property-based test (hypothesis) builds a small
installation on libvirt's test driver (a data center, a cluster, a host, a storage
domain, two VMs, one with a disk, a floating disk, a template, a job, events and a
lease), overwrites one row of the SQLite file directly and then runs ordinary reads
and writes through the Manager's services and the store: lists and gets of every
kind, starting and stopping the intact VM, its events, the jobs and leases, ``state
check`` and ``state show``'s counts and checksums.

What is tampered with: an object's JSON (values of the wrong type, keys missing or
extra, unknown enum values, huge numbers, NaN as raw text, bytes that are not UTF-8,
deep nesting, a 10 MB string, another kind's JSON, another object's JSON), its kind,
its version (zero, negative, text, fractional), its ``cluster_id``/``owner_id``
columns; a job's JSON; an event's fields; a lease's epoch and expiry; the schema
version in ``meta``.

The rule it checks (see :meth:`virtplane.state.StateStore.list`):

- every failure is a :class:`~virtplane.errors.VirtplaneError`; one caused by the row
  is a :class:`~virtplane.state.UnreadableRow` whose message is one line, names the
  row's kind and id and says to run ``virtplane state check``;
- a list leaves the bad row out (with a warning) and keeps every readable object;
  getting the bad object fails clearly;
- operations on intact objects keep working;
- nothing writes over a bad row: after all that, its columns are as tampered;
- ``state check`` names it.

It is derandomized and bounded (VIRTPLANE_FUZZ_EXAMPLES, default 150) so CI stays fast
and a failure reproduces. The CLI is run on a few tampered files in subprocesses.
Those tests need the SQLite file; a store-level fuzzer (VIRTPLANE_FUZZ_EXAMPLES_STORE,
default 200) tampers through the store's own statements with what PostgreSQL's typed
columns can hold (JSON text, whole-number versions and epochs, NULLs) and runs on
both backends (``store_url``; PostgreSQL skips locally when it is not running).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import STATE_BACKEND
from virtplane import model
from virtplane.errors import VirtplaneError

EXAMPLES = int(os.environ.get("VIRTPLANE_FUZZ_EXAMPLES", "150"))

#: the Manager and CLI tests tamper with the SQLite file itself
sqlite_file = pytest.mark.skipif(STATE_BACKEND != "sqlite",
                                 reason="tampers with the SQLite file itself")

#: the rows the fuzzer may pick: (kind, name) of objects in the base store
OBJECTS = [("datacenter", "dc"), ("cluster", "cl"), ("host", "h"),
           ("storage_domain", "sd"), ("vm", "vm1"), ("vm", "vm2"), ("image", "fd"),
           ("template", "t1")]
#: the rows starting and stopping vm2 reads
VM2_NEEDS = {("vm", "vm2"), ("cluster", "cl"), ("host", "h"), ("datacenter", "dc")}
CLASSES = {"datacenter": model.DataCenter, "cluster": model.Cluster, "host": model.Host,
           "storage_domain": model.StorageDomain, "vm": model.Vm, "image": model.Image,
           "template": model.Template}


# ------------------------------------------------------------------- the world


@dataclass(repr=False)
class World:
    base: Path  # the intact file, copied for every example
    ids: dict[tuple[str, str], str]  # (kind, name) -> id
    data: dict[tuple[str, str], str]  # (kind, name) -> its JSON
    job_id: str
    storage: Path


def build(root: Path) -> World:
    from virtplane import Manager, config

    db = root / "base.db"
    m = Manager(config.load(), state_path=str(db))
    try:
        m.datacenters.add("dc")
        m.clusters.add("cl", "dc")
        m.hosts.add("h", "cl", "test:///default")
        m.storage.add("sd", "localfs", "dc", {"path": str(root / "sd")})
        dom = m.storage.get("sd")
        m.vms.create(model.VmSpec(name="vm1", memory_mib=256, disks=[
            model.DiskSpec(name="d1", size_bytes=1 << 20, domain_id=dom.id)]), "cl")
        m.vms.create(model.VmSpec(name="vm2", memory_mib=256), "cl")
        m.disks.create("fd", "sd", 1 << 20)
        m.templates.create("vm1", "t1")
        store = m.store
        vm2 = store.find(model.Vm, "vm2")
        job = model.Job(kind="vm.start", object_id=vm2.id)
        store.add_job(job)
        store.add_event(vm2.id, "hello", code=1, correlation_id="c1")
        store.acquire_lease(vm2.host_id or "h-lease", "engine-1", 60)
    finally:
        m.close()
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT kind, name, id, data FROM objects").fetchall()
    finally:
        con.close()
    ids = {(k, n): i for k, n, i, _ in rows}
    data = {(k, n): d for k, n, _, d in rows}
    return World(db, ids, data, job.id, root / "sd")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build(tmp_path_factory.mktemp("tamper"))


# ------------------------------------------------------------------ tampering


@dataclass(frozen=True)
class Tamper:
    table: str  # objects, jobs, events, leases, meta
    target: tuple[str, str] | None  # the object row, for objects
    column: str
    value: Any
    label: str

    def apply(self, db: Path, world: World) -> None:
        con = sqlite3.connect(db)
        try:
            if self.table == "objects":
                assert self.target is not None
                con.execute(f"UPDATE objects SET {self.column}=? WHERE id=?",
                            (self.value, world.ids[self.target]))
            elif self.table == "jobs":
                con.execute(f"UPDATE jobs SET {self.column}=?", (self.value,))
            elif self.table == "events":
                con.execute(f"UPDATE events SET {self.column}=?", (self.value,))
            elif self.table == "leases":
                con.execute(f"UPDATE leases SET {self.column}=?", (self.value,))
            else:
                con.execute("UPDATE meta SET value=? WHERE key='schema'", (self.value,))
            con.commit()
        finally:
            con.close()


json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(max_size=8))
json_values = st.recursive(json_scalars,
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=8)
#: values that are wrong for most fields, or for the enum fields
odd_values = (json_values | st.sampled_from(["unknown-status", "DOWN", "", "x" * 300])
              | st.integers(min_value=2**63, max_value=2**80))


@st.composite
def edited_json(draw: st.DrawFn, original: str) -> str:
    """The row's own JSON with one key set to an odd value, removed or added."""
    obj = json.loads(original)
    path: list[Any] = []
    node = obj
    while isinstance(node, dict) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node)))
        path.append(key)
        node = node[key]
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["set", "drop", "add"]))
    if not path or action == "add":
        target = parent if not path else parent[path[-1]]
        if isinstance(target, dict):
            target[draw(st.text(min_size=1, max_size=6))] = draw(odd_values)
        else:
            parent[path[-1]] = draw(odd_values)
    elif action == "drop":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(odd_values)
    return json.dumps(obj)


def raw_data(world: World, target: tuple[str, str]) -> st.SearchStrategy[Any]:
    own = world.data[target]
    others = sorted(world.data)
    return st.one_of(
        edited_json(own),
        json_values.map(json.dumps),
        st.sampled_from([
            "{", "", "null", "[1, 2]", "12", '"text"',
            own.replace("}", ', "x": NaN}', 1), own.replace("256", "Infinity"),
            '{"spec": ' * 5000 + "1" + "}" * 5000,
            "[" * 100_000 + "]" * 100_000,
            json.dumps({"name": "x" * 10_000_000}),
        ]),
        st.sampled_from([b"\xff\xfe\x00", b'{"name": "\xff"}', "é".encode("latin-1")]),
        st.sampled_from(others).map(lambda key: world.data[key]),  # another's JSON
    )


@st.composite
def tampers(draw: st.DrawFn, world: World) -> Tamper:
    table = draw(st.sampled_from(["objects"] * 6 + ["jobs", "events", "leases", "meta"]))
    if table == "objects":
        target = draw(st.sampled_from(OBJECTS))
        column = draw(st.sampled_from(["data"] * 4 + ["kind", "version", "cluster_id",
                                                       "owner_id"]))
        if column == "data":
            value: Any = draw(raw_data(world, target))
        elif column == "kind":
            value = draw(st.sampled_from(["gizmo", "", "VM", "job", "vm "]))
        elif column == "version":
            value = draw(st.sampled_from([0, -1, -(2**63), "abc", "", 1.5, 2**62, b"\x01"]))
        else:
            value = draw(st.sampled_from([None, "", "zzz", world.ids[("cluster", "cl")],
                                          world.ids[("vm", "vm1")]]))
        return Tamper(table, target, column, value, f"{target[0]} {target[1]} {column}")
    if table == "jobs":
        column = draw(st.sampled_from(["data", "data", "version", "status", "kind"]))
        value = (draw(raw_data(world, ("vm", "vm2"))) if column == "data"
                 else draw(st.sampled_from([0, -3, "abc", "weird", 1.5, b"\xff"])))
        return Tamper(table, None, column, value, f"job {column}")
    if table == "events":
        column = draw(st.sampled_from(["code", "correlation_id", "ts", "level", "message"]))
        value = draw(st.sampled_from([None, "x", 7, -1.5, b"\xff\x00", "y" * 1000]))
        if value is None and column in ("ts", "level", "message"):
            value = "z"  # NOT NULL columns
        return Tamper(table, None, column, value, f"event {column}")
    if table == "leases":
        column = draw(st.sampled_from(["epoch", "expires", "holder"]))
        value = draw(st.sampled_from(["abc", "", 1.5, b"\xff", None, -(2**63)]))
        if value is None and column != "holder":
            value = "none"
        return Tamper(table, None, column, value, f"lease {column}")
    value = draw(st.sampled_from(["abc", "", "-4", "0", "99999999999999999999", "7.5", None]))
    if value is None:
        value = "null"
    return Tamper("meta", None, "value", value, "meta schema")


# ------------------------------------------------------------------ operations


def check_error(exc: BaseException, tamper: Tamper, world: World) -> None:
    """A failure the tampering may cause: the store's, one line, naming the row."""
    from virtplane.state import UnreadableRow

    assert isinstance(exc, VirtplaneError), (
        f"{tamper.label}: {type(exc).__name__} escaped: {exc!r:.300}")
    text = str(exc)
    assert "\n" not in text and len(text) < 1200, f"{tamper.label}: not one line: {text:.300}"
    if isinstance(exc, UnreadableRow):
        assert "virtplane state check" in text, text
        assert f"{exc.kind} " in text and exc.row_id in text, text
        if tamper.target is not None and exc.row_id == world.ids[tamper.target]:
            assert exc.kind == tamper.target[0] or tamper.column == "kind", text


def guarded(results: dict[str, Any], name: str, fn: Callable[[], Any], tamper: Tamper,
            world: World) -> None:
    try:
        results[name] = fn()
    except Exception as exc:  # noqa: BLE001 - judged by check_error
        check_error(exc, tamper, world)
        results[name] = exc


def row_of(db: Path, tamper: Tamper, world: World) -> Any:
    con = sqlite3.connect(db)
    try:
        if tamper.table == "objects":
            assert tamper.target is not None
            return con.execute("SELECT kind, data, version, cluster_id, owner_id FROM objects "
                               "WHERE id=?", (world.ids[tamper.target],)).fetchall()
        if tamper.table == "jobs":
            return con.execute("SELECT data, version, status, kind FROM jobs WHERE id=?",
                               (world.job_id,)).fetchall()
        if tamper.table == "leases":
            return con.execute("SELECT epoch, expires FROM leases").fetchall()
        return None
    finally:
        con.close()


@pytest.fixture
def quiet() -> Iterator[None]:
    logging.getLogger("virtplane").setLevel(logging.ERROR)
    yield
    logging.getLogger("virtplane").setLevel(logging.NOTSET)


def exercise(world: World, tamper: Tamper) -> None:
    from virtplane import Manager, config
    from virtplane.state import UnreadableRow

    folder = Path(tempfile.mkdtemp(prefix="tamper-"))
    try:
        db = folder / "state.db"
        shutil.copy(world.base, db)
        tamper.apply(db, world)
        try:
            m = Manager(config.load(), state_path=str(db))
            m.store  # noqa: B018 - opening is an operation too
        except Exception as exc:  # noqa: BLE001
            check_error(exc, tamper, world)
            assert tamper.table == "meta", f"{tamper.label}: open failed: {exc}"
            assert "schema version" in str(exc)
            return
        before = row_of(db, tamper, world)
        r: dict[str, Any] = {}
        try:
            services = {"datacenter": m.datacenters, "cluster": m.clusters, "host": m.hosts,
                        "storage_domain": m.storage, "vm": m.vms, "template": m.templates}
            for kind, service in services.items():
                guarded(r, f"{kind}.list", service.list, tamper, world)
            guarded(r, "image.list", m.disks.list, tamper, world)
            for (kind, name) in OBJECTS:
                svc = services.get(kind, m.disks if kind == "image" else m.storage)
                guarded(r, f"{kind}.get {name}", lambda s=svc, n=name: s.get(n), tamper, world)
                guarded(r, f"{kind}.byid {name}",
                        lambda k=kind, n=name: m.store.get(CLASSES[k], world.ids[(k, n)]),
                        tamper, world)
            guarded(r, "vm2.start", lambda: m.vms.start("vm2"), tamper, world)
            guarded(r, "vm2.destroy", lambda: m.vms.destroy("vm2"), tamper, world)
            guarded(r, "vm2.events", lambda: m.vms.events("vm2"), tamper, world)
            guarded(r, "events", lambda: m.store.events_since(0), tamper, world)
            guarded(r, "jobs", m.store.list_jobs, tamper, world)
            guarded(r, "job", lambda: m.store.get_job(world.job_id), tamper, world)
            guarded(r, "leases", m.store.list_leases, tamper, world)
            guarded(r, "check", m.store.check, tamper, world)
            from virtplane.state._copy import checksums, row_counts

            guarded(r, "show", lambda: (row_counts(m.store), checksums(m.store)), tamper,
                    world)
            after = row_of(db, tamper, world)
        finally:
            m.close()
        problems = r["check"]
        assert isinstance(problems, list), f"{tamper.label}: state check failed: {problems}"
        # lists never fail because of one row
        for kind in ("datacenter", "cluster", "host", "storage_domain", "vm", "template",
                     "image"):
            if kind == "image" and tamper.target is not None and \
                    tamper.target[0] in ("vm", "template", "storage_domain", "image"):
                # describing a disk reads its domain, its owner, the VMs and images whose JSON
                # names it (a question about one object: a damaged answer fails it), and
                # the service lets that failure end the listing (services/disks.py)
                continue
            assert not isinstance(r[f"{kind}.list"], Exception), (
                f"{tamper.label}: {kind} list failed: {r[f'{kind}.list']}")
        for key in ("jobs", "leases", "events", "show"):
            assert not isinstance(r[key], Exception), f"{tamper.label}: {key}: {r[key]}"
        bad = tamper.target if tamper.table == "objects" else None
        unreadable = [k for k in OBJECTS if isinstance(r[f"{k[0]}.byid {k[1]}"], UnreadableRow)]
        assert all(k == bad for k in unreadable), f"{tamper.label}: {unreadable} unreadable"
        for key in OBJECTS:  # every intact object is listed and can be read
            if key == bad:
                continue
            got = r[f"{key[0]}.byid {key[1]}"]
            assert not isinstance(got, Exception), f"{tamper.label}: get {key}: {got}"
            if key[0] != "image":
                assert key[1] in [o.name if key[0] != "vm" else o.spec.name
                                  for o in r[f"{key[0]}.list"]], (tamper.label, key)
        if bad in unreadable:
            assert bad is not None
            listed = r[f"{bad[0]}.list"]
            if bad[0] != "image":
                assert world.ids[bad] not in [o.id for o in listed], tamper.label
            assert any(world.ids[bad] in p for p in problems), (tamper.label, problems)
            assert after == before, f"{tamper.label}: the bad row was written over"
        if tamper.table == "objects" and tamper.column == "kind":
            assert any(world.ids[bad] in p for p in problems) or tamper.value == bad[0]
        if tamper.table == "jobs" and isinstance(r["job"], UnreadableRow):
            assert r["jobs"] == [], tamper.label
            assert any(world.job_id in p for p in problems), (tamper.label, problems)
            assert after == before, f"{tamper.label}: the bad job was written over"
        v = tamper.value
        if tamper.table == "leases" and (
                (tamper.column == "epoch" and not (type(v) is int and v >= 1))
                or (tamper.column == "expires" and type(v) not in (int, float))):
            assert r["leases"] == [], tamper.label
            assert any(p.startswith("lease ") for p in problems), (tamper.label, problems)
        if (bad is None or (bad not in VM2_NEEDS and tamper.column != "kind")) \
                and tamper.table != "meta":
            for key in ("vm2.start", "vm2.destroy", "vm2.events"):
                assert not isinstance(r[key], Exception), f"{tamper.label}: {key}: {r[key]}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@sqlite_file
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_tampered_row_fails_clearly_and_harms_nothing_else(world: World, quiet: None,
                                                             data: st.DataObject) -> None:
    exercise(world, data.draw(tampers(world), label="tamper"))


# ------------------------------------------------------------------ the CLI


CLI_TAMPERS = [
    Tamper("objects", ("vm", "vm1"), "data", "{", "vm1 not JSON"),
    Tamper("objects", ("vm", "vm1"), "data", b"\xff\xfe\x00", "vm1 not UTF-8"),
    Tamper("jobs", None, "data", "[1]", "job JSON"),
    Tamper("events", None, "ts", "x", "event time text"),
    Tamper("leases", None, "epoch", "abc", "lease epoch text"),
    Tamper("meta", None, "value", "-4", "schema version negative"),
]
CLI_COMMANDS = [("vm", "list"), ("disk", "list"), ("vm", "show", "vm1"),
                ("vm", "events", "vm2"), ("events",), ("job", "list", "--all"),
                ("state", "check"), ("state", "show"), ("state", "leases")]


@sqlite_file
@pytest.mark.parametrize("tamper", CLI_TAMPERS, ids=[t.label for t in CLI_TAMPERS])
def test_the_cli_on_a_tampered_file_says_which_row(world: World, tamper: Tamper,
                                                   tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    shutil.copy(world.base, db)
    tamper.apply(db, world)
    exe = Path(sys.executable).with_name("virtplane")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTPLANE_")}
    outputs = {}
    for args in CLI_COMMANDS:
        done = subprocess.run([str(exe), "--state", str(db), *args], capture_output=True,
                              text=True, timeout=60, env=env, check=False)
        outputs[args] = done
        assert "Traceback" not in done.stderr, (tamper.label, args, done.stderr[-2000:])
        assert done.returncode in (0, 1), (tamper.label, args, done.returncode, done.stderr)
        for line in done.stderr.splitlines():
            assert len(line) < 1200, (tamper.label, args, line[:300])
        if done.returncode and args != ("state", "check"):  # check: problems on stdout
            assert done.stderr.startswith("virtplane: error: "), (args, done.stderr)
    if tamper.table == "meta":
        assert all(o.returncode for a, o in outputs.items() if a[0] not in ("events",))
        return
    listing = outputs[("vm", "list")]
    assert listing.returncode == 0, listing.stderr
    assert "vm2" in listing.stdout
    check = outputs[("state", "check")]
    if tamper.table in ("objects", "jobs", "leases"):
        assert check.returncode == 1 and check.stdout.strip(), check
    if tamper.label.startswith("vm1"):
        assert "vm1" not in listing.stdout.split()
        assert "virtplane state check" in listing.stderr, listing.stderr
        show = outputs[("vm", "show", "vm1")]
        assert show.returncode == 1 and "virtplane state check" in show.stderr
        assert world.ids[("vm", "vm1")] in show.stderr


# ------------------------------------------------------ the store, both backends


def store_world(store: Any) -> dict[str, Any]:
    """Objects of every kind, a job, an event and a lease, written through the store."""
    dc = model.DataCenter(name="dc")
    cl = model.Cluster(name="cl", datacenter_id=dc.id)
    host = model.Host(name="h", cluster_id=cl.id, uri="test:///default", driver="kvm")
    sd = model.StorageDomain(name="sd", type="localfs", datacenter_id=dc.id,
                             connection={"path": "/nonexistent"})
    vm1 = model.Vm(spec=model.VmSpec(name="vm1", memory_mib=256), cluster_id=cl.id)
    vm2 = model.Vm(spec=model.VmSpec(name="vm2", memory_mib=256), cluster_id=cl.id)
    image = model.Image(domain_id=sd.id, alias="fd", owner=f"vm:{vm1.id}")
    for obj in (dc, cl, host, sd, vm1, vm2, image):
        store.add(obj)
    job = model.Job(kind="vm.start", object_id=vm2.id)
    store.add_job(job)
    store.add_event(vm2.id, "hello", code=1, correlation_id="c1")
    store.acquire_lease("h-lease", "engine-1", 60)
    return {"objects": {(type(o), o.id): o for o in (dc, cl, host, sd, vm1, vm2, image)},
            "job": job}


#: what PostgreSQL's typed columns can hold (text JSON, whole numbers)
pg_values = st.sampled_from([0, -1, -(2**31)])


@st.composite
def portable_tampers(draw: st.DrawFn, world: dict[str, Any]) -> tuple[str, str, Any, Any]:
    """(table, column, key, value) a row may be tampered with on either backend."""
    objects = world["objects"]
    table = draw(st.sampled_from(["objects"] * 5 + ["jobs", "events", "leases"]))
    if table == "objects":
        cls, obj_id = draw(st.sampled_from(sorted(objects, key=lambda k: k[1])))
        column = draw(st.sampled_from(["data"] * 4 + ["kind", "version", "cluster_id",
                                                       "owner_id"]))
        own = model.to_json(objects[(cls, obj_id)])
        if column == "data":
            value: Any = draw(st.one_of(
                edited_json(own), json_values.map(json.dumps),
                st.sampled_from(["{", "", "null", "[1]", own.replace("}", ', "x": NaN}', 1),
                                 "[" * 50_000 + "]" * 50_000]),
                st.sampled_from(sorted(objects, key=lambda k: k[1])).map(
                    lambda key: model.to_json(objects[key]))))
        elif column == "kind":
            value = draw(st.sampled_from(["gizmo", "job", "VM"]))
        elif column == "version":
            value = draw(pg_values)
        else:
            value = draw(st.sampled_from([None, "", "zzz"]))
        return table, column, obj_id, value
    if table == "jobs":
        column = draw(st.sampled_from(["data", "version"]))
        value = (draw(st.sampled_from(["{", "[]", "null", '{"kind": 1}']))
                 if column == "data" else draw(pg_values))
        return table, column, world["job"].id, value
    if table == "events":
        return table, draw(st.sampled_from(["code", "correlation_id"])), None, None
    return table, "epoch", "h-lease", draw(pg_values)


def tamper_portably(store: Any, change: tuple[str, str, Any, Any]) -> Any:
    """Apply it through the store's own statements; return what undoes it."""
    table, column, key, value = change
    where = {"objects": "id=:key", "jobs": "id=:key", "events": "1=1",
             "leases": "resource=:key"}[table]
    old = store._rows(f"SELECT {column} FROM {table} WHERE {where}", {"key": key})[0][0]
    store._rows(f"UPDATE {table} SET {column}=:v WHERE {where}", {"v": value, "key": key})
    return lambda: store._rows(f"UPDATE {table} SET {column}=:v WHERE {where}",
                               {"v": old, "key": key})


def exercise_store(store: Any, world: dict[str, Any],
                   change: tuple[str, str, Any, Any]) -> None:
    from virtplane.state import UnreadableRow
    from virtplane.state._copy import checksums

    table, column, key, _ = change
    label = f"{table}.{column}"
    fake = Tamper(table, None, column, None, label)
    bad: set[str] = set()
    for (cls, obj_id) in world["objects"]:
        for read in (lambda c=cls, i=obj_id: store.get(c, i),
                     lambda c=cls, i=obj_id: store.find(c, i)):
            try:
                read()
            except Exception as exc:  # noqa: BLE001 - judged by check_error
                check_error(exc, fake, World(Path(), {}, {}, "", Path()))
                assert isinstance(exc, (UnreadableRow, VirtplaneError))
                bad.add(obj_id)
    assert bad <= {key}, (label, bad)
    for cls in {c for c, _ in world["objects"]}:
        listed = {o.id for o in store.list(cls)}  # never fails
        want = {i for c, i in world["objects"] if c is cls} - bad
        if column != "kind":
            assert want <= listed, (label, cls)
        assert not listed & bad, (label, cls)
    intact = next(o for (c, i), o in world["objects"].items() if i not in bad
                  and c is model.Vm)
    store.modify(model.Vm, intact.id, lambda v: setattr(v, "status_reason", "touched"))
    store.list_jobs()
    store.list_leases()
    store.events_since(0)
    checksums(store)
    problems = store.check()
    for obj_id in bad:
        assert any(obj_id in p for p in problems), (label, problems)
    try:
        store.get_job(world["job"].id)
    except Exception as exc:  # noqa: BLE001
        assert isinstance(exc, UnreadableRow) and table == "jobs", (label, exc)
        assert any(world["job"].id in p for p in problems), (label, problems)


@settings(max_examples=int(os.environ.get("VIRTPLANE_FUZZ_EXAMPLES_STORE", "200")),
          derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_tampered_row_on_either_backend(store: Any, quiet: None,
                                          data: st.DataObject) -> None:
    """The store-level part of the rule, on SQLite and PostgreSQL alike: one row of
    one store tampered with at a time, then put back."""
    world = store.__dict__.setdefault("_fuzz_world", None) or store_world(store)
    store.__dict__["_fuzz_world"] = world
    change = data.draw(portable_tampers(world), label="change")
    undo = tamper_portably(store, change)
    try:
        exercise_store(store, world, change)
    finally:
        undo()
