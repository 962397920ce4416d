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
that plugin's own attrs settings class (see :func:`~virtplane.config_plugins.plugin_settings`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from virtplane.config_plugins import plugin_settings as plugin_settings
from virtplane.config_toml import _TYPE_NAMES
from virtplane.config_toml import INT_MAX as INT_MAX
from virtplane.config_toml import INT_MIN as INT_MIN
from virtplane.config_toml import MAX_DEPTH as MAX_DEPTH
from virtplane.config_toml import check_data as _check_data
from virtplane.config_toml import key_name as key_name
from virtplane.config_toml import read_toml as _read_toml
from virtplane.config_toml import shown as shown
from virtplane.errors import ConfigError
from virtplane.paths import data_dir as data_dir  # re-exported: its old home

#: Core settings: section -> key -> (python type, description, default).
CORE_KEYS: dict[str, dict[str, tuple[type, str, Any]]] = {
    "plugins": {
        "enabled": (list, "names of plugins to load (all installed when unset)", None),
        "disabled": (list, "names of plugins never loaded", []),
    },
    "state": {
        "path": (str, "SQLite state file", None),
        "url": (
            str,
            "the state store as a path or URL (sqlite:///path, postgresql://...); wins over path",
            None,
        ),
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
        "fence_confirm_interval": (
            float,
            "a second failed check this long after the first confirms a host is down",
            10.0,
        ),
        "soft_fence_timeout": (float, "seconds a soft-fenced host gets to answer", 60.0),
        "fence_connectivity_threshold": (
            int,
            "no fencing when this % of a cluster's hosts are unreachable",
            50,
        ),
        "ha_retry_interval": (float, "seconds between HA restart attempts", 30.0),
        "ha_retries_short": (int, "HA restart attempts at the short interval", 10),
        "ha_retry_long_interval": (float, "seconds between later HA restart attempts", 1800.0),
        "ha_priority_wait": (
            float,
            "seconds in all a highly available VM waits for "
            "higher-priority ones to be Up before its restart",
            600.0,
        ),
        "maintenance_retry": (
            float,
            "seconds before a VM that could not leave a host going to maintenance is tried again",
            30.0,
        ),
        "load_source": (
            str,
            "host CPU load from the host's counters (host) or its guests' "
            "CPU (guests: hosts sharing one machine)",
            "host",
        ),
        "listen": (str, "address of the engine's API (loopback only)", "127.0.0.1:0"),
        "frontends": (list, "front ends the engine serves (NAME or NAME@HOST:PORT)", []),
        "frontend_listen": (str, "address of a front end listed without one", "127.0.0.1:8443"),
        "frontend_tls": (bool, "HTTPS for front ends (plain HTTP: loopback only)", True),
        "frontend_tls_names": (list, "extra host names in front ends' certificates", []),
        "lease_ttl": (float, "seconds a host or leader lease lasts (several engines)", 10.0),
        "engine_id": (str, "this engine's name in lease rows (default: host:pid)", ""),
    },
}


def _check_core(path: Path, section: str, key: str, value: Any) -> Any:
    """The rules of core keys that their types do not say; ``value`` (of the right type)
    as it is to be kept.

    :raises ConfigError: naming the file, the key and what is allowed.
    """
    if (section, key) == ("state", "path") and not value.strip():
        raise ConfigError(
            f"{path}: state.path = {shown(value)} is not allowed; it must be "
            "the path of the SQLite state file"
        )
    if (section, key) == ("state", "url"):
        from virtplane.state import validate

        return validate(value, str(path))
    if isinstance(value, list):
        for item in value:
            if not item.strip() or any(ord(c) < 32 or c == "\x7f" for c in item):
                raise ConfigError(
                    f"{path}: {section}.{key} has {shown(item)}; each must be "
                    "a name (not empty, no control characters)"
                )
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
    system = [Path(d) / "virtplane" / "virtplane.toml" for d in BaseDirectory.xdg_config_dirs[1:]]
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
                        f"{path}: [plugin] must hold one table per plugin, e.g. [plugin.kvm]"
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


def load(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Config:
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
