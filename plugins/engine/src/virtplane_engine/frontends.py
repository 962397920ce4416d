"""Front ends the engine serves: ASGI apps from the ``virtplane.frontends`` group.

A front end (the oVirt-compatible REST API, ``virtplane-api-ovirt``) is a
distribution with an entry point in :data:`GROUP` naming a factory
``create_app(manager, **options) -> ASGI app``. The engine calls it with its own
long-lived Manager, so requests act through the engine's host connections (on
libvirt's test driver the VMs live in the engine's process, and the API, the
CLI and the monitor all see the same ones) instead of a second process opening
its own.

Each front end runs under its package's ``Server`` runner when it has one
(``Server(app, host, port, pki=..., tls_names=...)``: uvicorn on its own event
loop in a thread, with the package's own CA for HTTPS), else under a plain
uvicorn runner here (HTTP, so loopback only). Why a thread and not the engine's
loop: uvicorn's ``serve()`` captures the process's signals while it runs, and
the API's handlers block on the store; neither belongs on the loop that
schedules host polls.

``[engine] frontends`` lists names, each optionally with its address
(``"ovirt@0.0.0.0:8443"``); without one a front end listens on
``frontend_listen``. HTTPS unless ``frontend_tls = false``, which is allowed on
loopback only (tests): the API's passwords and tokens never cross a network in
clear.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from virtplane.errors import ConfigError, VirtplaneError
from virtplane_engine.locks import ObjectLocks

if TYPE_CHECKING:
    from virtplane.manager import Manager

log = logging.getLogger("virtplane.engine.frontends")

#: the entry-point group of front ends (name -> ``create_app``)
GROUP = "virtplane.frontends"
#: where a front end's CA and server certificate live, beside the state store (the
#: folder ``virtplane-api ca`` prints the CA from)
PKI_DIR = "api-pki"


class FrontendError(VirtplaneError):
    """A configured front end cannot be loaded or started."""

    exit_code = 2


class Runner(Protocol):
    """What serves one app: started in the background, stopped at the end."""

    @property
    def url(self) -> str: ...

    def start(self, timeout: float = 10.0) -> Any: ...

    def stop(self) -> None: ...


@attrs.frozen
class FrontendSpec:
    """One entry of ``[engine] frontends``: its name and where it listens."""

    name: str
    host: str
    port: int

    @classmethod
    def parse(cls, entry: str, default: str, tls: bool) -> FrontendSpec:
        """``NAME`` (at ``default``) or ``NAME@HOST:PORT``.

        :raises ConfigError: a bad address, or plain HTTP off loopback.
        """
        name, _, address = entry.partition("@")
        name = name.strip()
        if not name:
            raise ConfigError(f"engine.frontends: {entry!r} names no front end; an entry is "
                              "NAME or NAME@HOST:PORT, e.g. \"ovirt\" or "
                              "\"ovirt@0.0.0.0:8443\"")
        host, port = split_address(address or default, f"engine.frontends ({name})")
        if not tls and not ipaddress.ip_address(host).is_loopback:
            raise ConfigError(f"engine.frontends: {name} would serve plain HTTP on {host}; "
                              "set frontend_tls = true (HTTPS with the API's CA) or listen "
                              "on a loopback address")
        return cls(name, host, port)


def split_address(address: str, what: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` as (host, port); the host must be an IP address.

    :raises ConfigError: naming ``what`` and the value.
    """
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        if not sep:
            raise ValueError
        ipaddress.ip_address(host)
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise ConfigError(f"{what}: {address!r} is not an address; it must be IP:PORT, e.g. "
                          "127.0.0.1:8443 or [::]:8443") from None
    return host, number


def parse_all(entries: tuple[str, ...], default: str, tls: bool) -> tuple[FrontendSpec, ...]:
    """Every configured front end; two may not share an address (one would not bind).

    :raises ConfigError: a bad entry, a name listed twice, or a shared address.
    """
    specs = tuple(FrontendSpec.parse(e, default, tls) for e in entries)
    names = [s.name for s in specs]
    for name in set(names):
        if names.count(name) > 1:
            raise ConfigError(f"engine.frontends lists {name!r} twice")
    taken: dict[tuple[str, int], str] = {}
    for spec in specs:
        key = (spec.host, spec.port)
        if spec.port and key in taken:
            raise ConfigError(f"engine.frontends: {taken[key]} and {spec.name} would both "
                              f"listen on {spec.host}:{spec.port}; give one its own address "
                              f"(\"{spec.name}@HOST:PORT\")")
        taken[key] = spec.name
    return specs


