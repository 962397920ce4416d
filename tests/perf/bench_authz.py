#!/usr/bin/env python3
"""Permission benchmarks (issue 21), reported like run_all.py.

The world: 1,000 users, 100 groups (each user in one) and 10,000 permissions,
written through :class:`~virtplane_api_ovirt.authz.store.AuthzStore`'s public
functions; a state store with one data center, 100 clusters and 100 VM records
on each (10,000 VMs). The benchmark user is in group ``g000``, which holds
UserRole on cluster ``c000``; it has no permission of its own. The other
10,000 - 100 permissions are UserRole grants to other users on single VMs,
and each other group holds UserRole on its own cluster.

- ``authz``: (1) one permission check of the user on a VM of ``c000``
  (System → DC → cluster → VM; the grant found through the group on the
  cluster), in µs: against a tree that already read the objects (the index
  walk) and against a fresh tree per check (what a request does: the VM,
  cluster and data center read from the state store). Reported.
  (2) The API's ``GET /vms`` for that user, who may see 100 of the 10,000
  VMs, vs ``GET /vms`` of a store holding only 100 VMs as admin@internal
  (SuperUser on System). Goal <= 1.5x. The app from ``create_app`` is driven
  in this process through its ASGI interface (no sockets: the figure is the
  app's own work), with HTTP Basic credentials (cached by the app after the
  first login, as the SDK's token would be).

- ``authz`` (3), on PostgreSQL (the test server of ``tools/start-postgres.sh``,
  a fresh schema; skipped, and reported missed, when it is unreachable): the
  API's requests with the authz tables in the shared database, which tell
  whether another engine wrote by reading a version counter. A world of 1,000
  VMs (10 clusters of 100); the user holds UserVmManager on 100 single VMs.
  Counted (a wrapper on the store's backend): how many times one request reads
  the version, for ``GET /vms`` (100 visible of 1,000, after the session's
  user is looked up) and for a grant of ClusterAdmin on one of its VMs that the
  user may not give (each of the role's ~30 actions checked, then a 403). Goal
  <= 1 read per request (each read is a round trip to the server). Reported:
  the same requests' time on PostgreSQL against the same world on SQLite.

Run alone (``python tests/perf/bench_authz.py``) or from run_all.py
(``"authz": lambda tmp, env: bench_authz.bench_authz(tmp, report)``).
"""

from __future__ import annotations

import asyncio
import base64
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Report = Callable[[str, float, str, bool, str], None]

USERS = 1000
GROUPS = 100
CLUSTERS = 100
PER_CLUSTER = 100
PERMISSIONS = 10_000
PASSWORD = "bench-password"
BASE = "/ovirt-engine/api"


def _print_report(name: str, value: float, goal: str, met: bool, detail: str) -> None:
    print(f"{'met   ' if met else 'MISSED'} {name}: {detail} (goal {goal})")


class _Asgi:
    """Requests straight into an ASGI app, on one event loop of this thread."""

    def __init__(self, app: Any, user: str, password: str) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        token = base64.b64encode(f"{user}:{password}".encode())
        self.headers = [(b"host", b"localhost"), (b"accept", b"application/xml"),
                        (b"authorization", b"Basic " + token)]

    def get(self, path: str) -> bytes:
        return self.request("GET", path)

    def request(self, method: str, path: str, data: bytes = b"", status: int = 200) -> bytes:
        """The body of the answer, which must have ``status``."""
        headers = self.headers + ([(b"content-type", b"application/xml"),
                                   (b"content-length", str(len(data)).encode())]
                                  if data else [])
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": path,
                 "raw_path": path.encode(), "root_path": "", "query_string": b"",
                 "headers": headers, "client": ("127.0.0.1", 50000),
                 "server": ("localhost", 80)}
        sent = False
        got = 0
        body: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal got
            if message["type"] == "http.response.start":
                got = message["status"]
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        self.loop.run_until_complete(self.app(scope, receive, send))
        answer = b"".join(body)
        if got != status:
            raise RuntimeError(f"{method} {path}: HTTP {got}: {answer[:300]!r}")
        return answer

    def close(self) -> None:
        self.loop.close()


