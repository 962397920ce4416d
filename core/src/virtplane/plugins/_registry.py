"""Plugin loading: stevedore for named drivers, pluggy for hooks, with isolation.

A plugin is an entry point in one of the groups of :data:`KIND_GROUPS`; one
name may appear in several groups (a driver and its hooks), and then it is one
plugin with several kinds. Loading one plugin never breaks another: a plugin
that fails to import, asks for a plugin-API range this core does not offer,
implements a hook the specs do not have (or with an argument they do not
have), or has an invalid ``[plugin.<name>]`` config table is recorded as
*failed* with the reason, and everything else keeps working.

Once every plugin is loaded and checked, each gets its configuration through
``configure_plugin`` (plugin API 2.1), before any other hook of it can run; one
whose implementation raises is failed the same way. A plugin added to the
loaded registry (:meth:`PluginRegistry.register`) is configured as it is added.
"""

from __future__ import annotations

import logging
import traceback
import warnings
from typing import TYPE_CHECKING, Any, Final

import pluggy

from virtplane import hookspecs
from virtplane._version import PLUGIN_API_VERSION
from virtplane.config import Config
from virtplane.plugins import _compat, _discovery
from virtplane.plugins._kinds import API_ATTR, GROUP_KINDS, KIND_GROUPS, SETTINGS_ATTR
from virtplane.plugins._record import DISABLED, FAILED, LOADED, PluginRecord

if TYPE_CHECKING:
    from virtplane.errors import HookError
    from virtplane.plugins._context import DaemonContext

__all__ = [
    "API_ATTR",
    "DISABLED",
    "FAILED",
    "GROUP_KINDS",
    "KIND_GROUPS",
    "LOADED",
    "SETTINGS_ATTR",
    "PluginRecord",
    "PluginRegistry",
    "api_compatible",
    "new_plugin_manager",
]

log = logging.getLogger("virtplane.plugins")

#: ``(fits, why not)`` for a declared plugin-API range (the 1.x name; see ``_compat``).
api_compatible = _compat.api_compatible


#: The hook each plugin gets once, with its configuration, when it is activated.
CONFIGURE: Final = "configure_plugin"


def _configure(pm: pluggy.PluginManager, plugin: object, name: str,
               context: DaemonContext) -> HookError | None:
    """Run ``plugin``'s ``configure_plugin``; the error naming it when that raised."""
    from virtplane.plugins.hooks import TRACE_LOGGER, hook_error

    caller = getattr(pm.hook, CONFIGURE, None)
    for impl in caller.get_hookimpls() if caller is not None else []:
        if impl.plugin is not plugin:
            continue
        logging.getLogger(TRACE_LOGGER).debug("virtplane hook %s -> %s", CONFIGURE, name)
        kwargs = {"context": context}  # the spec's arguments (pluggy refused any other)
        try:
            impl.function(*[kwargs[arg] for arg in impl.argnames])
        except Exception as exc:  # noqa: BLE001 - attributed to the plugin, see callers
            return hook_error(CONFIGURE, name, exc)
    return None


def new_plugin_manager() -> pluggy.PluginManager:
    """A pluggy manager with every spec, deprecated arguments set to warn."""
    pm = pluggy.PluginManager("virtplane")
    pm.add_hookspecs(hookspecs)
    for hook, args in hookspecs.DEPRECATED_ARGUMENTS.items():
        spec = getattr(pm.hook, hook).spec
        spec.warn_on_impl_args = {
            arg: hookspecs.VirtplaneDeprecationWarning(
                f"hook {hook}: argument {arg!r} is deprecated: {why}")
            for arg, why in args.items()}
    return pm


