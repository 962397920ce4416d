"""Fires hooks with VDSM's semantics and names the plugin behind every failure.

Implementations are called one at a time, in pluggy's order (``tryfirst``
first, then the most recently registered plugin first, ``trylast`` last),
rather than through pluggy's ``_multicall``, so that a failure can be
attributed to its plugin and the remaining behaviour follows the policy the
hook's spec declares (:class:`virtplane.hookspecs.Policy`):

* ``FAIL``: the first failure stops the loop and raises
  :class:`~virtplane.errors.HookError`;
* ``LOG``: a failure is reported through ``on_error`` (the VM's event log) and
  the next implementation runs;
* ``COLLECT``: validators, run by :meth:`HookRunner.collect`.

That own loop is also why hook wrappers are refused at load and why pluggy's
``add_hookcall_monitoring`` would see nothing: :meth:`HookRunner.add_monitor`
is the same seam for this loop. Every call is logged at DEBUG on the logger
``virtplane.hooks``; ``VIRTPLANE_TRACE_HOOKS=1`` (or ``[hooks] trace = true``)
turns that logger on and sends it to stderr.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final, final

import pluggy

from virtplane import events, hookspecs
from virtplane.errors import HookError, HookVeto
from virtplane.hookspecs import Policy

__all__ = [
    "TRACE_LOGGER",
    "AfterCall",
    "BeforeCall",
    "ErrorSink",
    "HookRunner",
    "enable_trace",
    "fails_operation",
    "hook_error",
]

#: Name of the logger every hook call is logged on (DEBUG).
TRACE_LOGGER: Final = "virtplane.hooks"
_log = logging.getLogger(TRACE_LOGGER)

#: Where a failure at a ``LOG`` point goes.
ErrorSink = Callable[[HookError], None]
#: ``before(point, plugin, kwargs)``: called before each implementation runs.
BeforeCall = Callable[[str, str, Mapping[str, Any]], None]
#: ``after(point, plugin, error)``: called after it returned (error None) or raised.
AfterCall = Callable[[str, str, BaseException | None], None]


def fails_operation(point: str) -> bool:
    """Whether a failure at ``point`` fails the operation it belongs to.

    Read from the policy the spec declares; ``KeyError`` for a name that is not
    a hook of this core. Plugins that run their own work per point (the hook
    scripts) use it to decide whether their failure is a veto.
    """
    return hookspecs.policy_of(point).fails_operation


def hook_error(point: str, plugin: str, exc: Exception) -> HookError:
    """The error a failing implementation of ``point`` in ``plugin`` becomes: a veto
    keeps its reason, any other exception is named with its type."""
    if isinstance(exc, HookVeto | HookError):
        return HookError(point, plugin, exc.reason)
    return HookError(point, plugin, f"{type(exc).__name__}: {exc}")


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time of the call (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)


def enable_trace() -> Callable[[], None]:
    """Log every hook call to stderr (``VIRTPLANE_TRACE_HOOKS=1``, ``[hooks] trace``).

    Returns the undo (a no-op when tracing was already on). Embedders that
    configure logging themselves can instead set the level of the
    ``virtplane.hooks`` logger to DEBUG.
    """
    if any(isinstance(h, _StderrHandler) for h in _log.handlers):
        return lambda: None
    handler = _StderrHandler()
    previous = _log.level
    _log.addHandler(handler)
    _log.setLevel(logging.DEBUG)

    def undo() -> None:
        _log.removeHandler(handler)
        _log.setLevel(previous)

    return undo


def _daemon_context(manager: Any) -> Any:
    from virtplane.plugins._context import DaemonContext

    return DaemonContext.of(manager)


#: Arguments the runner derives when the caller passes only the older one:
#: new argument -> (argument it is made from, how). Lets a core that still fires
#: ``before_vdsm_start(manager=...)`` serve 2.0 implementations taking ``context``.
_DERIVED: Final[dict[str, tuple[str, Callable[[Any], Any]]]] = {
    "context": ("manager", _daemon_context),
}


@final
class HookRunner:
    """Calls the hooks of a pluggy manager with attribution and the specs' policies.

    :param pm: the plugin manager holding the specs and implementations.
    :param trace: log every call to stderr (see :func:`enable_trace`).
    :param event_log: ``(object id, message, level)``: where
        :func:`virtplane.events.record` goes while an implementation runs.
    """

    def __init__(self, pm: pluggy.PluginManager, trace: bool = False,
                 event_log: Callable[[str, str, str], None] | None = None) -> None:
        self.pm = pm
        self.trace = trace
        self.event_log = event_log
        self._monitors: list[tuple[BeforeCall, AfterCall]] = []
        if trace:
            enable_trace()

    # ------------------------------------------------------------ inspection

    def impls(self, point: str) -> list[pluggy.HookImpl]:
        """The implementations of ``point`` that would run now, in call order.

        A plugin may say it has nothing to do at a point right now (the
        hook-scripts plugin when the point's folders hold no script, through
        ``hook_point_active(point)``); it is left out, which spares the core
        preparing payloads nobody reads.
        """
        caller = getattr(self.pm.hook, point)
        impls = []
        for impl in reversed(caller.get_hookimpls()):
            active = getattr(impl.plugin, "hook_point_active", None)
            if active is not None and not active(point):
                continue
            impls.append(impl)
        return impls

    #: The 1.x name of :meth:`impls`, kept while callers move to the public one.
    _impls = impls

    def implemented(self, point: str) -> list[str]:
        """Names of the plugins implementing ``point``, in call order."""
        return [impl.plugin_name for impl in self.impls(point)]

    @staticmethod
    def policy(point: str) -> Policy:
        """The failure policy ``point``'s spec declares."""
        return hookspecs.policy_of(point)

    def add_monitor(self, before: BeforeCall, after: AfterCall) -> Callable[[], None]:
        """Call ``before``/``after`` around every implementation; returns the undo.

        The seam pluggy offers as ``add_hookcall_monitoring``, for this runner's
        own loop: tracing, timing, test recorders. A monitor that raises fails
        the hook call like the implementation would.
        """
        pair = (before, after)
        self._monitors.append(pair)
        return lambda: self._monitors.remove(pair)

    # --------------------------------------------------------------- calling

    def fire(self, point: str, on_error: ErrorSink | None = None, **kwargs: Any) -> None:
        """Run the implementations of a lifecycle point (``FAIL`` or ``LOG``).

        :raises HookError: when an implementation fails at a ``FAIL`` point.
        :raises ValueError: for a validator (``COLLECT``): use :meth:`collect`.
        """
        policy = hookspecs.policy_of(point)
        if policy is Policy.COLLECT:
            raise ValueError(f"{point} is a validator (Policy.COLLECT); run it with "
                             "HookRunner.collect(), which returns the violations")
        impls = self.impls(point)
        if not impls:
            return  # the usual case: no payload argument to derive, no event sink to set
        self._derive(kwargs)
        with events.sink(self._sink(kwargs)):
            for impl in impls:
                args = self._arguments(impl, point, kwargs)
                try:
                    self._call(impl, point, args, kwargs)
                except Exception as exc:
                    err = self._error(point, impl, exc)
                    if policy is Policy.FAIL:
                        raise err from exc
                    if on_error is not None:
                        on_error(err)

    def collect(self, point: str, **kwargs: Any) -> list[tuple[str, str]]:
        """Run a validator (``COLLECT``); return ``(plugin, message)`` for every violation.

        A validator that crashes is itself reported as a violation naming its
        plugin, so a broken validator never lets a spec through unchecked.

        :raises ValueError: for a point that is not a validator: use :meth:`fire`.
        """
        policy = hookspecs.policy_of(point)
        if policy is not Policy.COLLECT:
            raise ValueError(f"{point} is not a validator (its spec declares "
                             f"Policy.{policy.name}); run it with HookRunner.fire()")
        out: list[tuple[str, str]] = []
        for impl in self.impls(point):
            args = self._arguments(impl, point, kwargs)
            try:
                result = self._call(impl, point, args, kwargs)
            except Exception as exc:  # noqa: BLE001 - reported as a violation
                out.append((impl.plugin_name, f"validator crashed: {type(exc).__name__}: {exc}"))
                continue
            for message in result or []:
                out.append((impl.plugin_name, str(message)))
        return out

    # ------------------------------------------------------------- internals

    @staticmethod
    def _derive(kwargs: dict[str, Any]) -> None:
        for new, (old, make) in _DERIVED.items():
            if new not in kwargs and old in kwargs:
                kwargs[new] = make(kwargs[old])

    @staticmethod
    def _arguments(impl: pluggy.HookImpl, point: str, kwargs: dict[str, Any]) -> list[Any]:
        try:
            return [kwargs[a] for a in impl.argnames]
        except KeyError as exc:
            # the core's mistake, not the plugin's: do not blame (or log-and-skip) it
            raise TypeError(f"hook {point} was fired without argument {exc.args[0]!r}, which "
                            f"plugin {impl.plugin_name!r} takes; got: {', '.join(kwargs)}"
                            ) from None

    def _call(self, impl: pluggy.HookImpl, point: str, args: list[Any],
              kwargs: Mapping[str, Any]) -> Any:
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("virtplane hook %s -> %s", point, impl.plugin_name)
        if not self._monitors:
            return impl.function(*args)
        for before, _after in self._monitors:
            before(point, impl.plugin_name, kwargs)
        try:
            result = impl.function(*args)
        except BaseException as exc:
            for _before, after in self._monitors:
                after(point, impl.plugin_name, exc)
            raise
        for _before, after in self._monitors:
            after(point, impl.plugin_name, None)
        return result

    def _sink(self, kwargs: Mapping[str, Any]) -> events.Sink | None:
        if self.event_log is None:
            return None
        for key in ("vm", "host", "domain"):
            obj_id = getattr(kwargs.get(key), "id", None)
            if isinstance(obj_id, str):
                log = self.event_log
                return lambda message, level: log(obj_id, message, level)
        return None

    @staticmethod
    def _error(point: str, impl: pluggy.HookImpl, exc: Exception) -> HookError:
        return hook_error(point, impl.plugin_name, exc)
