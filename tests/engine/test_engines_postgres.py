"""Several engines on one PostgreSQL: host leases, takeover, fencing, the leader, outages.

Against the real PostgreSQL of tools/start-postgres.sh (each test in its own schema);
locally a missing server skips, in CI it fails. Engines are ``virtplane engine run``
processes, each with its own XDG data folder (as on its own machine), sharing two
hosts on libvirt's test driver (``test:///`` node files).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from tests.engine.conftest import wait_for
from tests.state.conftest import drill_cluster, postgres_problem
from tests.state.conftest import pg_schemas as pg_schemas  # fixtures
from tests.state.conftest import pg_url as pg_url
from virtplane import model
from virtplane.errors import LeaseLost
from virtplane.state import LEADER, StateStore

pytestmark = [pytest.mark.integration]

TTL = 2.0


def _host_files(tmp: Path, count: int) -> list[Path]:
    files = []
    for h in range(count):
        path = tmp / f"node{h}.xml"
        path.write_text(
            f"<node><domain type='test'><name>ext-{h}</name><memory>131072</memory>"
            "<vcpu>1</vcpu><os><type>hvm</type></os></domain></node>")
        files.append(path)
    return files


def _world(url: str, tmp: Path) -> dict[str, str]:
    """dc1 / c1 / h0, h1 on test:/// node files, through a Manager on the URL (the
    core's Context keeps the URL as a URL); returns host name -> id."""
    from virtplane import Manager, config

    with Manager(config.load(), state_path=url) as m:
        m.datacenters.add("dc1")
        m.clusters.add("c1", "dc1")
        for i, f in enumerate(_host_files(tmp, 2)):
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


# ------------------------------------------------------------ engine processes


class PgEngine:
    """One ``virtplane engine run`` on the PostgreSQL store, on its own "machine"."""

    def __init__(self, name: str, url: str, tmp: Path) -> None:
        self.name = name
        self.data = tmp / f"data-{name}"
        self.log = tmp / f"engine-{name}.log"
        self.env = {**os.environ, "VIRTPLANE_STATE": url, "XDG_DATA_HOME": str(self.data)}
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


@pytest.mark.slow
def test_two_engines_share_take_over_fence_elect_and_ride_out_an_outage(
        pg_url: str, tmp_path: Path) -> None:
    hosts = _world(pg_url, tmp_path)
    store = StateStore(pg_url)
    a, b = PgEngine("a", pg_url, tmp_path), PgEngine("b", pg_url, tmp_path)
    engines = {"a": a, "b": b}
    try:
        # each holds one host, and one of them leads
        wait_for(lambda: sorted(_holders(store, hosts).values()) == ["a", "b"], 20,
                 "each engine holds one host")
        assert wait_for(lambda: _leader(store), 10, "a leader")
        status = wait_for(a.status, 10, "engine a answers")
        assert status["leases"]["id"] == "a" and len(status["leases"]["hosts"]) == 1
        wait_for(lambda: all(store.get(model.Host, h).status == model.HostStatus.UP
                             for h in hosts.values()), 10, "both hosts Up")

        # SIGSTOP a past its lease: b takes its host over; after SIGCONT a's renewal and
        # writes are refused (LeaseLost) and it steps back, then the hosts spread again
        a.signal(signal.SIGSTOP)
        wait_for(lambda: set(_holders(store, hosts).values()) == {"b"}, TTL * 4,
                 "b took a's host over")
        a.signal(signal.SIGCONT)
        wait_for(lambda: "stepping back from host" in a.logs(), TTL * 3,
                 "a steps back after waking up")
        assert "no longer held" in a.logs()  # the store's LeaseLost, not a guess
        wait_for(lambda: sorted(_holders(store, hosts).values()) == ["a", "b"], TTL * 6,
                 "the hosts spread out again")

        # kill the leader: the other one leads within the lease time
        leader = _leader(store)
        other = "b" if leader == "a" else "a"
        engines[leader].signal(signal.SIGKILL)
        engines[leader].proc.wait(10)
        wait_for(lambda: _leader(store) == other, TTL * 4, f"{other} becomes the leader")
        wait_for(lambda: set(_holders(store, hosts).values()) == {other}, TTL * 4,
                 f"{other} holds every host")
    finally:
        for e in engines.values():
            e.stop()
        store.dispose()


@pytest.mark.slow
def test_engines_stop_acting_while_postgresql_is_away_and_resume(tmp_path: Path) -> None:
    """Stop PostgreSQL (a cluster of the test's own) under an engine: it stops acting
    (no leases, not the leader), keeps answering, and takes everything back when the
    server returns; nothing is lost."""
    problem = postgres_problem()
    need(problem is None, problem or "")
    need(os.geteuid() == 0 and Path("/usr/bin/pg_createcluster").exists(),
         "the outage drill makes its own cluster: it needs root and Debian's postgresql")
    url = _pg("start")
    store = StateStore(url)
    with store.transaction():  # a clean slate in the drill's database
        for table in ("objects", "events", "jobs", "leases"):
            store._count(f"DELETE FROM {table}")
    hosts = _world(url, tmp_path)
    engine = PgEngine("solo", url, tmp_path)
    try:
        wait_for(lambda: set(_holders(store, hosts).values()) == {"solo"}
                 and _leader(store) == "solo", 20, "the engine holds both hosts and leads")
        _pg("stop")
        try:
            wait_for(lambda: "stops acting" in engine.logs(), TTL * 3,
                     "the engine notices the outage")
            st = wait_for(engine.status, 10, "the engine still answers")
            assert st["leases"]["reachable"] is False and st["leases"]["leader"] is False
            time.sleep(TTL)
        finally:
            _pg("start")
        wait_for(lambda: "reachable again" in engine.logs(), TTL * 6, "the engine resumes")
        wait_for(lambda: set(_holders(store, hosts).values()) == {"solo"}
                 and _leader(store) == "solo", TTL * 4, "it holds everything again")
        assert sorted(h.name for h in store.list(model.Host)) == ["h0", "h1"]
        assert [c.name for c in store.list(model.Cluster)] == ["c1"]
        assert all(h.status == model.HostStatus.UP for h in store.list(model.Host))
        assert engine.proc.poll() is None
    finally:
        engine.stop()
        store.dispose()
