#!/usr/bin/env python3
"""Benchmarks of the oVirt-compatible API (plugins/api_ovirt), reported like run_all.py.

- ``api_list``: the real SDK's ``vms_service().list()`` of 1,000 VMs against
  ``virtplane-api serve`` vs the same call against a static server answering
  the very same bytes (the SDK's own parsing is the floor); goal <= 1.5x.
- ``api_concurrent``: 20 SDK clients (threads, one connection each) for a
  bounded time: requests per second, p50 and p99 latency.
- ``api_memory``: the API process's resident memory serving 10,000 VMs.
- ``api_stack``: the server stack choice, a tiny request loop: uvicorn +
  Starlette vs the standard library's ThreadingHTTPServer.

The API runs in its own process (as deployed; the client's parsing must not
share its interpreter), on loopback, plain HTTP. Run alone:
``.venv/bin/python tests/perf/bench_api.py [--only api_list,...]``; the
benchmark functions take ``(tmp, env)`` like run_all.py's, so run_all.py can
list them in its BENCHES table (see docs/api-ovirt.md).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run_all  # noqa: E402  (the shared report() and RESULTS)

_main = sys.modules.get("__main__")
if _main is not None and hasattr(_main, "RESULTS") and hasattr(_main, "report"):
    # imported by ``run_all.py`` run as a script: report into its RESULTS, not a copy's
    run_all = _main  # type: ignore[assignment]  # noqa: F811

PASSWORD = "bench-password"
CLI = [sys.executable, "-m", "virtplane_api_ovirt.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _populate(state: Path, n: int) -> None:
    """A data center, cluster, host and ``n`` VM records (written straight to the
    store in one transaction: setup cost is not what is measured)."""
    from virtplane import Manager, config, model

    with Manager(config.load(), state_path=state) as m:
        m.datacenters.add("dc1")
        cl = m.clusters.add("c1", "dc1")
        m.hosts.add("h1", "c1", "test:///default")
        with m.store.transaction():
            for i in range(n):
                m.store.add(model.Vm(spec=model.VmSpec(name=f"vm-{i:05d}", memory_mib=512,
                                                       os="other"), cluster_id=cl.id))


class ApiProcess:
    """``virtplane-api serve --http`` on a state store, in its own process."""

    def __init__(self, state: Path, env: dict[str, str]) -> None:
        subprocess.run([*CLI, "--state", str(state), "set-password", "--password-stdin"],
                       input=PASSWORD + "\n", check=True, capture_output=True, text=True,
                       env=env)
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [*CLI, "--state", str(state), "serve", "--http", "--port", str(self.port)],
            env=env, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}/ovirt-engine/api"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read() if self.proc.stderr else ""
                    raise RuntimeError(f"virtplane-api serve did not start: {err}") from None
                time.sleep(0.05)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS in /proc status")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class StaticServer:
    """Answers the SSO calls and every API GET with fixed bytes (the floor)."""

    def __init__(self, body: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def _send(self, data: bytes, ctype: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send(b'{"access_token": "t"}', "application/json")

            def do_GET(self) -> None:  # noqa: N802
                self._send(body, "application/xml")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ovirt-engine/api"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _connect(url: str) -> Any:
    import ovirtsdk4

    return ovirtsdk4.Connection(url=url, username="admin@internal", password=PASSWORD,
                                timeout=120)


def _env(tmp: Path, env: dict[str, str], name: str) -> tuple[Path, dict[str, str]]:
    root = tmp / name
    env = dict(env)
    for var in ("XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        env[var] = str(root / var)
        os.environ[var] = env[var]
    return root / "state.db", env


# ------------------------------------------------------------------ benchmarks


def bench_api_list(tmp: Path, env: dict[str, str]) -> None:
    state, env = _env(tmp, env, "list")
    _populate(state, 1000)
    api = ApiProcess(state, env)
    try:
        import requests

        body = requests.get(f"{api.url}/vms", auth=("admin@internal", PASSWORD),
                            timeout=60).content
        static = StaticServer(body)
        try:
            ours, floor = _connect(api.url), _connect(static.url)
            vms_ours, vms_floor = ours.system_service().vms_service(), \
                floor.system_service().vms_service()
            assert len(vms_ours.list()) == len(vms_floor.list()) == 1000
            times: dict[str, list[float]] = {"ours": [], "floor": []}
            for _ in range(15):  # interleaved: this VM's speed drifts over minutes
                for key, svc in (("ours", vms_ours), ("floor", vms_floor)):
                    t0 = time.perf_counter()
                    svc.list()
                    times[key].append(time.perf_counter() - t0)
            ours.close()
            floor.close(logout=False)
        finally:
            static.stop()
    finally:
        api.stop()
    med_ours, med_floor = statistics.median(times["ours"]), statistics.median(times["floor"])
    ratio = med_ours / med_floor
    run_all.report("api: SDK vms_service().list() of 1,000 VMs vs static bytes", ratio,
                   "<= 1.5x", ratio <= 1.5,
                   f"{med_ours * 1e3:.1f} ms vs {med_floor * 1e3:.1f} ms (median of 15, "
                   f"{len(body) / 1024:.0f} KiB of XML) = {ratio:.2f}x")


def bench_api_concurrent(tmp: Path, env: dict[str, str], clients: int = 20,
                         seconds: float = 10.0) -> None:
    state, env = _env(tmp, env, "concurrent")
    _populate(state, 1000)
    api = ApiProcess(state, env)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    try:
        conns = [_connect(api.url) for _ in range(clients)]
        ids = [v.id for v in conns[0].system_service().vms_service().list(max=50)]
        stop_at = [0.0]
        start = threading.Barrier(clients, action=lambda: stop_at.__setitem__(
            0, time.perf_counter() + seconds))

        def client(n: int) -> None:
            vms = conns[n].system_service().vms_service()
            mine: list[float] = []
            vms.vm_service(ids[n]).get()  # log in before the clock starts
            start.wait()
            i = 0
            try:
                while time.perf_counter() < stop_at[0]:
                    t0 = time.perf_counter()
                    if i % 5 == 4:
                        vms.list(search=f"name=vm-{(n * 37 + i) % 1000:05d}")
                    else:
                        vms.vm_service(ids[(n + i) % len(ids)]).get()
                    mine.append(time.perf_counter() - t0)
                    i += 1
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 60)
        for c in conns:
            c.close()
    finally:
        api.stop()
    if errors or not latencies:
        raise RuntimeError(f"{len(errors)} clients failed; first: {errors[:1]}")
    latencies.sort()
    rps = len(latencies) / seconds
    p50 = latencies[len(latencies) // 2] * 1e3
    p99 = latencies[int(len(latencies) * 0.99)] * 1e3
    run_all.report(f"api: {clients} concurrent SDK clients, requests/s", rps, "reported",
                   True, f"{rps:.0f} req/s over {seconds:.0f} s ({len(latencies)} requests: "
                   f"80% get VM, 20% search), p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    run_all.report(f"api: {clients} concurrent SDK clients, p99 latency (ms)", p99,
                   "reported", True, f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")


def bench_api_memory(tmp: Path, env: dict[str, str], n: int = 10_000) -> None:
    state, env = _env(tmp, env, "memory")
    t0 = time.perf_counter()
    _populate(state, n)
    made = time.perf_counter() - t0
    api = ApiProcess(state, env)
    try:
        idle = api.rss_mib()
        conn = _connect(api.url)
        t0 = time.perf_counter()
        listed = conn.system_service().vms_service().list()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.system_service().vms_service().list()
        second = time.perf_counter() - t0
        assert len(listed) == n
        conn.close()
        rss = api.rss_mib()
    finally:
        api.stop()
    run_all.report(f"api: process memory serving {n:,} VMs (MiB)", rss, "reported", True,
                   f"RSS {rss:.0f} MiB after listing them all (idle {idle:.0f} MiB); SDK "
                   f"list of {n:,}: {first:.2f} s cold, {second:.2f} s cached "
                   f"(setup {made:.0f} s)")


def bench_api_stack(tmp: Path, env: dict[str, str]) -> None:
    """The measurement behind the stack choice: a 300-byte XML reply, one keep-alive
    client in a loop, then 20 at once."""
    import http.client

    body = b"<vm id='1'><name>x</name></vm>" * 10

    def loop(port: int, n: int) -> list[float]:
        c = http.client.HTTPConnection("127.0.0.1", port)
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            c.request("GET", "/vm")
            c.getresponse().read()
            out.append(time.perf_counter() - t0)
        c.close()
        return out

    def measure(port: int) -> tuple[float, float, float]:
        loop(port, 200)
        t0 = time.perf_counter()
        loop(port, 2000)
        seq = 2000 / (time.perf_counter() - t0)
        lat: list[float] = []
        threads = [threading.Thread(target=lambda: lat.extend(loop(port, 300)))
                   for _ in range(20)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        conc = 6000 / (time.perf_counter() - t0)
        lat.sort()
        return seq, conc, lat[int(len(lat) * 0.99)] * 1e3

    static = StaticServer(body)
    port_std = int(static.url.split(":")[2].split("/")[0])
    std = measure(port_std)
    static.stop()

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def vm(request: Request) -> Response:
        return Response(body, media_type="application/xml")

    from virtplane_api_ovirt.server import _http_impl

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/vm", vm)]), port=port,
                                           log_level="error", http=_http_impl()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    ours = measure(port)
    server.should_exit = True
    thread.join(10)
    run_all.report("api: stack, uvicorn+Starlette vs stdlib ThreadingHTTPServer (1 client)",
                   ours[0] / std[0], "reported", True,
                   f"{ours[0]:.0f} vs {std[0]:.0f} req/s sequential; 20 clients "
                   f"{ours[1]:.0f} vs {std[1]:.0f} req/s, p99 {ours[2]:.1f} vs {std[2]:.1f} ms "
                   f"(uvicorn with {_http_impl()}; both in this process)")


BENCHES: dict[str, Callable[[Path, dict[str, str]], None]] = {
    "api_list": bench_api_list,
    "api_concurrent": bench_api_concurrent,
    "api_memory": bench_api_memory,
    "api_stack": bench_api_stack,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmark keys: " + ", ".join(BENCHES))
    parser.add_argument("--out", type=Path, default=HERE / "results-api.json")
    args = parser.parse_args(argv)
    keys = args.only.split(",") if args.only else list(BENCHES)
    unknown = [k for k in keys if k not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    crashed = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("VIRTPLANE_BENCH_DIR")) as d:
        env = dict(os.environ)
        for key in keys:
            t0 = time.perf_counter()
            try:
                BENCHES[key](Path(d), env)
            except Exception as exc:
                import traceback

                traceback.print_exc()
                crashed.append(key)
                run_all.report(f"[{key}] crashed", 0.0, "runs", False,
                               f"{type(exc).__name__}: {exc}")
            print(f"       ({key}: {time.perf_counter() - t0:.1f} s)")
    args.out.write_text(json.dumps(run_all.RESULTS, indent=2))
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
