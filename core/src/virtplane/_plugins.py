"""Plugin loading: stevedore for named drivers, pluggy for hooks, with isolation.

A plugin is an entry point in one of the groups of :data:`KIND_GROUPS`; one
name may appear in several groups (a driver and its hooks), and then it is one
plugin with several kinds. Loading one plugin never breaks another: a plugin
that fails to import, asks for a plugin-API range this core does not offer,
implements a hook the specs do not have (or with an argument they do not
have), or has an invalid ``[plugin.<name>]`` config table is recorded as
*failed* with the reason, and everything else keeps working.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from typing import Any

import pluggy

from virtplane import _discovery, hookspecs
from virtplane._version import PLUGIN_API_VERSION
from virtplane.config import Config

log = logging.getLogger("virtplane.plugins")

#: Plugin kinds and their entry-point groups.
KIND_GROUPS: dict[str, str] = {
    "architecture": "virtplane.architectures",
    "storage": "virtplane.storage",
    "hypervisor": "virtplane.hypervisors",
    "hooks": "virtplane.hooks",
}
GROUP_KINDS = {v: k for k, v in KIND_GROUPS.items()}

#: Attribute a plugin object (driver class or hook module) must carry.
API_ATTR = "VIRTPLANE_PLUGIN_API"
#: Optional attribute: an attrs class validating ``[plugin.<name>]``.
SETTINGS_ATTR = "VIRTPLANE_SETTINGS"

LOADED = "loaded"
FAILED = "failed"
DISABLED = "disabled"


@dataclass
class PluginRecord:
    """What is known about one plugin (one entry-point name)."""

    name: str
    dist: str
    version: str
    entries: dict[str, str] = field(default_factory=dict)
    status: str = LOADED
    reason: str = ""
    api: str | None = None
    hooks: list[str] = field(default_factory=list)
    objects: dict[str, Any] = field(default_factory=dict)
    settings: Any = None
    settings_ref: Any = None
    builtin: bool = False
    #: deprecated hook arguments the plugin's implementations take (still working)
    deprecated: list[str] = field(default_factory=list)

    def load_settings(self, cfg: Config) -> Any:
        """The plugin's validated settings (defaults when it has no config table).

        ``VIRTPLANE_SETTINGS`` may be the attrs class or a ``"module:Class"``
        reference, imported only when settings are needed, so that listing
        plugins does not pay for it.
        """
        from virtplane.config import plugin_settings
        from virtplane.errors import PluginError

        if self.settings is not None or self.settings_ref is None:
            return self.settings
        ref = self.settings_ref
        if isinstance(ref, str):
            import importlib

            module, _, attr = ref.partition(":")
            try:
                ref = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise PluginError(
                    f"plugin {self.name!r}: {SETTINGS_ATTR} = {self.settings_ref!r} "
                    f"cannot be loaded: {exc}"
                ) from None
        self.settings = plugin_settings(cfg, self.name, ref)
        return self.settings

    @property
    def kinds(self) -> list[str]:
        return sorted(self.entries)

    def fail(self, reason: str) -> None:
        if self.status != FAILED:
            self.status = FAILED
            self.reason = reason
        else:
            self.reason += "; " + reason

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.dist,
            "version": self.version,
            "kinds": self.kinds,
            "entry_points": dict(sorted(self.entries.items())),
            "plugin_api": self.api,
            "hooks": sorted(self.hooks),
            "status": self.status,
            "reason": self.reason,
            "builtin": self.builtin,
            "deprecated": list(self.deprecated),
        }


_VERDICTS: dict[str, tuple[bool, str]] | None = None


def _verdict_file() -> str:
    import os

    return os.path.join(os.path.dirname(_discovery.cache_dir()),
                        f"api-verdicts-{PLUGIN_API_VERSION}.json")


def api_compatible(spec: str) -> tuple[bool, str]:
    """Whether this core's PLUGIN_API_VERSION satisfies a plugin's declared range.

    Verdicts are remembered per core plugin-API version in the cache folder, so
    ``packaging`` is imported only for a range not seen before.
    """
    import json

    global _VERDICTS
    if _VERDICTS is None:
        try:
            with open(_verdict_file(), encoding="utf-8") as f:
                _VERDICTS = {k: (bool(v[0]), str(v[1])) for k, v in json.load(f).items()}
        except (OSError, ValueError, TypeError, IndexError, AttributeError):
            _VERDICTS = {}
    if spec in _VERDICTS:
        return _VERDICTS[spec]
    verdict = _api_compatible(spec)
    _VERDICTS[spec] = verdict
    try:
        import os
        import tempfile

        folder = os.path.dirname(_verdict_file())
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_VERDICTS, f)
        os.replace(tmp, _verdict_file())
    except OSError as exc:
        # an unwritable cache only costs speed next time
        log.debug("cannot remember plugin-API verdicts in %s: %s", _verdict_file(), exc)
    return verdict


def _api_compatible(spec: str) -> tuple[bool, str]:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        specifier = SpecifierSet(spec)
    except InvalidSpecifier:
        return False, (
            f"declares {API_ATTR} = {spec!r}, which is not a version range "
            "(write e.g. '>=1.0,<2')"
        )
    if specifier.contains(PLUGIN_API_VERSION, prereleases=True):
        return True, ""
    return False, (
        f"needs plugin API {spec}, but this virtplane core offers "
        f"{PLUGIN_API_VERSION}"
    )


def new_plugin_manager() -> pluggy.PluginManager:
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

    # ---------------------------------------------------------------- loading

    def load(self) -> None:
        from virtplane import _builtin

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
            # feed it virtplane's own index instead (see virtplane._discovery).
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
            ok, why = api_compatible(str(spec))
            if not ok:
                rec.fail(why)
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
            from virtplane import _compat

            rec.deprecated = _compat.deprecated_uses(self.pm, module)
            for use in rec.deprecated:
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
        return [r for r in self.records.values() if r.status == FAILED]


def _core_version() -> str:
    from virtplane._version import __version__

    return __version__
