"""The engine process: asyncio loops over one long-lived Manager.

One :class:`~virtplane.Manager` is built at start and lives as long as the
process (its host connections with it); every blocking call — libvirt, storage
probes, the state store, the commands clients send — runs in one bounded
``ThreadPoolExecutor`` (``[engine] workers``), the asyncio loop only schedules:

* one task per host: a poll every ``host_interval`` (a poll that does not answer
  in time counts as missed; the next one is not started while it still hangs, so a
  hung host holds one thread), and a VM poll every ``vm_interval`` on hosts whose
  status allows it; a supervisor starts and ends host tasks as hosts come and go;
* a storage task: every domain probed every ``storage_interval``;
* a job watchdog: jobs running past ``job_timeout`` are failed.

Lifecycle events from libvirt arrive on the kvm driver's event thread and go
through the same services. SIGTERM (or ``virtplane engine stop``): the API
refuses new commands, loops stop, running jobs get ``stop_timeout`` to finish
and are then cancelled or failed, the endpoint file goes, the Manager closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from virtplane import model
from virtplane.cli import _common
from virtplane.errors import Conflict, LeaseLost, NotFound, StateError
from virtplane.state import StateStore, local_anchor, location_of
from virtplane_engine import endpoint, frontends, logs, streams
from virtplane_engine.codes import LEVEL, Code, store_event
from virtplane_engine.commands import Commands
from virtplane_engine.instrument import instrument
from virtplane_engine.jobs import JobRunner
from virtplane_engine.leases import Keeper, fence_events
from virtplane_engine.locks import ObjectLocks
from virtplane_engine.monitoring import VM_POLLED, Monitor
from virtplane_engine.server import ApiServer
from virtplane_engine.settings import EngineSettings, default_id
from virtplane_engine.storewatch import ServerWatch, StoreWatch, VmCache

if TYPE_CHECKING:
    from virtplane.config import Config
    from virtplane.manager import Manager
    from virtplane_engine.automation import Automation

log = logging.getLogger("virtplane.engine")
T = TypeVar("T")
#: host statuses whose storage reachability is checked (``Hosts.check_storage``)
STORAGE_CHECKED = frozenset({model.HostStatus.UP, model.HostStatus.NON_OPERATIONAL})

#: the engine of this process while it runs (``job cancel`` run inside it finds it here)
current: Engine | None = None


class Engine:
    """The engine of one state store.

    :param cfg: the configuration (its ``[engine]`` table and everything else).
    :param state_path: the state store (default: the configuration's).
    :param settings: overrides the ``[engine]`` table (tests use short intervals).
    """

    def __init__(self, cfg: Config, *, state_path: str | os.PathLike[str] | None = None,
                 settings: EngineSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        #: the store as given (a file, or a server URL such as ``postgresql://...``)
        self.location = os.fspath(state_path) if state_path else location_of(cfg)
        #: the local file the endpoint file and the engine lock are named after (the
        #: SQLite file; a per-URL folder for a server store, see ``local_anchor``)
        self.state_path = local_anchor(self.location)
        self.settings = settings or EngineSettings.from_config(cfg)
        self.clock = clock
        self.stopping = False
        self.started = time.time()
        self.locks = ObjectLocks()
        self._stop_reason = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.m: Manager
        self.executor: ThreadPoolExecutor
        self.runner: JobRunner
        self.monitor: Monitor
        self.commands: Commands
        self.server: ApiServer
        self.watch: StoreWatch | ServerWatch
        self.automation: Automation
        self.keeper: Keeper
        #: the front ends this engine serves (``[engine] frontends``)
        self.frontends: list[frontends.Served] = []

    # ----------------------------------------------------------- plumbing

    def store(self) -> StateStore:
        return self.m.context.store

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call in the engine's thread pool."""
        assert self._loop is not None
        return await self._loop.run_in_executor(self.executor, fn, *args)

    def emit(self, object_id: str, code: Code, message: str,
             correlation_id: str | None = None) -> None:
        """Record a coded event (and log it). Safe from any thread. Inside the thread's
        store transaction the event is part of it (a failure raises and rolls the
        change it reports back: :func:`~virtplane_engine.codes.store_event`)."""
        store_event(self.store(), object_id, code, message, correlation_id, log=log)
        log.log(logging.WARNING if LEVEL[code] != "info" else logging.INFO, "%s", message,
                extra={"code": int(code), "object": object_id,
                       "correlation_id": correlation_id})

    def request_stop(self, reason: str) -> None:
        """Begin a graceful stop (from a signal, the API or a test; any thread)."""
        self._stop_reason = reason
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)

    # -------------------------------------------------------------- start

    def run(self) -> int:
        """Run in the foreground until stopped; returns the exit status."""
        return asyncio.run(self.main())

    def build(self) -> None:
        """Open the Manager and everything around it (blocking; in a worker thread)."""
        from virtplane.manager import Manager

        self.m = Manager(self.cfg, state_path=self.location)
        _common.share_manager(self.m)
        store = self.store()  # create or migrate the file before the side connection reads it
        shared = store.backend != "sqlite"
        self.watch = ServerWatch(store) if shared else StoreWatch(self.state_path)
        self.runner = JobRunner(self.store, self.locks, self.settings)
        self.keeper = Keeper(self.store, self.settings.engine_id or default_id(),
                             self.settings.lease_ttl, shared=shared, on_lost=self._let_go)
        self.monitor = Monitor(self.m, self.settings, self.locks,
                               VmCache(self.store(), self.watch), self.emit, self.clock,
                               keeper=self.keeper)
        fence_events(self.m, self.keeper)
        instrument(self.m, self.runner, self.emit)
        from virtplane_engine.automation import attach

        self.automation = attach(self)  # scheduling, HA, fencing, maintenance (docs/ha.md)
        self.commands = Commands(self.runner, self.locks, self.executor, self.store)

    async def main(self) -> int:
        global current
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self.stopping = False
        lock = endpoint.EngineLock(self.state_path)
        lock.acquire()
        self.executor = ThreadPoolExecutor(self.settings.workers,
                                           thread_name_prefix="engine-worker")
        streams.install()
        current = self
        try:
            await self.call(self.build)
            # on a shared store the other engines' jobs are alive: only a sole engine
            # may fail what it finds unfinished
            failed = [] if self.keeper.shared else await self.call(self.runner.recover)
            # before the endpoint file: an engine whose front end cannot start exits
            # without ever looking alive to the CLI
            self.frontends = await asyncio.to_thread(
                frontends.start, self.settings.frontend_specs(), self.m,
                self.state_path.parent, self.settings.frontend_tls,
                self.settings.frontend_tls_names, self.locks)
            self.server = ApiServer(self.settings.address(), self)
            host, port = self.server.server_address[:2]
            info = endpoint.write(self.state_path, (str(host), int(port)))
            self.server.token = info["token"]
            self.server.start()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    self._loop.add_signal_handler(sig, self.request_stop, sig.name)
            _dump_stacks_on_sigusr1()
            self.emit("engine", Code.ENGINE_STARTED,
                      f"engine started (pid {os.getpid()}) on {info['address']} for "
                      f"{self.state_path}; {len(failed)} job(s) of a previous engine failed")
            if self.keeper.shared:
                await self._lease_round()  # hold hosts before the supervisor looks
                self._spawn("leases", self._leases())
            self._spawn("supervisor", self._supervise())
            self._spawn("storage", self._every(self.settings.storage_interval,
                                               self._probe_storage, "storage probe"))
            self._spawn("watchdog", self._every(1.0, self.runner.check_timeouts,
                                                "job watchdog"))
            auto = self.automation
            self._spawn("ha", self._every(1.0, auto.ha_tick, "fencing and HA"))
            self._spawn("maintenance", self._every(1.0, auto.maintenance_tick, "maintenance"))
            self._spawn("balance", self._every(auto.settings.balance_interval,
                                               auto.balance_tick, "balancing"))
            await self._stop_event.wait()
            await self._shutdown()
            return 0
        finally:
            current = None
            lock.release()

    def _spawn(self, name: str, coro: Any) -> None:
        self._tasks[name] = asyncio.get_running_loop().create_task(coro, name=name)

    # -------------------------------------------------------------- loops

    async def _every(self, interval: float, fn: Callable[[], Any], what: str) -> None:
        while not self.stopping:
            began = time.monotonic()
            try:
                await asyncio.wait_for(self.call(fn), timeout=max(interval * 3, 10.0))
            except TimeoutError:
                log.warning("%s did not finish in time", what)
            except Exception:  # noqa: BLE001 - one failed round must not end the loop
                log.exception("%s failed", what)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - began)))

    @property
    def is_leader(self) -> bool:
        """Whether this engine may take the singleton decisions now (balancing, HA,
        fencing): it holds the leader lease within its local deadline and reaches the
        store. Always True for the one engine of an SQLite store. Check it right before
        each decision; it can turn False at any time."""
        return self.keeper.is_leader

    def _let_go(self, host_id: str) -> None:
        """The keeper stopped holding ``host_id`` (any thread): end its task, forget it."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._end_host_task, host_id)
        self.monitor.let_go(host_id)

    def _end_host_task(self, host_id: str) -> None:
        task = self._tasks.pop(f"host:{host_id}", None)
        if task is not None:
            task.cancel()

    async def _lease_round(self) -> None:
        def host_ids() -> list[str]:
            return [h.id for h in self.store().list(model.Host)]

        try:
            # not the engine's pool: renewals must not wait behind hung host polls
            await asyncio.wait_for(asyncio.to_thread(self.keeper.round, host_ids),
                                   self.keeper.interval * 2)
        except StateError as exc:
            log.warning("lease round failed: %s", exc)
        except TimeoutError:
            log.warning("lease round did not finish within %g s",
                        self.keeper.interval * 2)

    async def _leases(self) -> None:
        while not self.stopping:
            began = time.monotonic()
            await self._lease_round()
            await asyncio.sleep(max(0.0, self.keeper.interval - (time.monotonic() - began)))

    def _probe_storage(self) -> int:
        """Storage domains are shared by every engine: the leader probes them. Then each
        engine records whether its hosts reach their data center's data domains
        (NonOperational with the reason, Up again: ``Hosts.check_storage``)."""
        changed = self.monitor.probe_storage() if self.keeper.is_leader else 0
        check_hosts_storage(self.m, self.keeper)
        return changed

    async def _supervise(self) -> None:
        """Start a task per host this engine holds, end it when the host is removed or
        another engine holds it."""
        while not self.stopping:
            try:
                hosts = await self.call(self.m.hosts.list)
            except Exception as exc:  # noqa: BLE001 - the store may be busy; try again next round
                log.warning("listing hosts failed: %s", exc)
                hosts = []
            hosts = [h for h in hosts if self.keeper.acts_on(h.id)]
            ids = {h.id for h in hosts}
            for host in hosts:
                task = self._tasks.get(f"host:{host.id}")
                if task is None or task.done():
                    self._spawn(f"host:{host.id}", self._host_task(host.id))
            for name in [n for n in self._tasks if n.startswith("host:")]:
                if name[5:] not in ids:
                    self._tasks.pop(name).cancel()
            await asyncio.sleep(self.settings.host_interval)

    async def _host_task(self, host_id: str) -> None:
        s = self.settings
        pending: asyncio.Future[Any] | None = None
        next_vms = 0.0
        while not self.stopping:
            began = time.monotonic()
            if pending is None or pending.done():
                pending = asyncio.ensure_future(self.call(self.monitor.poll_host, host_id))
            try:
                status = await asyncio.wait_for(asyncio.shield(pending), s.host_interval)
            except TimeoutError:
                status = await self.call(self.monitor.poll_failed, host_id,
                                         f"no answer within {s.host_interval:g} s")
            except StateError as exc:  # the store is away: keep polling, act later
                log.warning("polling host %s: %s", host_id, exc)
                status = None if isinstance(exc, LeaseLost) else model.HostStatus.UP
                if status is None:
                    return
            except Exception:  # noqa: BLE001 - a bug in one poll must not end the host's task
                log.exception("polling host %s failed", host_id)
                status = model.HostStatus.UP
            if status is None:
                return  # the host was removed
            if status in VM_POLLED and time.monotonic() >= next_vms:
                next_vms = time.monotonic() + s.vm_interval
                try:
                    await asyncio.wait_for(self.call(self.monitor.poll_vms, host_id),
                                           max(s.vm_interval, 10.0))
                except TimeoutError:
                    log.warning("VM poll of host %s did not finish in time", host_id)
                except StateError as exc:
                    log.warning("VM poll of host %s: %s", host_id, exc)
                except Exception:  # noqa: BLE001 - logged; the next poll tries again
                    log.exception("VM poll of host %s failed", host_id)
            await asyncio.sleep(max(0.0, s.host_interval - (time.monotonic() - began)))

    async def cycle(self) -> int:
        """One monitoring cycle over every host now (host polls, then VM polls, all hosts
        at once in the pool); returns how many VMs changed. For benchmarks and tests."""
        hosts = await self.call(self.m.hosts.list)
        statuses = await asyncio.gather(*(self.call(self.monitor.poll_host, h.id)
                                          for h in hosts))
        changed = await asyncio.gather(*(self.call(self.monitor.poll_vms, h.id)
                                         for h, st in zip(hosts, statuses, strict=True)
                                         if st in VM_POLLED))
        return sum(changed)

    # --------------------------------------------------------------- stop

    async def _shutdown(self) -> None:
        self.stopping = True
        log.info("engine stopping: %s", self._stop_reason or "asked to")
        await asyncio.to_thread(frontends.stop, self.frontends)
        await _cancel_all(list(self._tasks.values()))
        self._tasks.clear()
        # not the engine's pool: it may be full of polls of a hung host
        await asyncio.to_thread(self.runner.stop, self.settings.stop_timeout)
        try:  # the other engines take this one's hosts at once, not after the TTL
            await asyncio.to_thread(self.keeper.release_all)
        except StateError as exc:
            log.warning("leases not released (they expire by themselves): %s", exc)
        self.emit("engine", Code.ENGINE_STOPPED,
                  f"engine stopped (pid {os.getpid()}): {self._stop_reason or 'asked to'}")
        endpoint.remove(self.state_path)
        self.server.stop()
        closer = threading.Thread(target=self._close, name="engine-close", daemon=True)
        closer.start()
        closer.join(10.0)
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _close(self) -> None:
        _common.share_manager(None)
        self.watch.close()
        self.m.close()
        streams.uninstall()

    # ------------------------------------------------------------- status

    def status(self) -> dict[str, Any]:
        """What ``virtplane engine status`` shows."""
        running = [{"id": h.id, "kind": h.job.kind, "status": h.job.status.value,
                    "progress": h.job.progress} for h in self.runner.running()]
        data = {"pid": os.getpid(), "state": str(self.state_path),
                "uptime_s": round(time.time() - self.started, 1),
                "stopping": self.stopping, "jobs": running,
                "frontends": [{"name": f.name, "url": f.url} for f in self.frontends],
                "leases": self.keeper.describe(),
                "settings": {k: getattr(self.settings, k) for k in (
                    "host_interval", "vm_interval", "storage_interval", "grace_polls",
                    "grace_seconds", "grace_per_vm", "workers")}}
        try:
            data.update(self.monitor.describe())
            data.update(self.automation.describe())
        except Exception as exc:  # noqa: BLE001 - status must answer even when the store is busy
            data["hosts_error"] = str(exc)
        return data


def check_hosts_storage(m: Manager, keeper: Keeper) -> None:
    """``Hosts.check_storage`` for every host ``keeper``'s engine acts on, each write
    fenced by the host's lease (a host another engine holds is its business)."""
    for host in m.hosts.list():
        if host.status not in STORAGE_CHECKED or not keeper.acts_on(host.id):
            continue
        try:
            with keeper.fenced(host.id):
                m.hosts.check_storage(host.name)
        except (Conflict, NotFound, StateError) as exc:
            log.warning("host %s: storage reachability not recorded: %s", host.name, exc)


