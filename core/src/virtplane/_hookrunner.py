"""Fires hooks with VDSM's semantics and names the plugin behind every failure.

Implementations are called one at a time, in pluggy's order (``tryfirst``
first, then the most recently registered plugin first, ``trylast`` last), so
that a failure can be attributed to its plugin and the remaining behaviour
follows the hook point's rule:

* points that fail their operation (most ``before_*``, ``after_disk_prepare``,
  ``adjust_domain_xml``): the first failure stops the loop and raises
  :class:`~virtplane.errors.HookError`;
* all other points: a failure is reported through ``on_error`` (the VM's event
  log) and the next implementation runs.

``VIRTPLANE_TRACE_HOOKS=1`` (or ``[hooks] trace = true``) prints each call.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pluggy

from virtplane import events
from virtplane.errors import HookError, HookVeto

#: ``before_*`` points whose failure is only logged (VDSM's raiseError=False).
LOG_ONLY_BEFORE = frozenset({"before_vm_destroy", "before_vm_set_ticket", "before_vdsm_start"})
#: Other points whose failure fails the operation.
FAILING_OTHERS = frozenset({"after_disk_prepare", "adjust_domain_xml"})


def fails_operation(point: str) -> bool:
    """Whether a failure at ``point`` fails the operation it belongs to."""
    if point.startswith("before_"):
        return point not in LOG_ONLY_BEFORE
    return point in FAILING_OTHERS


ErrorSink = Callable[[HookError], None]


class HookRunner:
    """Calls hooks of a pluggy manager with attribution and VDSM semantics."""

    def __init__(self, pm: pluggy.PluginManager, trace: bool = False,
                 event_log: Callable[[str, str, str], None] | None = None) -> None:
        self.pm = pm
        self.trace = trace
        #: (object id, message, level) -> None: where events.record() goes during a call
        self.event_log = event_log

    def _sink(self, kwargs: dict[str, Any]) -> events.Sink | None:
        if self.event_log is None:
            return None
        for key in ("vm", "host", "domain"):
            obj_id = getattr(kwargs.get(key), "id", None)
            if isinstance(obj_id, str):
                log = self.event_log
                return lambda message, level: log(obj_id, message, level)
        return None

    def _impls(self, point: str) -> list[Any]:
        caller = getattr(self.pm.hook, point)
        impls = []
        for impl in reversed(caller.get_hookimpls()):
            # A plugin may say it has nothing to do at a point right now (the
            # hook-scripts plugin when the point's folders hold no script), which
            # spares the core preparing payloads nobody reads.
            active = getattr(impl.plugin, "hook_point_active", None)
            if active is not None and not active(point):
                continue
            impls.append(impl)
        return impls

    def _call(self, impl: Any, point: str, kwargs: dict[str, Any]) -> Any:
        args = [kwargs[a] for a in impl.argnames]
        if self.trace:
            print(f"virtplane hook {point} -> {impl.plugin_name}", file=sys.stderr)
        return impl.function(*args)

    def _error(self, point: str, impl: Any, exc: Exception) -> HookError:
        if isinstance(exc, HookVeto):
            return HookError(point, impl.plugin_name, exc.reason)
        if isinstance(exc, HookError):
            return HookError(point, impl.plugin_name, exc.reason)
        return HookError(point, impl.plugin_name, f"{type(exc).__name__}: {exc}")

    def fire(self, point: str, on_error: ErrorSink | None = None, **kwargs: Any) -> None:
        """Run the implementations of a lifecycle point.

        :raises HookError: when an implementation fails at a point that fails
            its operation.
        """
        failing = fails_operation(point)
        with events.sink(self._sink(kwargs)):
            for impl in self._impls(point):
                try:
                    self._call(impl, point, kwargs)
                except Exception as exc:
                    err = self._error(point, impl, exc)
                    if failing:
                        raise err from exc
                    if on_error is not None:
                        on_error(err)

    def collect(self, point: str, **kwargs: Any) -> list[tuple[str, str]]:
        """Run a validation point; return ``(plugin, message)`` for every violation.

        A validator that crashes is itself reported as a violation naming its
        plugin, so a broken validator never lets a spec through unchecked.
        """
        out: list[tuple[str, str]] = []
        for impl in self._impls(point):
            try:
                result = self._call(impl, point, kwargs)
            except Exception as exc:  # noqa: BLE001 - reported as a violation
                out.append((impl.plugin_name, f"validator crashed: {type(exc).__name__}: {exc}"))
                continue
            for message in result or []:
                out.append((impl.plugin_name, str(message)))
        return out

    def implemented(self, point: str) -> list[str]:
        """Names of the plugins implementing ``point``, in call order."""
        return [impl.plugin_name for impl in self._impls(point)]
