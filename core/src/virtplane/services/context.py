"""The small explicit state every service shares (tox's ``State``, not a god object).

A :class:`Context` holds what an operation needs besides its arguments: the
configuration, the state store, the plugins and their hook runner, the driver
instances and host connections (typed), the paths virtplane writes to, and a
logger. Services take a Context (and the other services they use) in their
constructor; none of them imports :mod:`virtplane.manager` or the CLI.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from virtplane import drivers as _drivers
from virtplane import events as _events
from virtplane.errors import HookError

if TYPE_CHECKING:
    from virtplane import model
    from virtplane.config import Config
    from virtplane.plugins import HookRunner, PluginRegistry
    from virtplane.state import StateStore

ErrorSink = Callable[[HookError], None]


@dataclasses.dataclass(frozen=True)
class Paths:
    """Where virtplane keeps files besides the state store."""

    #: the state database file
    state: Path

    @property
    def saved(self) -> Path:
        """Hibernation images and snapshot memory, beside the state file."""
        return self.state.parent / "saved"


class DriverCache:
    """One instance per named driver, created with its validated settings; typed lookups."""

    def __init__(self, plugins: PluginRegistry, config: Config) -> None:
        self._plugins = plugins
        self._config = config
        self._made: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _get(self, kind: str, name: str) -> Any:
        key = (kind, name)
        with self._lock:
            if key not in self._made:
                cls = self._plugins.driver(kind, name)
                rec = self._plugins.records[name]
                self._made[key] = cls(rec.load_settings(self._config))
            return self._made[key]

    def architecture(self, name: str) -> _drivers.ArchitectureDriver:
        """The architecture driver ``name`` (``x86_64``, ``ppc64`` ...)."""
        return cast(_drivers.ArchitectureDriver, self._get("architecture", name))

    def storage(self, name: str) -> _drivers.StorageDriver:
        """The storage driver for a domain type (``localfs``, ``glusterfs`` ...)."""
        return cast(_drivers.StorageDriver, self._get("storage", name))

    def hypervisor(self, name: str) -> _drivers.HypervisorFactory:
        """The hypervisor driver ``name``: a factory of host connections."""
        return cast(_drivers.HypervisorFactory, self._get("hypervisor", name))


class ConnectionPool:
    """Open host connections, one per host, shared by every service (thread safe)."""

    def __init__(self, drivers: DriverCache, log: logging.Logger) -> None:
        self._drivers = drivers
        self._log = log
        self._open: dict[str, _drivers.HypervisorConnection] = {}
        self._lock = threading.Lock()
        self._on_drop: list[Callable[[str], None]] = []

    def on_drop(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(host_id)`` whenever a host's connection is dropped."""
        self._on_drop.append(callback)

    def get(self, host: model.Host) -> _drivers.HypervisorConnection:
        """The connection to ``host``, opened on first use."""
        with self._lock:
            conn = self._open.get(host.id)
        if conn is None:
            made = self._drivers.hypervisor(host.driver).connect(host.uri)
            with self._lock:
                conn = self._open.setdefault(host.id, made)
            if conn is not made:  # another thread's connection won the race: ours goes
                self._close(made)
        return conn

    def drop(self, host_id: str) -> None:
        """Close and forget a host's connection (it is reopened on next use)."""
        with self._lock:
            conn = self._open.pop(host_id, None)
        if conn is not None:
            self._close(conn)
        for callback in self._on_drop:
            callback(host_id)

    def close_all(self) -> None:
        with self._lock:
            conns, self._open = list(self._open.values()), {}
        for conn in conns:
            self._close(conn)

    def _close(self, conn: _drivers.HypervisorConnection) -> None:
        try:
            conn.close()
        except Exception as exc:  # noqa: BLE001 - closing is best effort; it is logged
            self._log.warning("closing a host connection failed: %s", exc)


