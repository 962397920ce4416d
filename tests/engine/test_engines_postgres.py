"""Several engines on one PostgreSQL: host leases, takeover, fencing, the leader, outages.

Against real PostgreSQL (tools/start-postgres.sh; the engines' drill on a cluster of
its own, because it stops the server); locally a missing server skips, in CI it
fails. Engines are ``virtplane engine run`` processes, each with its own XDG data
folder (as on its own machine) and the oVirt REST API as its front end, sharing six
hosts on libvirt's test driver (``test:///`` node files), while a CLI writer and an
API writer create VMs throughout.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from tests.engine.conftest import wait_for
from tests.state.conftest import drill_cluster, postgres_problem, with_schema
from tests.state.conftest import pg_schemas as pg_schemas  # fixtures
from tests.state.conftest import pg_url as pg_url
from virtplane import model
from virtplane.errors import LeaseLost
from virtplane.state import LEADER, StateStore
from virtplane_engine.codes import Code

pytestmark = [pytest.mark.integration]

TTL = 2.0
PASSWORD = "s3cret-pass"


def _host_files(tmp: Path, count: int) -> list[Path]:
    files = []
    for h in range(count):
        path = tmp / f"node{h}.xml"
        path.write_text(
            f"<node><domain type='test'><name>ext-{h}</name><memory>131072</memory>"
            "<vcpu>1</vcpu><os><type>hvm</type></os></domain></node>")
        files.append(path)
    return files


def _world(url: str, tmp: Path, hosts: int = 2) -> dict[str, str]:
    """dc1 / c1 / h0, h1, ... on test:/// node files, through a Manager on the URL (the
    core's Context keeps the URL as a URL); returns host name -> id."""
    from virtplane import Manager, config

    cfg = config.load()  # the hosts are test-driver node files: allow them
    cfg.plugin_tables.setdefault("kvm", {})["test_driver_files"] = True
    with Manager(cfg, state_path=url) as m:
        m.datacenters.add("dc1")
        m.clusters.add("c1", "dc1")
        for i, f in enumerate(_host_files(tmp, hosts)):
            m.hosts.add(f"h{i}", "c1", f"test://{f}")
        return {h.name: h.id for h in m.hosts.list()}


# ------------------------------------------------------- the keeper, in-process


def test_a_paused_engines_prepared_write_is_refused_and_it_steps_back(pg_url: str,
                                                                       tmp_path: Path) -> None:
    from virtplane_engine.leases import Keeper

    hosts = _world(pg_url, tmp_path)
    store = StateStore(pg_url)
    a = Keeper(lambda: store, "engine-a", 1.0, shared=True)
    b = Keeper(lambda: store, "engine-b", 1.0, shared=True)
    a.round(sorted(hosts.values()))
    assert sorted(a.held) == sorted(hosts.values())  # alone: every host is its share
    assert a.is_leader
    h0 = hosts["h0"]
    time.sleep(1.3)  # "paused" past its leases: no renewal
    assert not a.is_leader  # its local deadline says so without asking the store
    b.round(sorted(hosts.values()))
    assert sorted(b.held) == sorted(hosts.values()) and b.is_leader
    assert b.held[h0].epoch == a.held[h0].epoch + 1  # a new fencing token
    before = store.get(model.Host, h0)
    with pytest.raises(LeaseLost, match="taken over"), a.fenced(h0):
        store.modify(model.Host, h0, lambda h: setattr(h, "status_reason", "late write"))
    assert h0 not in a.held  # stepped back
    assert store.get(model.Host, h0).revision == before.revision  # nothing landed
    with b.fenced(h0):
        store.modify(model.Host, h0, lambda h: setattr(h, "status_reason", "b writes"))
    assert store.get(model.Host, h0).status_reason == "b writes"
    a.round(sorted(hosts.values()))  # comes back: its renewals are refused too
    assert not a.held and not a.is_leader
    store.dispose()


