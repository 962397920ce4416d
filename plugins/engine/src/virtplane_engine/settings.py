"""The engine's configuration: the ``[engine]`` table, checked once at start.

The core validates each key's type (``virtplane config show`` lists them with
their sources); this module adds the rules types cannot say (intervals are
positive, the API listens on loopback only) and gives the loops one frozen
object to read, so a test can build one with short intervals directly.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import TYPE_CHECKING, Any

import attrs

from virtplane.errors import ConfigError

if TYPE_CHECKING:
    from virtplane.config import Config
    from virtplane_engine.frontends import FrontendSpec


def default_id() -> str:
    """An engine's name in lease rows and jobs when ``engine_id`` is not set: its
    host name and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


@attrs.frozen
class EngineSettings:
    """Intervals and limits; defaults are oVirt's (``VdsRefreshRate`` 3 s, VM stats
    every 5 host refreshes = 15 s, grace: ``VDSAttemptsToResetCount`` 2 or
    ``TimeoutToResetVdsInSeconds`` 60 + ``DelayResetPerVmInSeconds`` 0.5 per VM)."""

    host_interval: float = 3.0
    vm_interval: float = 15.0
    storage_interval: float = 10.0
    grace_polls: int = 2
    grace_seconds: float = 60.0
    grace_per_vm: float = 0.5
    workers: int = 8
    job_timeout: float = 3600.0
    stop_timeout: float = 30.0
    listen: str = "127.0.0.1:0"
    #: front ends to serve (``virtplane.frontends`` names, ``NAME`` or ``NAME@HOST:PORT``)
    frontends: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    frontend_listen: str = "127.0.0.1:8443"
    frontend_tls: bool = True
    frontend_tls_names: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    #: seconds a host or leader lease lasts; renewed every third of it (several engines)
    lease_ttl: float = 10.0
    #: this engine's name in lease rows (default: host name and pid)
    engine_id: str = ""

    def __attrs_post_init__(self) -> None:
        for name in ("host_interval", "vm_interval", "storage_interval", "job_timeout",
                     "lease_ttl"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"engine.{name} = {getattr(self, name)!r} is not allowed; "
                                  "it must be a number of seconds above 0")
        for name in ("grace_polls", "grace_seconds", "grace_per_vm", "stop_timeout"):
            if getattr(self, name) < 0:
                raise ConfigError(f"engine.{name} = {getattr(self, name)!r} is not allowed; "
                                  "it must be 0 or more")
        if self.workers < 1:
            raise ConfigError(f"engine.workers = {self.workers} is not allowed; it must be 1 "
                              "or more")
        self.address()  # checked now, not when the server starts
        self.frontend_specs()

    def frontend_specs(self) -> tuple[FrontendSpec, ...]:
        """``frontends`` parsed (each with its address); see :mod:`virtplane_engine.frontends`."""
        from virtplane_engine.frontends import parse_all

        return parse_all(self.frontends, self.frontend_listen, self.frontend_tls)

    def address(self) -> tuple[str, int]:
        """``listen`` as (host, port); only loopback addresses are allowed (the API's
        token is the only credential, so it must never face a network)."""
        host, sep, port = self.listen.rpartition(":")
        host = host.strip("[]")
        try:
            if not sep or not ipaddress.ip_address(host).is_loopback:
                raise ValueError
            number = int(port)
            if not 0 <= number <= 65535:
                raise ValueError
        except ValueError:
            raise ConfigError(f"engine.listen = {self.listen!r} is not allowed; it must be a "
                              "loopback address and port, e.g. 127.0.0.1:0 (0: any free "
                              "port) or [::1]:8700") from None
        return host, number

    @classmethod
    def from_config(cls, cfg: Config, **overrides: Any) -> EngineSettings:
        """The ``[engine]`` table of ``cfg`` (defaults where unset), then ``overrides``."""
        table = dict(cfg.values.get("engine") or {})
        fields = {f.name for f in attrs.fields(cls)}
        values = {k: v for k, v in table.items() if k in fields and v is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def grace(self, vm_count: int) -> float:
        """Seconds after the last good poll during which a host is still Connecting."""
        return self.grace_seconds + self.grace_per_vm * vm_count