def factory(name: str) -> tuple[Callable[..., Any], str]:
    """The ``create_app`` of front end ``name`` and the package it comes from.

    :raises FrontendError: not installed (naming the installed ones), or it fails to load.
    """
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}
    ep = found.get(name)
    if ep is None:
        known = ", ".join(sorted(found)) or "none installed"
        raise FrontendError(f"engine.frontends names {name!r}, which no installed "
                            f"distribution provides ({GROUP} entry points: {known}); install "
                            "it (the oVirt API is virtplane-api-ovirt) or remove it")
    try:
        fn = ep.load()
    except Exception as exc:  # noqa: BLE001 - a broken front end is a clear error
        raise FrontendError(f"front end {name!r} ({ep.value}) failed to load: "
                            f"{type(exc).__name__}: {exc}") from None
    if not callable(fn):
        raise FrontendError(f"front end {name!r} ({ep.value}) is not a callable "
                            "create_app(manager, ...)")
    return fn, ep.module.partition(".")[0]


class _PlainRunner:
    """uvicorn in a thread, plain HTTP: for a front end whose package has no runner."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.host, self.port = host, port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> _PlainRunner:
        self._thread = threading.Thread(target=self._server.run, name="frontend",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        if self.port == 0:
            sock = self._server.servers[0].sockets[0]
            self.port = int(sock.getsockname()[1])
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)


@attrs.define
class Served:
    """A front end the engine runs."""

    name: str
    runner: Runner

    @property
    def url(self) -> str:
        return self.runner.url


def start(specs: tuple[FrontendSpec, ...], m: Manager, state_dir: Path,
          tls: bool, tls_names: tuple[str, ...] = (),
          locks: ObjectLocks | None = None) -> list[Served]:
    """Build and start every front end in ``specs`` over ``m``; all or none run.

    :param state_dir: the folder beside the state store (``api-pki/`` lives there).
    :param locks: the engine's object locks; a front end whose factory takes
        ``object_lock`` gets ``object_lock(kind, name)``, which holds ``kind:name``
        (the key the engine's commands and monitor use), so its actions on a VM and
        the monitor's writes to it do not interleave.
    :raises FrontendError: one cannot be loaded, built or started (those already
        started are stopped again).
    """
    served: list[Served] = []
    try:
        for spec in specs:
            served.append(_start_one(spec, m, state_dir, tls, tls_names, locks))
    except BaseException:
        stop(served)
        raise
    return served


def _start_one(spec: FrontendSpec, m: Manager, state_dir: Path, tls: bool,
               tls_names: tuple[str, ...], locks: ObjectLocks | None = None) -> Served:
    create_app, package = factory(spec.name)
    pki = state_dir / PKI_DIR
    accepted = inspect.signature(create_app).parameters
    options: dict[str, Any] = {}
    if "pki" in accepted:
        options["pki"] = pki
    if locks is not None and "object_lock" in accepted:
        held = locks

        def object_lock(kind: str, name: str) -> AbstractContextManager[None]:
            return held.hold([f"{kind}:{name}"])

        options["object_lock"] = object_lock
    try:
        app = create_app(m, **options)
    except VirtplaneError as exc:
        raise FrontendError(f"front end {spec.name}: {exc}") from None
    server_cls = getattr(importlib.import_module(package), "Server", None)
    runner: Runner
    if server_cls is not None:
        runner = server_cls(app, spec.host, spec.port, pki=pki if tls else None,
                            tls_names=list(tls_names))
    elif tls:
        raise FrontendError(f"front end {spec.name} ({package}) has no Server runner, so the "
                            "engine cannot serve it over HTTPS; set frontend_tls = false and "
                            "a loopback address, or use a front end that ships one")
    else:
        runner = _PlainRunner(app, spec.host, spec.port)
    try:
        runner.start()
    except (RuntimeError, OSError) as exc:
        raise FrontendError(f"front end {spec.name} could not listen on "
                            f"{spec.host}:{spec.port}: {exc}") from None
    log.info("front end %s serving %s", spec.name, runner.url,
             extra={"frontend": spec.name, "url": runner.url})
    return Served(spec.name, runner)


def stop(served: list[Served]) -> None:
    """Stop front ends (newest first); a failing stop is logged, the others still stop."""
    for one in reversed(served):
        try:
            one.runner.stop()
        except Exception:  # noqa: BLE001 - stopping the others matters more
            log.exception("front end %s did not stop cleanly", one.name)