class ExpectedStops:
    """VMs virtplane itself is stopping: event callbacks (another thread) ignore them."""

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def add(self, name: str) -> None:
        with self._lock:
            self._names.add(name)

    def discard(self, name: str) -> None:
        with self._lock:
            self._names.discard(name)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._names


def _level(level: str | None, code: int | None) -> str:
    """An event's level: the one given, else its code's (:data:`virtplane.events.LEVEL`),
    else ``info``."""
    if level is not None:
        return level
    return _events.LEVEL.get(code, "info") if code is not None else "info"


class Context:
    """What every service shares. Build one with :meth:`virtplane.Manager.open` or directly.

    :param config: the loaded configuration.
    :param plugins: the loaded plugin registry.
    :param hooks: the hook runner over ``plugins``.
    :param state_path: the state store (opened on first use): a file, or a server URL
        (``postgresql://...``), whose local files go where
        :func:`virtplane.state.local_anchor` says.
    """

    def __init__(self, config: Config, plugins: PluginRegistry, hooks: HookRunner,
                 state_path: str | os.PathLike[str], log: logging.Logger | None = None
                 ) -> None:
        from virtplane.state import local_anchor, scheme_of

        self.config = config
        self.plugins = plugins
        self.hooks = hooks
        #: the store as given: a URL keeps its ``//`` (a Path would fold it)
        self.location: str | Path
        if scheme_of(state_path) == "sqlite" and not os.fspath(state_path).startswith("sqlite:"):
            self.location = Path(state_path)
            self.paths = Paths(state=self.location)
        else:
            self.location = os.fspath(state_path)
            self.paths = Paths(state=local_anchor(state_path))
        self.log = log or logging.getLogger("virtplane")
        self.drivers = DriverCache(plugins, config)
        self.connections = ConnectionPool(self.drivers, self.log)
        self.expected_stops = ExpectedStops()
        self._store: StateStore | None = None
        self._store_lock = threading.Lock()

    @property
    def store(self) -> StateStore:
        """The state store (opened on first use)."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    from virtplane.state import StateStore

                    self._store = StateStore(self.location)
        return self._store

    def event(self, object_id: str, message: str, level: str | None = None, *,
              code: int | None = None) -> None:
        """Add a line to an object's event log.

        :param level: ``info`` ... ``error``; None: the code's level
            (:data:`virtplane.events.LEVEL`), else ``info``.
        :param code: the event's code (:class:`virtplane.events.Code`: oVirt's numbers
            where one fits). The correlation id is the running job's, if any.
        """
        self.store.add_event(object_id, message, level=_level(level, code), code=code)

    def record(self, obj: Any, message: str, level: str | None = None, *,
               code: int | None = None) -> None:
        """Store ``obj`` (compare-and-set, as :meth:`StateStore.update`) and add
        ``message`` to its event log, both or neither: a state change is never kept
        without the event that says it happened (a kill between two separate writes
        would lose the event): :meth:`StateStore.update_with_event`, one statement on
        PostgreSQL, one transaction on SQLite. The arguments are :meth:`event`'s.

        :raises Conflict: another writer changed ``obj`` since it was read (nothing is
            written, the event neither).
        """
        self.store.update_with_event(obj, message, _level(level, code), code=code)

    def hook_error_sink(self, object_id: str | None) -> ErrorSink:
        """Where failures of hooks that never fail their operation go: the object's
        event log and the log; with no object (manager open/close), the log alone."""

        def sink(err: HookError) -> None:
            self.log.error("%s", err)
            if object_id is not None:
                self.store.add_event(object_id, str(err), level="error")

        return sink

    def loaded(self, kind: str) -> list[str]:
        """Names of loaded plugins of a kind."""
        from virtplane.plugins import LOADED

        return sorted(r.name for r in self.plugins.records.values()
                      if kind in r.entries and r.status == LOADED)

    def close(self) -> None:
        """Close host connections and the store."""
        self.connections.close_all()
        if self._store is not None:
            self._store.close()
            self._store = None