def test_the_leader_fails_the_jobs_of_a_dead_engine_once_and_no_others(pg_url: str) -> None:
    from virtplane_engine.leases import PRESENCE, Keeper

    store = StateStore(pg_url)
    a = Keeper(lambda: store, "engine-a", 1.0, shared=True)
    store.acquire_lease(PRESENCE + "engine-b", "engine-b", 30)  # b is alive, not leading

    def job(engine: str | None, age: float) -> model.Job:
        j = model.Job(kind="vm.start", status=model.JobStatus.STARTED,
                      updated=time.time() - age)
        store.add_job(j, engine=engine)
        return j

    dead, alive, mine = job("engine-gone", 60), job("engine-b", 60), job("engine-a", 60)
    young, unknown = job("engine-new", 0), job(None, 60)  # just started; no engine named
    assert store.job_engines()[dead.id] == "engine-gone"
    a.round([])
    assert a.is_leader
    status = {j.id: store.get_job(j.id).status for j in (dead, alive, mine, young, unknown)}
    assert status == {dead.id: model.JobStatus.FAILED, alive.id: model.JobStatus.STARTED,
                      mine.id: model.JobStatus.STARTED, young.id: model.JobStatus.STARTED,
                      unknown.id: model.JobStatus.STARTED}
    assert "engine engine-gone" in (store.get_job(dead.id).error or "")
    a.round([])  # again: nothing more to fail, no second event
    assert _events(store, dead.id, Code.JOB_FAILED_ON_RESTART) == 1
    assert dead.id not in store.job_engines() and alive.id in store.job_engines()
    store.dispose()


def test_ha_restarts_are_the_leaders_under_its_lease(pg_url: str) -> None:
    """Two engines in-process on PostgreSQL (the leader lease row read ``FOR SHARE``):
    a crash on the other engine's host is restarted once, by the leader; a leader whose
    lease is taken over between its mark and its start starts nothing, and the new
    leader starts the VM once (tests/scheduling/test_ha_leader.py)."""
    from tests.scheduling.test_ha_leader import (
        crash_seen_by_another_engine,
        paused_leader,
        two_engines,
    )
    from virtplane import Manager, config

    made: list[Manager] = []

    def make() -> Manager:
        made.append(Manager(config.load(), state_path=pg_url))
        return made[-1]

    try:
        with two_engines(make) as (a, b, clock, events, hosts):
            crash_seen_by_another_engine(a, b, clock, events, hosts)
            events.clear()
            paused_leader(a, b, clock, events, hosts, "start")
    finally:
        for m in made:
            m.close()


# ------------------------------------------------------------ engine processes


class PgEngine:
    """One ``virtplane engine run`` on the PostgreSQL store, on its own "machine"."""

    def __init__(self, name: str, url: str, tmp: Path,
                 prepare: Callable[[PgEngine], None] | None = None) -> None:
        self.name = name
        self.data = tmp / f"data-{name}"
        self.log = tmp / f"engine-{name}.log"
        self.env = {**os.environ, "VIRTPLANE_STATE": url, "XDG_DATA_HOME": str(self.data)}
        if prepare is not None:
            prepare(self)
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "virtplane.cli", "engine", "run", "--engine-id", name,
                 "--lease-ttl", str(TTL), "--host-interval", "0.5", "--vm-interval", "1",
                 "--storage-interval", "1"],
                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=self.env)

    def status(self) -> dict[str, Any] | None:
        """``engine status --json`` on this engine's machine (None: no answer)."""
        proc = subprocess.run([sys.executable, "-m", "virtplane.cli", "engine", "status",
                               "--json"], capture_output=True, text=True, env=self.env,
                              timeout=30)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _holders(store: StateStore, hosts: dict[str, str]) -> dict[str, str]:
    """host name -> holder of its live lease ("" when none)."""
    rows = {lease.resource: lease for lease in store.list_leases()}
    out = {}
    for name, host_id in hosts.items():
        lease = rows.get(host_id)
        out[name] = lease.holder if lease is not None and lease.remaining() > 0 else ""
    return out


def _leader(store: StateStore) -> str:
    lease = store.get_lease(LEADER)
    return lease.holder if lease is not None and lease.remaining() > 0 else ""


def _pg(action: str) -> str:
    return drill_cluster(action, "virtplane-engines", 5497)



@pytest.fixture
def drill_store() -> Iterator[str]:
    """A fresh schema on the drill cluster (started if needed): the engines' store."""
    import psycopg

    problem = postgres_problem()
    need(problem is None, problem or "")
    need(os.geteuid() == 0 and Path("/usr/bin/pg_createcluster").exists(),
         "the engines' drill stops PostgreSQL, so it makes its own cluster: it needs root "
         "and Debian's postgresql")
    url = _pg("start")
    schema = "e_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield with_schema(url, schema)
    _pg("start")  # a failed drill may have left it stopped
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _serve_api(url: str, xdg: dict[str, Path]) -> None:
    """Every engine serves the API; the admin password is set once, in the database
    they all read (on PostgreSQL the API's users live there, docs/permissions.md)."""
    from virtplane_api_ovirt.auth import UserStore

    UserStore.for_state(url).set_password("admin@internal", PASSWORD)
    config = xdg["XDG_CONFIG_HOME"] / "virtplane"
    config.mkdir(parents=True, exist_ok=True)
    (config / "virtplane.toml").write_text(
        '[engine]\nfrontends = ["ovirt"]\nfrontend_listen = "127.0.0.1:0"\n'
        "frontend_tls = false\n"
        "[plugin.kvm]\ntest_driver_files = true\n")  # the hosts' node files