class PluginRegistry:
    """Discovers, loads and isolates plugins according to a :class:`Config`."""

    def __init__(self, cfg: Config, pm: pluggy.PluginManager | None = None) -> None:
        self.cfg = cfg
        self.pm = pm if pm is not None else new_plugin_manager()
        self.records: dict[str, PluginRecord] = {}
        self._infos: list[_discovery.EntryInfo] = []
        #: what ``configure_plugin`` got at load (None before)
        self._context: DaemonContext | None = None

    # ---------------------------------------------------------------- loading

    def load(self) -> None:
        """Discover, load and check every plugin; records are read-only afterwards."""
        from virtplane.plugins import _builtin

        self._register_builtin("core", _builtin)
        self._infos = _discovery.entry_points()
        for info in self._infos:
            self._add_entry(info)
        wanted: dict[str, list[str]] = {g: [] for g in KIND_GROUPS.values()}
        for rec in self.records.values():
            if rec.builtin or rec.status == FAILED:
                continue
            ok, why = self.cfg.wants(rec.name, rec.dist)
            if not ok:
                rec.status = DISABLED
                rec.reason = why
                continue
            for kind in rec.entries:
                wanted[KIND_GROUPS[kind]].append(rec.name)
        for group, names in wanted.items():
            if names:
                self._load_group(group, names)
        for rec in self.records.values():
            if rec.status == LOADED and not rec.builtin:
                self._check_loaded(rec)
        for rec in self.records.values():
            rec._seal()
        self._configure_loaded()

    def _configure_loaded(self) -> None:
        """Hand every loaded plugin its configuration (``configure_plugin``), in the order
        its implementations run; a plugin whose implementation raises is failed, with the
        error naming it as its reason (the error is logged too)."""
        from virtplane.plugins._context import DaemonContext

        caller = getattr(self.pm.hook, CONFIGURE, None)
        impls = list(reversed(caller.get_hookimpls())) if caller is not None else []
        context = DaemonContext.of_parts(self.cfg, self.records)
        for impl in impls:
            error = _configure(self.pm, impl.plugin, impl.plugin_name, context)
            if error is None:
                continue
            # one line on stderr when nobody set logging up, as the Manager's warnings
            log.warning("virtplane: warning: plugin %r is not used: %s", impl.plugin_name, error)
            self.pm.unregister(impl.plugin)
            rec = self.records.get(impl.plugin_name)
            if rec is not None:
                rec._fail_sealed(str(error))
        self._context = context

    def register(self, plugin: object, name: str | None = None) -> str:
        """Add a hook plugin (an embedder's own object or module) to the loaded registry:
        register it with pluggy and configure it (``configure_plugin``) as :meth:`load`
        configured the others, so it gets the configuration before any of its hooks run.

        A plugin registered with ``pm.register`` directly bypasses the registry: it is
        not configured (nor checked, nor recorded).

        :returns: the name it is registered under.
        :raises HookError: its ``configure_plugin`` raised (naming it); it is
            unregistered again.
        :raises ValueError: pluggy refused it (the name or the object is registered
            already, or the name is blocked).
        """
        from virtplane.plugins._context import DaemonContext

        registered = self.pm.register(plugin, name)
        if registered is None:
            raise ValueError(f"plugin {name!r} is blocked on this plugin manager")
        context = self._context or DaemonContext.of_parts(self.cfg, self.records)
        error = _configure(self.pm, plugin, registered, context)
        if error is not None:
            self.pm.unregister(plugin)
            raise error
        return registered

    def _register_builtin(self, name: str, module: Any) -> None:
        rec = PluginRecord(
            name=name, dist="virtplane", version=_core_version(), builtin=True,
            api=getattr(module, API_ATTR, None),
        )
        rec.entries["hooks"] = module.__name__
        rec.objects["hooks"] = module
        self.pm.register(module, name=name)
        rec.hooks = self._hook_names(module)
        self.records[name] = rec

    def _add_entry(self, info: _discovery.EntryInfo) -> None:
        kind = GROUP_KINDS[info.group]
        rec = self.records.get(info.name)
        if rec is None:
            rec = PluginRecord(name=info.name, dist=info.dist, version=info.version)
            self.records[info.name] = rec
        elif rec.builtin:
            log.warning("plugin name %r is reserved by the core; %s ignored", info.name, info.dist)
            return
        if kind in rec.entries and rec.entries[kind] != info.value:
            rec.fail(
                f"two {kind} entry points named {info.name!r}: {rec.entries[kind]} "
                f"({rec.dist}) and {info.value} ({info.dist}); uninstall one"
            )
            return
        if rec.dist != info.dist:
            rec.fail(
                f"the name {info.name!r} is used by two distributions: {rec.dist} "
                f"and {info.dist}; uninstall one"
            )
        rec.entries[kind] = info.value

    def _load_group(self, group: str, names: list[str]) -> None:
        from stevedore import NamedExtensionManager

        kind = GROUP_KINDS[group]
        errors: dict[str, str] = {}

        def on_failure(_mgr: Any, ep: Any, exc: BaseException) -> None:
            frames = traceback.extract_tb(exc.__traceback__)
            where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
            errors[ep.name] = f"{type(exc).__name__}: {exc}{where}"
            log.debug("loading %s %s failed", group, ep.name, exc_info=exc)

        import importlib.metadata

        entries = [importlib.metadata.EntryPoint(i.name, i.value, i.group)
                   for i in self._infos if i.group == group]

        class _Manager(NamedExtensionManager):  # type: ignore[type-arg]
            # stevedore keeps a process-wide, never-invalidated list per namespace;
            # feed it virtplane's own index instead (see virtplane.plugins._discovery).
            def list_entry_points(self) -> list[importlib.metadata.EntryPoint]:
                return entries

        mgr = _Manager(
            group,
            names=names,
            on_load_failure_callback=on_failure,
            on_missing_entrypoints_callback=lambda missing: None,
            invoke_on_load=False,
        )
        loaded = {ext.name: ext.plugin for ext in mgr.extensions}
        for name in names:
            rec = self.records[name]
            if name in errors:
                rec.fail(f"{kind} entry point {rec.entries[kind]} failed to import: {errors[name]}")
            elif name not in loaded:
                rec.fail(f"{kind} entry point {rec.entries[kind]} was not found by stevedore")
            else:
                rec.objects[kind] = loaded[name]

    def _check_loaded(self, rec: PluginRecord) -> None:
        for kind, obj in rec.objects.items():
            spec = getattr(obj, API_ATTR, None)
            if spec is None:
                rec.fail(
                    f"{kind} entry point {rec.entries[kind]} declares no {API_ATTR} "
                    "(the plugin-API range it supports, e.g. '>=1.0,<2')"
                )
                continue
            rec.api = str(spec)
            fit = _compat.api_fit(str(spec))
            if not fit.ok:
                rec.fail(fit.reason)
            elif fit.adapter is not None and rec.adapter is None:
                rec.adapter = fit.adapter
                rec.deprecated.append(fit.reason)
                warnings.warn(f"plugin {rec.name} ({rec.dist} {rec.version}): {fit.reason}",
                              hookspecs.VirtplaneDeprecationWarning, stacklevel=2)
                log.warning("plugin %s: %s", rec.name, fit.reason)
        if rec.status == FAILED:
            rec.objects.clear()
            return
        settings_ref = None
        for obj in rec.objects.values():
            settings_ref = settings_ref or getattr(obj, SETTINGS_ATTR, None)
        rec.settings_ref = settings_ref
        if settings_ref is not None and self.cfg.plugin_tables.get(rec.name):
            # validate now so a bad table marks the plugin failed before anything uses it
            from virtplane.errors import ConfigError, PluginError

            try:
                rec.settings = rec.load_settings(self.cfg)
            except (ConfigError, PluginError) as exc:
                rec.fail(str(exc))
                rec.objects.clear()
                return
        elif self.cfg.plugin_tables.get(rec.name):
            rec.fail(
                f"{self.cfg.plugin_sources[rec.name]}: [plugin.{rec.name}] is set, "
                "but this plugin takes no settings"
            )
            rec.objects.clear()
            return
        module = rec.objects.get("hooks")
        if module is not None:
            if isinstance(module, type):
                # A hook plugin given as a class gets one instance per Manager, built
                # with its validated settings (like a driver).
                from virtplane.errors import ConfigError, PluginError

                try:
                    # settings only when the administrator wrote a table (already
                    # validated above); None tells the plugin to use its defaults,
                    # so listing plugins does not import its settings class
                    module = module(rec.settings)
                except (ConfigError, PluginError) as exc:
                    rec.fail(str(exc))
                    rec.objects.clear()
                    return
                except Exception as exc:  # noqa: BLE001 - a broken plugin is isolated
                    rec.fail(f"hook plugin {rec.entries['hooks']} failed to start: "
                             f"{type(exc).__name__}: {exc}")
                    rec.objects.clear()
                    return
                rec.objects["hooks_instance"] = module
            self._register_hooks(rec, module)

    def _register_hooks(self, rec: PluginRecord, module: Any) -> None:
        try:
            self.pm.register(module, name=rec.name)
        except pluggy.PluginValidationError as exc:
            rec.fail(f"hook validation failed: {exc}")
            rec.objects.clear()
            return
        except ValueError as exc:
            rec.fail(f"could not register hooks: {exc}")
            rec.objects.clear()
            return
        problems = []
        for caller in self.pm.get_hookcallers(module) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is not module:
                    continue
                if caller.spec is None and not impl.optionalhook:
                    problems.append(
                        f"implements unknown hook {caller.name!r} (not in plugin API "
                        f"{PLUGIN_API_VERSION}; mark it optionalhook=True if it is "
                        "meant for newer cores)"
                    )
                if impl.hookwrapper or impl.wrapper:
                    problems.append(
                        f"implements {caller.name!r} as a wrapper; virtplane hooks "
                        "take plain implementations (use tryfirst/trylast for order)"
                    )
        if problems:
            self.pm.unregister(module)
            rec.fail("; ".join(problems))
            rec.objects.clear()
            return
        rec.hooks = self._hook_names(module)
        if hookspecs.DEPRECATED_ARGUMENTS:
            uses = _compat.deprecated_uses(self.pm, module)
            rec.deprecated.extend(uses)
            for use in uses:
                log.warning("plugin %s uses a deprecated hook argument: %s", rec.name, use)

    def _hook_names(self, module: Any) -> list[str]:
        return sorted(c.name for c in self.pm.get_hookcallers(module) or [])

    # ----------------------------------------------------------------- access

    def driver(self, kind: str, name: str) -> Any:
        """The loaded driver class ``name`` of ``kind``; PluginError says why not."""
        from virtplane.errors import PluginError

        rec = self.records.get(name)
        if rec is None or kind not in rec.entries:
            available = sorted(
                r.name for r in self.records.values()
                if kind in r.entries and r.status == LOADED
            )
            raise PluginError(
                f"no {kind} driver named {name!r} is installed; loaded {kind} drivers: "
                + (", ".join(available) or "none")
            )
        if rec.status != LOADED:
            raise PluginError(f"{kind} driver {name!r} is {rec.status}: {rec.reason}")
        return rec.objects[kind]

    def failed(self) -> list[PluginRecord]:
        """The records of the plugins that could not be used."""
        return [r for r in self.records.values() if r.status == FAILED]


def _core_version() -> str:
    from virtplane._version import __version__

    return __version__
