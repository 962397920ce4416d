"""virtplane: pluggable virtualization management.

The public API for embedders and plugin authors:

* :class:`Manager` — open config, load plugins, manage hosts, storage and VMs;
* :data:`hookimpl` — mark a hook implementation (specs in :mod:`virtplane.hookspecs`);
* :data:`PLUGIN_API_VERSION` — the plugin API this core offers;
* the errors in :mod:`virtplane.errors`, models in :mod:`virtplane.model`,
  payloads in :mod:`virtplane.payloads`, driver contracts in :mod:`virtplane.drivers`;
* what the core hands out about plugins (``PluginRecord``, ``HookRunner``,
  ``DaemonContext``) in :mod:`virtplane.plugins`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from virtplane._version import PLUGIN_API_VERSION, __version__
from virtplane.errors import (
    AlreadyExists,
    ConfigError,
    HookError,
    HookVeto,
    HypervisorError,
    InvalidInput,
    InvalidState,
    NoSpace,
    NotFound,
    PluginError,
    StorageUnavailable,
    VirtplaneError,
)

if TYPE_CHECKING:
    from virtplane.manager import Manager

#: Marker for hook implementations: ``@hookimpl`` or ``@hookimpl(tryfirst=True)``.
hookimpl = pluggy.HookimplMarker("virtplane")


def __getattr__(name: str) -> Any:
    # Manager pulls in plugin loading (stevedore, importlib.metadata); import it on
    # first use so that plugins importing ``virtplane`` for ``hookimpl`` stay cheap.
    if name == "Manager":
        from virtplane.manager import Manager

        return Manager
    raise AttributeError(f"module 'virtplane' has no attribute {name!r}")


__all__ = [
    "PLUGIN_API_VERSION",
    "AlreadyExists",
    "ConfigError",
    "HookError",
    "HookVeto",
    "HypervisorError",
    "InvalidInput",
    "InvalidState",
    "Manager",
    "NoSpace",
    "NotFound",
    "PluginError",
    "StorageUnavailable",
    "VirtplaneError",
    "__version__",
    "hookimpl",
]
