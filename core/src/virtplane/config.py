"""Administrator configuration: TOML files found through the XDG base directories.

Files, in the order they are read (a later file wins, key by key):

1. ``$XDG_CONFIG_DIRS/virtplane/virtplane.toml`` (system; the last folder
   of ``XDG_CONFIG_DIRS`` is read first, so the first folder wins),
2. ``$XDG_CONFIG_HOME/virtplane/virtplane.toml`` (user).

``VIRTPLANE_CONFIG=/path/file.toml`` replaces that search with one file.
Environment overrides applied last: ``VIRTPLANE_LOAD_PLUGINS`` (comma list of
plugin or distribution names to load; empty loads none),
``VIRTPLANE_DISABLE_PLUGINS`` (comma list never loaded), ``VIRTPLANE_STATE``
(state file path).

Core keys are validated here; each ``[plugin.<name>]`` table is validated by
that plugin's own attrs settings class (see :func:`plugin_settings`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

from virtplane.errors import ConfigError
from virtplane.paths import data_dir as data_dir  # re-exported: its old home

T = TypeVar("T")

#: Core settings: section -> key -> (python type, description, default).
CORE_KEYS: dict[str, dict[str, tuple[type, str, Any]]] = {
    "plugins": {
        "enabled": (list, "names of plugins to load (all installed when unset)", None),
        "disabled": (list, "names of plugins never loaded", []),
    },
    "state": {
        "path": (str, "SQLite state file", None),
        "url": (str, "the state store as a path or URL (sqlite:///path, postgresql://...); "
                "wins over path", None),
    },
    "hooks": {
        "trace": (bool, "print every hook call to stderr", False),
    },
    # read by the engine (virtplane-engine, docs/engine.md); oVirt's defaults
    "engine": {
        "host_interval": (float, "seconds between host polls", 3.0),
        "vm_interval": (float, "seconds between bulk VM stats polls", 15.0),
        "storage_interval": (float, "seconds between storage domain probes", 10.0),
        "grace_polls": (int, "missed host polls always within the grace period", 2),
        "grace_seconds": (float, "grace period after the last good poll", 60.0),
        "grace_per_vm": (float, "grace seconds added per VM on the host", 0.5),
        "workers": (int, "threads for blocking driver calls and commands", 8),
        "job_timeout": (float, "seconds after which a running job is failed", 3600.0),
        "stop_timeout": (float, "seconds running jobs get to finish on SIGTERM", 30.0),
        # scheduling, HA, fencing, maintenance (docs/ha.md, docs/scheduling.md)
        "balance_interval": (float, "seconds between balancing cycles", 60.0),
        "fence_startup_grace": (float, "no fencing this long after the engine starts", 300.0),
        "fence_confirm_interval": (float, "a second failed check this long after the first "
                                   "confirms a host is down", 10.0),
        "soft_fence_timeout": (float, "seconds a soft-fenced host gets to answer", 60.0),
        "fence_connectivity_threshold": (int, "no fencing when this % of a cluster's hosts "
                                         "are unreachable", 50),
        "ha_retry_interval": (float, "seconds between HA restart attempts", 30.0),
        "ha_retries_short": (int, "HA restart attempts at the short interval", 10),
        "ha_retry_long_interval": (float, "seconds between later HA restart attempts",
                                   1800.0),
        "ha_priority_wait": (float, "seconds in all a highly available VM waits for "
                             "higher-priority ones to be Up before its restart", 600.0),
        "maintenance_retry": (float, "seconds before a VM that could not leave a host going "
                              "to maintenance is tried again", 30.0),
        "load_source": (str, "host CPU load from the host's counters (host) or its guests' "
                        "CPU (guests: hosts sharing one machine)", "host"),
        "listen": (str, "address of the engine's API (loopback only)", "127.0.0.1:0"),
        "frontends": (list, "front ends the engine serves (NAME or NAME@HOST:PORT)", []),
        "frontend_listen": (str, "address of a front end listed without one",
                            "127.0.0.1:8443"),
        "frontend_tls": (bool, "HTTPS for front ends (plain HTTP: loopback only)", True),
        "frontend_tls_names": (list, "extra host names in front ends' certificates", []),
        "lease_ttl": (float, "seconds a host or leader lease lasts (several engines)", 10.0),
        "engine_id": (str, "this engine's name in lease rows (default: host:pid)", ""),
    },
}

_TYPE_NAMES = {list: "a list of strings", str: "a string", bool: "true or false", int: "an integer",
               float: "a number"}

#: TOML integers are 64-bit signed (toml.io: larger ones must be refused)
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: tables and arrays nested deeper than this are refused (no key needs more than 4)
MAX_DEPTH = 16
#: longest value shown in a message (the rest is cut, ``...`` says so)
_SHOWN = 60


def _cut(text: str, limit: int = _SHOWN) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def shown(value: object) -> str:
    """``repr(value)`` for a message: one line (control characters escaped), at most
    about :data:`_SHOWN` characters."""
    return _cut(repr(value))


def key_name(*parts: object) -> str:
    """A dotted key as TOML writes it: bare parts as they are, any other quoted with its
    control and non-ASCII characters escaped (so a message stays one readable line)."""
    import json
    import re

    out = []
    for part in parts:
        text = str(part)
        bare = re.fullmatch(r"[A-Za-z0-9_-]+", text) is not None
        out.append(text if bare else _cut(json.dumps(text)))
    return ".".join(out)


def _check_data(path: Path, value: Any, keys: tuple[str, ...] = ()) -> None:
    """Refuse what no key of any table can use, wherever it is: tables and arrays
    nested deeper than :data:`MAX_DEPTH`, integers beyond 64 bits, ``nan`` and
    ``inf``, dates and times, and NUL characters in strings or keys.

    :raises ConfigError: naming the file, the key and what is allowed.
    """
    import datetime
    import math

    where = key_name(*keys) if keys else "the top level"
    if len(keys) > MAX_DEPTH:
        raise ConfigError(f"{path}: {key_name(*keys[:MAX_DEPTH])}...: tables and arrays are "
                          f"nested more than {MAX_DEPTH} levels deep; no key takes that")
    if isinstance(value, dict):
        for key, item in value.items():
            if "\0" in key:
                raise ConfigError(f"{path}: key {key_name(*keys, key)} contains a NUL "
                                  "character; keys are names")
            _check_data(path, item, (*keys, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_data(path, item, (*keys, str(index)))
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise ConfigError(f"{path}: {where} = {shown(value)} is not allowed; integers "
                              f"must be from {INT_MIN} to {INT_MAX} (64 bits)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{path}: {where} = {value} is not allowed; it must be a "
                              "finite number (no key takes nan or inf)")
    elif isinstance(value, str):
        if "\0" in value:
            raise ConfigError(f"{path}: {where} contains a NUL character (\\u0000); no "
                              "key takes one")
    elif isinstance(value, (datetime.date, datetime.time)):
        raise ConfigError(f"{path}: {where} = {value.isoformat()} is not allowed; no key "
                          "takes a date or time (write a string or a number)")


def _read_toml(path: Path) -> dict[str, Any]:
    """The parsed file.

    :raises ConfigError: it cannot be read or is not TOML (naming the file and why).
    """
    import tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        # TOML is UTF-8; tomllib decodes the bytes first and lets this escape
        raise ConfigError(f"{path}: not valid TOML: byte {exc.start} is not UTF-8 "
                          f"({exc.reason}); TOML files are UTF-8 text") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(f"{path}: not valid here: arrays or inline tables nested "
                          f"thousands of levels deep; no key takes more than {MAX_DEPTH}"
                          ) from None
    except ValueError as exc:
        # int() of an integer of more than 4300 digits (sys.get_int_max_str_digits)
        raise ConfigError(f"{path}: not valid TOML: {_cut(str(exc))}; integers "
                          f"must be from {INT_MIN} to {INT_MAX} (64 bits)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _check_core(path: Path, section: str, key: str, value: Any) -> Any:
    """The rules of core keys that their types do not say; ``value`` (of the right type)
    as it is to be kept.

    :raises ConfigError: naming the file, the key and what is allowed.
    """
    if (section, key) == ("state", "path") and not value.strip():
        raise ConfigError(f"{path}: state.path = {shown(value)} is not allowed; it must be "
                          "the path of the SQLite state file")
    if (section, key) == ("state", "url"):
        from virtplane.state import validate

        return validate(value, str(path))
    if isinstance(value, list):
        for item in value:
            if not item.strip() or any(ord(c) < 32 or c == "\x7f" for c in item):
                raise ConfigError(f"{path}: {section}.{key} has {shown(item)}; each must be "
                                  "a name (not empty, no control characters)")
    return value


def _xdg_config_paths() -> list[Path]:
    """virtplane.toml candidates in read order (system first, user last)."""
    import importlib

    from xdg import BaseDirectory

    # pyxdg computes its folders when imported; follow the current environment.
    want_home = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    if BaseDirectory.xdg_config_home != want_home or BaseDirectory.xdg_config_dirs[1:] != [
        p for p in (os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":") if p
    ]:
        importlib.reload(BaseDirectory)
    user = Path(BaseDirectory.xdg_config_home) / "virtplane" / "virtplane.toml"
    system = [
        Path(d) / "virtplane" / "virtplane.toml" for d in BaseDirectory.xdg_config_dirs[1:]
    ]
    return list(reversed(system)) + [user]




def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


class Config:
    """The effective configuration and where each value came from.

    :ivar files: the files that were read, in order.
    :ivar values: section -> key -> value (core sections and plugin tables).
    :ivar sources: ``"section.key"`` -> file path, environment variable or
        ``"default"``.
    """

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.values: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, str] = {}
        self.plugin_tables: dict[str, dict[str, Any]] = {}
        self.plugin_sources: dict[str, str] = {}
        for section, keys in CORE_KEYS.items():
            self.values[section] = {}
            for key, (_t, _d, default) in keys.items():
                self.values[section][key] = default
                self.sources[f"{section}.{key}"] = "default"
        self.values["state"]["path"] = str(data_dir() / "state.db")
        self.load_plugins: list[str] | None = None

    # -------------------------------------------------------------- accessors

    @property
    def enabled(self) -> list[str] | None:
        value: list[str] | None = self.values["plugins"]["enabled"]
        return value

    @property
    def disabled(self) -> list[str]:
        value: list[str] = self.values["plugins"]["disabled"]
        return value

    @property
    def state_path(self) -> Path:
        return Path(self.values["state"]["path"])

    @property
    def trace_hooks(self) -> bool:
        return bool(self.values["hooks"]["trace"])

    # --------------------------------------------------------------- loading

    def _merge_file(self, path: Path) -> None:
        data = _read_toml(path)
        _check_data(path, data)
        self.files.append(path)
        allowed_sections = sorted([*CORE_KEYS, "plugin"])
        for section, table in data.items():
            if section == "plugin":
                if not isinstance(table, dict) or not all(
                    isinstance(v, dict) for v in table.values()
                ):
                    raise ConfigError(
                        f"{path}: [plugin] must hold one table per plugin, "
                        "e.g. [plugin.kvm]"
                    )
                for name, sub in table.items():
                    self.plugin_tables.setdefault(name, {}).update(sub)
                    self.plugin_sources[name] = str(path)
                continue
            if section not in CORE_KEYS:
                raise ConfigError(
                    f"{path}: unknown section [{section}]; allowed sections: "
                    + ", ".join(allowed_sections)
                )
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: {section} must be a table ([{section}])")
            keys = CORE_KEYS[section]
            for key, value in table.items():
                if key not in keys:
                    raise ConfigError(
                        f"{path}: unknown key {key_name(section, key)}; allowed keys in "
                        f"[{section}]: " + ", ".join(sorted(keys))
                    )
                typ, _desc, _default = keys[key]
                ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
                if typ is float and isinstance(value, int) and not isinstance(value, bool):
                    ok, value = True, float(value)
                if ok and typ is list:
                    ok = all(isinstance(v, str) for v in value)
                if not ok:
                    raise ConfigError(
                        f"{path}: {section}.{key} = {shown(value)} is not allowed; "
                        f"it must be {_TYPE_NAMES[typ]}"
                    )
                value = _check_core(path, section, key, value)
                self.values[section][key] = value
                self.sources[f"{section}.{key}"] = str(path)

    def _apply_env(self, env: dict[str, str]) -> None:
        if "VIRTPLANE_LOAD_PLUGINS" in env:
            self.load_plugins = _split(env["VIRTPLANE_LOAD_PLUGINS"])
            self.sources["env.load_plugins"] = "VIRTPLANE_LOAD_PLUGINS"
        if env.get("VIRTPLANE_DISABLE_PLUGINS"):
            extra = _split(env["VIRTPLANE_DISABLE_PLUGINS"])
            self.values["plugins"]["disabled"] = [*self.disabled, *extra]
            self.sources["plugins.disabled"] = "VIRTPLANE_DISABLE_PLUGINS"
        if env.get("VIRTPLANE_STATE"):
            self.values["state"]["path"] = env["VIRTPLANE_STATE"]
            self.sources["state.path"] = "VIRTPLANE_STATE"
            # the variable wins over the file's [state] url as well (docs/config.md)
            self.values["state"]["url"] = None
            self.sources["state.url"] = "VIRTPLANE_STATE"
        if env.get("VIRTPLANE_TRACE_HOOKS") == "1":
            self.values["hooks"]["trace"] = True
            self.sources["hooks.trace"] = "VIRTPLANE_TRACE_HOOKS"

    def wants(self, name: str, dist: str) -> tuple[bool, str]:
        """Whether a plugin (entry name or distribution name) is to be loaded, and why not."""
        names = {name, dist}
        if self.load_plugins is not None and not names & set(self.load_plugins):
            return False, "not in VIRTPLANE_LOAD_PLUGINS"
        if names & set(self.disabled):
            return False, f"disabled ({self.sources['plugins.disabled']})"
        if self.enabled is not None and not names & set(self.enabled):
            return False, f"not in plugins.enabled ({self.sources['plugins.enabled']})"
        return True, ""

    def as_dict(self) -> dict[str, Any]:
        """The effective configuration with the source of each value."""
        out: dict[str, Any] = {}
        for section, keys in self.values.items():
            for key, value in keys.items():
                out[f"{section}.{key}"] = {
                    "value": value,
                    "source": self.sources[f"{section}.{key}"],
                }
        if self.load_plugins is not None:
            out["env.load_plugins"] = {
                "value": self.load_plugins,
                "source": "VIRTPLANE_LOAD_PLUGINS",
            }
        for name, table in sorted(self.plugin_tables.items()):
            for key, value in table.items():
                out[f"plugin.{name}.{key}"] = {
                    "value": value,
                    "source": self.plugin_sources[name],
                }
        return out


def load(
    path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None
) -> Config:
    """Read the configuration.

    :param path: one explicit file (as ``VIRTPLANE_CONFIG``); it must exist.
    :param env: environment to read (defaults to ``os.environ``).
    """
    env = dict(os.environ if env is None else env)
    cfg = Config()
    explicit = path if path is not None else env.get("VIRTPLANE_CONFIG")
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            source = "VIRTPLANE_CONFIG" if path is None else "config path"
            raise ConfigError(f"{p}: no such config file (named by {source})")
        cfg._merge_file(p)
    else:
        for candidate in _xdg_config_paths():
            if candidate.is_file():
                cfg._merge_file(candidate)
    cfg._apply_env(env)
    return cfg


def _allowed(tp: Any) -> str | None:
    """What a value of type ``tp`` is, in an administrator's words (None: a type this
    check leaves to cattrs)."""
    import types
    import typing

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _TYPE_NAMES and tp is not list:
        return _TYPE_NAMES[tp]
    if tp is type(None):
        return "unset"
    if origin in (typing.Union, types.UnionType):
        parts = [_allowed(a) for a in args if a is not type(None)]
        return None if None in parts else " or ".join(p for p in parts if p)
    if origin in (list, tuple) and args:
        inner = _allowed(args[0])
        return None if inner is None else f"a list of {inner.removeprefix('a ')}s" \
            if inner.startswith("a ") else f"a list of ({inner})"
    if origin is dict and len(args) == 2:
        inner = _allowed(args[1])
        return None if inner is None else f"a table of {inner.removeprefix('a ')}s" \
            if inner.startswith("a ") else f"a table of ({inner})"
    return None


def _fits(value: Any, tp: Any) -> bool:
    """Whether ``value`` (as TOML gives it) is a ``tp`` without any conversion: no
    ``"no"`` for a bool (cattrs would make it True), no string for a list (it would
    become a list of characters), no float for an int (it would be truncated)."""
    import types
    import typing

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin in (list, tuple) and args:
        item = args[0]
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if origin is dict and len(args) == 2:
        return isinstance(value, dict) and all(_fits(v, args[1]) for v in value.values())
    return True  # a type of its own: cattrs decides


def plugin_settings(cfg: Config, name: str, cls: type[T]) -> T:
    """Validate the ``[plugin.<name>]`` table with the plugin's attrs class ``cls``.

    Values must be of the field's type as TOML writes it (``true``, not ``"yes"``; a
    list, not a string; an integer, not ``1.5``): cattrs alone would convert them.

    :raises ConfigError: naming the file, the key and what is allowed.
    """
    table = cfg.plugin_tables.get(name, {})
    if not table:
        return cls()  # all defaults: no need to pay for cattrs on the common path

    import typing

    import attrs
    import cattrs

    from virtplane.model import converter, format_exception

    source = cfg.plugin_sources.get(name, "defaults")
    fields = {f.name: f for f in attrs.fields(cls)}  # type: ignore[arg-type]
    for key in table:
        if key not in fields:
            raise ConfigError(
                f"{source}: unknown key {key_name('plugin', name, key)}; allowed keys: "
                + (", ".join(sorted(fields)) or "none")
            )
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: cattrs decides
        hints = {}
    for key, value in table.items():
        tp = hints.get(key)
        allowed = _allowed(tp) if tp is not None else None
        if allowed is not None and not _fits(value, tp):
            raise ConfigError(f"{source}: {key_name('plugin', name, key)} = {shown(value)} "
                              f"is not allowed; it must be {allowed}")

    def short(exc: BaseException, type_: Any) -> str:
        return _cut(format_exception(exc, type_), 4 * _SHOWN)

    try:
        settings: T = converter().structure(table, cls)
    except cattrs.BaseValidationError as exc:
        details = cattrs.transform_error(exc, path=f"plugin.{name}", format_exception=short)
        raise ConfigError(f"{source}: " + "; ".join(details)) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: invalid [plugin.{name}]: {_cut(str(exc), 4 * _SHOWN)}") from None
    return settings