class Writers:
    """A CLI writer (``virtplane vm create`` processes on a machine of their own, no
    engine) and an API writer (the oVirt SDK against one engine's front end), each
    creating VMs until stopped and remembering which creations were acknowledged."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.tmp = tmp
        self.stop = threading.Event()
        self.tried: list[str] = []
        self.acked: list[str] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _record(self, name: str, ok: bool, why: str = "") -> None:
        with self._lock:
            (self.acked if ok else self.refused).append(name if ok else f"{name}: {why}")

    def _cli(self) -> None:
        env = {**os.environ, "VIRTPLANE_STATE": self.url,
               "XDG_DATA_HOME": str(self.tmp / "data-cli")}
        i = 0
        while not self.stop.is_set():
            name = f"cli-{i}"
            i += 1
            with self._lock:
                self.tried.append(name)
            done = subprocess.run([sys.executable, "-m", "virtplane.cli", "vm", "create",
                                   name, "--cluster", "c1", "--memory", "256"],
                                  capture_output=True, text=True, env=env, timeout=60)
            self._record(name, done.returncode == 0, done.stderr.strip()[-200:])

    def _api(self, api_url: str) -> None:
        import ovirtsdk4 as sdk
        import ovirtsdk4.types as t

        conn = sdk.Connection(url=api_url, username="admin@internal", password=PASSWORD,
                              timeout=15)
        try:
            vms = conn.system_service().vms_service()
            i = 0
            while not self.stop.is_set():
                name = f"api-{i}"
                i += 1
                with self._lock:
                    self.tried.append(name)
                try:
                    vms.add(t.Vm(name=name, cluster=t.Cluster(name="c1"),
                                 template=t.Template(name="Blank"), memory=256 << 20))
                except sdk.Error as exc:
                    self._record(name, False, str(exc)[:200])
                    self.stop.wait(0.3)
                    continue
                self._record(name, True)
                self.stop.wait(0.1)
        finally:
            conn.close()

    def start(self, api_url: str | None = None) -> None:
        target, args = (self._api, (api_url,)) if api_url else (self._cli, ())
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(90)
            assert not thread.is_alive(), "a writer hangs"


def _events(store: StateStore, object_id: str, code: int) -> int:
    return sum(1 for e in store.events_since(0, 100_000) if e[2] == object_id and e[5] == code)


@pytest.mark.slow
def test_three_engines_share_six_hosts_through_a_kill_a_pause_and_an_outage(
        drill_store: str, tmp_path: Path, xdg: dict[str, Path]) -> None:
    need(importlib.util.find_spec("ovirtsdk4") is not None,
         "ovirt-engine-sdk-python is not installed (requirements-dev.txt)")
    url = drill_store
    hosts = _world(url, tmp_path, hosts=6)
    store = StateStore(url)
    writers = Writers(url, tmp_path)
    writers.start()  # the CLI writer, from before the engines start to the end
    _serve_api(url, xdg)
    engines = {n: PgEngine(n, url, tmp_path) for n in ("a", "b", "c")}
    try:
        # two hosts each, one leader, every host Up; each engine serves the API
        wait_for(lambda: sorted(_holders(store, hosts).values()) == sorted("aabbcc"), 40,
                 "each engine holds two hosts")
        leader = wait_for(lambda: _leader(store), 10, "a leader")
        wait_for(lambda: all(store.get(model.Host, h).status == model.HostStatus.UP
                             for h in hosts.values()), 20, "every host Up")
        victim, survivor = sorted(set(engines) - {leader})
        status = wait_for(engines[survivor].status, 20, f"engine {survivor} answers")
        assert status["leases"]["id"] == survivor and len(status["leases"]["hosts"]) == 2
        writers.start(status["frontends"][0]["url"])  # the API writer, on the survivor

        # SIGKILL a non-leader: its two hosts are taken over within the lease time
        held = {h for h, e in _holders(store, hosts).items() if e == victim}
        engines[victim].signal(signal.SIGKILL)
        engines[victim].proc.wait(10)
        killed = time.monotonic()
        wait_for(lambda: set(_holders(store, hosts).values()) == {leader, survivor}, TTL * 3,
                 f"{victim}'s hosts taken over")
        took = time.monotonic() - killed
        # expiry (TTL after the last renewal) + one round of the others (TTL/3) + polling
        assert took <= TTL + TTL / 3 + 1.0, f"takeover of {sorted(held)} took {took:.1f} s"

        # SIGSTOP the leader past its lease; meanwhile a host is left PreparingForMaintenance
        # with no VM on it (as a CLI or another engine would leave it): moving it into
        # Maintenance is the leader's, and must happen once, by the new leader
        target = hosts["h5"]
        engines[leader].signal(signal.SIGSTOP)
        store.modify(model.Host, target, lambda h: setattr(
            h, "status", model.HostStatus.PREPARING_FOR_MAINTENANCE))
        wait_for(lambda: _leader(store) == survivor, TTL * 4, f"{survivor} leads")
        wait_for(lambda: store.get(model.Host, target).status == model.HostStatus.MAINTENANCE,
                 TTL * 3, "the new leader finishes the maintenance")
        wait_for(lambda: set(_holders(store, hosts).values()) == {survivor}, TTL * 3,
                 f"{survivor} holds every host")
        engines[leader].signal(signal.SIGCONT)
        wait_for(lambda: "stepping back from host" in engines[leader].logs(), TTL * 3,
                 f"{leader} steps back after waking up")
        assert "no longer held" in engines[leader].logs()  # the store's LeaseLost
        wait_for(lambda: sorted(_holders(store, hosts).values()) == sorted(
            [leader] * 3 + [survivor] * 3), TTL * 8, "the hosts spread out again")
        time.sleep(TTL)  # the woken engine had time to act, had it believed it leads
        assert _events(store, target, Code.HOST_MAINTENANCE) == 1
        assert "every VM moved away" in engines[survivor].logs()
        assert "every VM moved away" not in engines[leader].logs()
        assert _leader(store) == survivor

        # PostgreSQL away for a few seconds: both stop acting, answer, and come back
        before = {(type(o).__name__, o.id) for cls in (model.Host, model.Cluster,
                                                       model.DataCenter, model.Vm)
                  for o in store.list(cls)}
        live = [engines[leader], engines[survivor]]
        seen = {e.name: len(e.logs()) for e in live}
        _pg("stop")
        try:
            for e in live:
                wait_for(lambda e=e: "stops acting" in e.logs()[seen[e.name]:], TTL * 3,
                         f"engine {e.name} notices the outage")
            st = wait_for(engines[survivor].status, 20, "the engine still answers")
            assert st["leases"]["reachable"] is False and st["leases"]["leader"] is False
            time.sleep(TTL)
        finally:
            _pg("start")
        for e in live:
            wait_for(lambda e=e: "reachable again" in e.logs()[seen[e.name]:], TTL * 8,
                     f"engine {e.name} resumes")
        wait_for(lambda: sorted(_holders(store, hosts).values()) == sorted(
            [leader] * 3 + [survivor] * 3) and _leader(store), TTL * 8,
            "the hosts held again and a leader")
        after = {(type(o).__name__, o.id) for cls in (model.Host, model.Cluster,
                                                      model.DataCenter, model.Vm)
                 for o in store.list(cls)}
        assert before <= after, f"lost: {sorted(before - after)}"
        assert store.get(model.Host, target).status == model.HostStatus.MAINTENANCE
        time.sleep(1.0)  # writes after the outage too
    finally:
        writers.finish()
        for e in engines.values():
            e.stop()
    # every acknowledged write is there, once; nothing appeared that nobody asked for
    names = [v.spec.name for v in store.list(model.Vm)]
    assert len(names) == len(set(names))
    acked = set(writers.acked)
    assert acked <= set(names), f"acknowledged but missing: {sorted(acked - set(names))}"
    assert set(names) <= set(writers.tried)
    assert {n.split("-")[0] for n in acked} == {"cli", "api"}, writers.refused[:5]
    assert {n: store.get(model.Host, h).status.value for n, h in hosts.items()} == {
        **{n: "Up" for n in hosts}, "h5": "Maintenance"}
    # refused only while PostgreSQL was away (the CLI's and the API's words for it)
    assert all("unreachable" in r or "Service Unavailable" in r for r in writers.refused), \
        [r for r in writers.refused if "unreachable" not in r][:3]
    print(f"writes acknowledged: {len(acked)} of {len(writers.tried)} "
          f"(refused during the outage: {len(writers.refused)}); takeover {took:.1f} s")
    store.dispose()