def _state(folder: Path | str, clusters: int, per_cluster: int
           ) -> tuple[Any, list[Any], list[Any]]:
    """A Manager over a new state store (a folder for a SQLite file, or a PostgreSQL
    URL): dc, ``clusters`` clusters and ``per_cluster`` VM records on each (written
    in one transaction: setup is not what is measured)."""
    from virtplane import Manager, config, model

    where = folder / "state.db" if isinstance(folder, Path) else folder
    m = Manager(config.load(), state_path=where)
    m.datacenters.add("dc")
    cls = [m.clusters.add(f"c{c:03d}", "dc") for c in range(clusters)]
    vms = []
    with m.store.transaction():
        for c, cl in enumerate(cls):
            for i in range(per_cluster):
                vm = model.Vm(spec=model.VmSpec(name=f"vm-{c:03d}-{i:03d}", memory_mib=512,
                                                os="other"), cluster_id=cl.id)
                m.store.add(vm)
                vms.append(vm)
    return m, cls, vms


def _users(path: Path, clusters: list[Any], vms: list[Any]) -> str:
    """The user file: 1,000 users, 100 groups, 10,000 permissions; returns the
    benchmark user's name."""
    from virtplane_api_ovirt.authz import Authz
    from virtplane_api_ovirt.authz.model import Kind

    authz = Authz(path)
    store = authz.store
    authz.set_password("admin@internal", PASSWORD)
    bench = authz.set_password("bench", PASSWORD)  # user 0: the one measured
    users = [bench] + [store.put_user(f"u{i:04d}") for i in range(1, USERS)]
    groups = [store.add_group(f"g{g:03d}") for g in range(GROUPS)]
    for i, user in enumerate(users):
        store.add_member(groups[i % GROUPS].id, user.id)
    role = store.index().role("UserRole").id
    rows = [(g.id, "group", role, Kind.CLUSTER, clusters[n].id) for n, g in enumerate(groups)]
    others = users[1:]
    rows += [(others[k % len(others)].id, "user", role, Kind.VM, vms[k].id)
             for k in range(PERMISSIONS - len(rows))]
    store.add_permissions(rows)
    ix = store.index()
    assert len(ix.users) == USERS + 1 and len(ix.groups) == GROUPS, (len(ix.users), len(ix.groups))
    assert len(ix.permissions) == PERMISSIONS, len(ix.permissions)
    authz.close()
    return bench.name


def _time_checks(authz: Any, user: str, vm_ref: Any, tree_of: Callable[[], Any],
                 n: int) -> float:
    """Seconds per check over ``n`` checks (``tree_of`` gives the tree of each)."""
    from virtplane_api_ovirt.authz.model import ActionGroup

    action = ActionGroup.VM_BASIC_OPERATIONS
    t0 = time.perf_counter()
    for _ in range(n):
        decision = authz.check(user, action, vm_ref, tree_of())
    elapsed = time.perf_counter() - t0
    assert decision.granted and decision.via is not None, decision.message()
    return elapsed / n