def run_foreground(cfg: Config, state_path: str | os.PathLike[str] | None,
                   settings: EngineSettings) -> int:
    """``virtplane engine run``: JSON-lines logs on stderr, run until stopped."""
    handler = logs.setup(sys.stderr)
    try:
        return Engine(cfg, state_path=state_path, settings=settings).run()
    finally:
        logs.teardown(handler)


def _dump_stacks_on_sigusr1() -> None:
    """``kill -USR1 <engine pid>`` writes every thread's stack to stderr (the engine's
    log), and the engine goes on: what a hung stop or a stuck poll is waiting for."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals are the main thread's (tests run engines in threads)
    with contextlib.suppress(ValueError, OSError, AttributeError):
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)


async def _cancel_all(tasks: list[asyncio.Task[Any]], limit: float = 30.0) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again those that go on.

    One ``cancel()`` is not enough on Python 3.11: ``asyncio.wait_for`` returns the
    inner result instead of raising when the cancellation meets an inner future that
    just finished (CPython gh-86296, fixed in 3.12), and a loop around it then runs
    on. The loops also stop on ``stopping``; what still runs after ``limit`` seconds is
    logged and left (the process is ending).
    """
    deadline = time.monotonic() + limit
    pending = {t for t in tasks if not t.done()}
    while pending and time.monotonic() < deadline:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=min(
            1.0, max(0.0, deadline - time.monotonic())))
    if pending:
        log.warning("engine stop: %s still running after %g s; left to the process's end",
                    ", ".join(sorted(t.get_name() for t in pending)), limit)
