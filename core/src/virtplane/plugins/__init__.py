"""Plugins as the core sees them: records, the registry that loads them, the hook runner.

What the core hands out about plugins is public and typed here; how plugins
are found and checked stays in the private modules beside it:

* :class:`PluginRecord` — one plugin (one entry-point name), loaded or not,
  with its status (:data:`LOADED`, :data:`FAILED`, :data:`DISABLED`) and why;
  read-only once loading is over.
* :class:`PluginRegistry` — discovers, loads and isolates plugins, and hands
  each its configuration (``configure_plugin``) as it activates it
  (``Manager.plugins``).
* :class:`HookRunner` — fires hooks with the policy each spec declares
  (``Manager.hooks``); :func:`fails_operation` answers the same question for
  plugins that run their own work per hook point.
* :class:`DaemonContext` — what ``configure_plugin``, ``before_vdsm_start`` and
  ``after_vdsm_stop`` get.
* :data:`KIND_GROUPS` — plugin kind -> entry-point group.
"""

from __future__ import annotations

from virtplane.hookspecs import Policy
from virtplane.plugins._context import DaemonContext
from virtplane.plugins._kinds import API_ATTR, KIND_GROUPS, SETTINGS_ATTR
from virtplane.plugins._record import DISABLED, FAILED, LOADED, PluginRecord, PluginStatus
from virtplane.plugins._registry import PluginRegistry, new_plugin_manager
from virtplane.plugins.hooks import HookRunner, fails_operation

__all__ = [
    "API_ATTR",
    "DISABLED",
    "FAILED",
    "KIND_GROUPS",
    "LOADED",
    "SETTINGS_ATTR",
    "DaemonContext",
    "HookRunner",
    "PluginRecord",
    "PluginRegistry",
    "PluginStatus",
    "Policy",
    "fails_operation",
    "new_plugin_manager",
]