def bench_authz(tmp: Path, report: Report) -> None:
    from virtplane_api_ovirt import create_app
    from virtplane_api_ovirt.authz import USERS_FILE, Authz, StoreTree
    from virtplane_api_ovirt.authz.model import Kind, ObjectRef

    work = tmp / "authz-bench"
    t_setup = time.perf_counter()
    m, clusters, vms = _state(work / "big", CLUSTERS, PER_CLUSTER)
    user = _users(work / "big" / USERS_FILE, clusters, vms)
    base, _, _ = _state(work / "small", 1, PER_CLUSTER)
    Authz(work / "small" / USERS_FILE).set_password("admin@internal", PASSWORD)
    t_setup = time.perf_counter() - t_setup

    # (1) one check, deep in the tree, granted through the group on the cluster
    authz = Authz(work / "big" / USERS_FILE)
    target = vms[PER_CLUSTER // 2]  # a VM of c000
    vm_ref = ObjectRef(Kind.VM, target.id, target.name)
    warm = StoreTree(m.store)
    decision = authz.check(user, None, vm_ref, warm)
    assert decision.granted and decision.via is not None and \
        decision.via.kind == Kind.CLUSTER, decision.message()
    walks, fresh = [], []
    for _ in range(5):  # interleaved rounds; the minimum is the cost without interference
        walks.append(_time_checks(authz, user, vm_ref, lambda: warm, 4000))
        fresh.append(_time_checks(authz, user, vm_ref, lambda: StoreTree(m.store), 400))
    authz.close()
    report("authz: one permission check on a VM (grant via group on its cluster)",
           min(walks) * 1e6, "report", True,
           f"{min(walks) * 1e6:.1f} us per check on a read tree, {min(fresh) * 1e6:.0f} us "
           f"with a fresh tree per check (VM, cluster, DC read from the state store); "
           f"medians {statistics.median(walks) * 1e6:.1f} / {statistics.median(fresh) * 1e6:.0f}"
           f" us; {USERS} users, {GROUPS} groups, {PERMISSIONS} permissions")

    # (2) GET /vms: 100 visible of 10,000 vs 100 of 100 as SuperUser
    ours_app, base_app = create_app(m), create_app(base)
    ours = _Asgi(ours_app, user, PASSWORD)
    floor = _Asgi(base_app, "admin@internal", PASSWORD)
    try:
        # warm-up: the logins (argon2, then cached) and the VMs' XML cache
        got_ours, got_floor = ours.get(BASE + "/vms"), floor.get(BASE + "/vms")
        seen_ours, seen_floor = got_ours.count(b"<vm "), got_floor.count(b"<vm ")
        assert seen_ours == seen_floor == PER_CLUSTER, (seen_ours, seen_floor)
        times: dict[str, list[float]] = {"ours": [], "floor": []}
        for _ in range(25):  # interleaved: this machine's speed drifts over minutes
            for key, client in (("ours", ours), ("floor", floor)):
                t0 = time.perf_counter()
                client.get(BASE + "/vms")
                times[key].append(time.perf_counter() - t0)
    finally:
        ours.close()
        floor.close()
        ours_app.state.api.close()
        base_app.state.api.close()
        m.close()
        base.close()
    med_ours, med_floor = statistics.median(times["ours"]), statistics.median(times["floor"])
    ratio = med_ours / med_floor
    report("authz: GET /vms, a user seeing 100 of 10,000 VMs vs SuperUser listing 100",
           ratio, "<= 1.5x", ratio <= 1.5,
           f"{med_ours * 1e3:.2f} ms vs {med_floor * 1e3:.2f} ms (median of 25; minimums "
           f"{min(times['ours']) * 1e3:.2f} vs {min(times['floor']) * 1e3:.2f} ms) = "
           f"{ratio:.2f}x; in-process ASGI; setup {t_setup:.1f} s")
    bench_authz_postgresql(tmp, report)


#: the PostgreSQL world of (3): clusters of VMs, and the single VMs the user manages
PG_CLUSTERS = 10
PG_MANAGED = 100
#: what the user may not give: a role with more than UserVmManager's actions
WIDER_ROLE = "ClusterAdmin"
#: timed rounds of (3), each side in turn
ROUNDS = 25


class _Requests:
    """(3)'s two requests at one app, with the authz version reads they make."""

    def __init__(self, app: Any, user: str, target: str) -> None:
        self.client = _Asgi(app, user, PASSWORD)
        self.target = target
        self.reads = 0
        backend = app.state.api.authz.store.backend
        real = backend.version

        def version(conn: Any) -> int:
            self.reads += 1
            return int(real(conn))

        backend.version = version
        self.grant = (f"<permission><role><name>{WIDER_ROLE}</name></role><user>"
                      f"<user_name>other</user_name></user></permission>").encode()

    def list_vms(self) -> int:
        """GET /vms; the number of VMs in the answer."""
        return self.client.get(BASE + "/vms").count(b"<vm ")

    def refused_grant(self) -> bytes:
        return self.client.request("POST", f"{BASE}/vms/{self.target}/permissions",
                                   self.grant, status=403)

    def counted(self, run: Callable[[], Any]) -> int:
        """The version reads of one request."""
        self.reads = 0
        run()
        return self.reads


def _pg_world(where: Path | str) -> tuple[Any, Any, str]:
    """(3)'s world in a SQLite folder or at a PostgreSQL URL: the manager, the app (its
    users beside the state file, or in the database), and a VM the user manages."""
    from virtplane_api_ovirt import create_app
    from virtplane_api_ovirt.authz.model import Kind

    m, _, vms = _state(where, PG_CLUSTERS, PER_CLUSTER)
    app = create_app(m)
    authz = app.state.api.authz
    authz.set_password("admin@internal", PASSWORD)
    bench = authz.set_password("bench", PASSWORD)
    authz.set_password("other", PASSWORD)
    managed = vms[::len(vms) // PG_MANAGED][:PG_MANAGED]
    role = authz.store.index().role("UserVmManager").id
    authz.store.add_permissions([(bench.id, "user", role, Kind.VM, vm.id) for vm in managed])
    return m, app, str(managed[0].id)


def bench_authz_postgresql(tmp: Path, report: Report) -> None:
    """(3): version reads per request on PostgreSQL; time against SQLite."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_state import PG_URL, pg_schema

    name = ("authz: authz version reads per API request on PostgreSQL (GET /vms of "
            f"{PG_MANAGED} visible of {PG_CLUSTERS * PER_CLUSTER}; a refused grant)")
    made = pg_schema()
    if made is None:
        report(name, 0.0, "<= 1", False,
               f"PostgreSQL at {PG_URL.rpartition('@')[2]} is unreachable: nothing measured "
               "(tools/start-postgres.sh)")
        return
    url, drop = made
    sides: dict[str, tuple[Any, Any, _Requests]] = {}
    try:
        t_setup = time.perf_counter()
        for key, where in (("postgresql", url), ("sqlite", tmp / "authz-pg-bench")):
            m, app, target = _pg_world(where)
            sides[key] = (m, app, _Requests(app, "bench", target))
        t_setup = time.perf_counter() - t_setup
        reads: dict[tuple[str, str], int] = {}
        times: dict[tuple[str, str], list[float]] = {}
        for key, (_, _, req) in sides.items():
            assert req.list_vms() == PG_MANAGED  # warm-up: the login (argon2, then cached)
            assert b"cannot give role" in req.refused_grant()
            reads[(key, "list")] = req.counted(req.list_vms)
            reads[(key, "grant")] = req.counted(req.refused_grant)
        for _ in range(ROUNDS):  # interleaved: this machine's speed drifts over minutes
            for key, (_, _, req) in sides.items():
                for what, run in (("list", req.list_vms), ("grant", req.refused_grant)):
                    t0 = time.perf_counter()
                    run()
                    times.setdefault((key, what), []).append(time.perf_counter() - t0)
    finally:
        for m, app, req in sides.values():
            req.client.close()
            app.state.api.close()
            m.close()
        drop()
    worst = max(reads[("postgresql", "list")], reads[("postgresql", "grant")])
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    report(name, worst, "<= 1", worst <= 1,
           f"GET /vms {reads[('postgresql', 'list')]} read(s), a {WIDER_ROLE} grant refused "
           f"after its actions were checked one by one {reads[('postgresql', 'grant')]} "
           f"(SQLite, PRAGMA data_version: {reads[('sqlite', 'list')]} and "
           f"{reads[('sqlite', 'grant')]}); HTTP Basic, cached after the first login")
    ratio = med[("postgresql", "list")] / med[("sqlite", "list")]
    report("authz: GET /vms with permission filtering, PostgreSQL vs SQLite "
           f"({PG_MANAGED} visible of {PG_CLUSTERS * PER_CLUSTER})", ratio, "report", True,
           f"{med[('postgresql', 'list')] * 1e3:.2f} ms vs {med[('sqlite', 'list')] * 1e3:.2f}"
           f" ms = {ratio:.2f}x; the refused grant {med[('postgresql', 'grant')] * 1e3:.2f} vs "
           f"{med[('sqlite', 'grant')] * 1e3:.2f} ms = "
           f"{med[('postgresql', 'grant')] / med[('sqlite', 'grant')]:.2f}x (medians of "
           f"{ROUNDS}, interleaved; minimums {low[('postgresql', 'list')] * 1e3:.2f} vs "
           f"{low[('sqlite', 'list')] * 1e3:.2f} and {low[('postgresql', 'grant')] * 1e3:.2f} "
           f"vs {low[('sqlite', 'grant')] * 1e3:.2f} ms; in-process ASGI; setup "
           f"{t_setup:.1f} s)")


BENCHES: dict[str, Callable[[Path, dict[str, str]], None]] = {
    "authz": lambda tmp, env: bench_authz(tmp, _report()),
}


def _report() -> Report:
    """run_all.py's report() when run_all.py is the running script, else a printer."""
    main = sys.modules.get("__main__")
    found = getattr(main, "report", None) if hasattr(main, "RESULTS") else None
    return found if callable(found) else _print_report


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        for var in ("XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
            os.environ[var] = str(Path(d) / var)
        bench_authz(Path(d), _print_report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
