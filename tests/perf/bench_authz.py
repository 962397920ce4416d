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
    """GET requests straight into an ASGI app, on one event loop of this thread."""

    def __init__(self, app: Any, user: str, password: str) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        token = base64.b64encode(f"{user}:{password}".encode())
        self.headers = [(b"host", b"localhost"), (b"accept", b"application/xml"),
                        (b"authorization", b"Basic " + token)]

    def get(self, path: str) -> bytes:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "root_path": "", "query_string": b"", "headers": self.headers,
                 "client": ("127.0.0.1", 50000), "server": ("localhost", 80)}
        sent = False
        status = 0
        body: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        self.loop.run_until_complete(self.app(scope, receive, send))
        data = b"".join(body)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {data[:300]!r}")
        return data

    def close(self) -> None:
        self.loop.close()


def _state(folder: Path, clusters: int, per_cluster: int) -> tuple[Any, list[Any], list[Any]]:
    """A Manager over a new state store: dc, ``clusters`` clusters and ``per_cluster``
    VM records on each (written in one transaction: setup is not what is measured)."""
    from virtplane import Manager, config, model

    m = Manager(config.load(), state_path=folder / "state.db")
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
