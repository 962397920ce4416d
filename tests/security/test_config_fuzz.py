"""No configuration file makes virtplane fail with anything but a ConfigError.

A property-based test (hypothesis) writes ``virtplane.toml`` files from the keys
the configuration module declares (:data:`virtplane.config.CORE_KEYS`) and the
settings class of every installed first-party plugin (their ``VIRTPLANE_SETTINGS``
attrs classes, the oVirt API's ``[plugin.api_ovirt]`` keys and directories), with
values of the wrong type, out-of-range, huge and non-finite numbers, empty and
very long strings, NUL and control characters, traversal paths, dates, unknown
sections and keys, deep nesting, and then breaks some files further: bytes that
are not UTF-8, duplicated lines, cut-off and invalid TOML.

Each file is loaded through :func:`virtplane.config.load` and handed to every
consumer of its values (each plugin's settings, the engine's settings, ``config
show``'s JSON): it must load, or raise :class:`~virtplane.errors.ConfigError` whose
message is one line naming the file. A few files go through the command line
(``virtplane --config FILE dc list``, a subprocess each): a non-zero exit with one
``virtplane: error:`` line naming the file, never a traceback.

Derandomized and bounded (300 files in-process, 6 generated and 3 known ones
through the CLI: about 15 s); more, locally, with ``VIRTPLANE_FUZZ_EXAMPLES=5000``.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import subprocess
import sys
import typing
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtplane import config
from virtplane.errors import ConfigError
from virtplane.plugins._kinds import SETTINGS_ATTR

EXAMPLES = int(os.environ.get("VIRTPLANE_FUZZ_EXAMPLES", "300"))
CLI_EXAMPLES = 6


# ------------------------------------------------------------- the documented keys


def _plugin_settings() -> dict[str, type]:
    """Installed plugin name -> its settings class (every plugin that declares one)."""
    found: dict[str, type] = {}
    for group in ("virtplane.hooks", "virtplane.hypervisors", "virtplane.storage",
                  "virtplane.architectures"):
        for ep in entry_points(group=group):
            ref = getattr(ep.load(), SETTINGS_ATTR, None)
            if isinstance(ref, str):
                module, _, name = ref.partition(":")
                ref = getattr(importlib.import_module(module), name)
            if ref is not None:
                found[ep.name] = ref
    return found


PLUGINS = _plugin_settings()
#: keys of [plugin.api_ovirt] (checked by its own code, not an attrs class)
API_KEYS = {"max_failed_logins": int, "lockout_seconds": float}
DIRECTORY_KEYS = ["url", "base_dn", "bind_dn", "bind_password_file", "bind_password_env",
                  "user_filter", "user_attribute", "group_filter", "group_lookup",
                  "group_attribute", "timeout", "bind_password"]


def _plugin_keys(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in attrs.fields(cls)}


def test_the_fuzzer_knows_the_first_party_plugins():
    assert {"hook_scripts", "kvm", "ovm3"} <= set(PLUGINS)
    assert {"engine", "state", "plugins", "hooks"} <= set(config.CORE_KEYS)


# ------------------------------------------------------------------- the values

TRICKY = ["", " ", "0", "-1", "1e400", "nan", "yes", "no", "false", "true", "../../etc/passwd",
          "/etc/passwd/x", "a/../../b", "x\x00y", "\x1b[2J", "line\nbreak", "é\u202e", "\x7f",
          "127.0.0.1:0", "0.0.0.0:80", "[::1]:8700", "ovirt", "ovirt@127.0.0.1:1", "host",
          "(", "[a-", "postgresql://", "sqlite://h/x", "http:/x", "a" * 5000]
NUMBERS = [0, -1, 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30, 10**400, 0.0, -0.0, 0.5,
           -1.5, 1e308, float("inf"), float("-inf"), float("nan"), 1e-320]

scalar = st.one_of(
    st.sampled_from(TRICKY), st.sampled_from(NUMBERS), st.booleans(),
    st.integers(), st.floats(),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.just(datetime.date(1979, 5, 27)), st.just(datetime.time(7, 32)),
)
value = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "x y", ""]),
                                                 inner, max_size=2)), max_leaves=6)


def _good(tp: Any) -> st.SearchStrategy[Any]:
    """A value of the right type, so that files get past the first key."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-5, 100)
    if tp is float:
        return st.floats(-1, 100, allow_nan=False)
    if tp is str:
        return st.sampled_from(["x", "host", "127.0.0.1:0", "/tmp/x"])
    if origin in (list, tuple):
        return st.lists(st.sampled_from(["kvm", "ovirt", "a"]), max_size=2)
    if origin is dict:
        return st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(["x", "^a$"]))
    if args:
        return st.one_of(*[_good(a) for a in args if a is not type(None)])
    return value


def _entry(tp: Any) -> st.SearchStrategy[Any]:
    return st.one_of(_good(tp), value)


@st.composite
def tables(draw: st.DrawFn) -> dict[str, Any]:
    """A configuration: some core sections, some plugin tables, sometimes unknown ones."""
    data: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(sorted(config.CORE_KEYS)), max_size=3,
                                 unique=True)):
        keys = config.CORE_KEYS[section]
        names = draw(st.lists(st.sampled_from(sorted(keys)), min_size=1, max_size=3,
                              unique=True))
        data[section] = {k: draw(_entry(keys[k][0])) for k in names}
        if draw(st.integers(0, 6)) == 0:
            data[section][draw(st.sampled_from(["nope", "Path", "x\ny", ""]))] = 1
    plugins: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from([*sorted(PLUGINS), "api_ovirt", "nosuch"]),
                              max_size=2, unique=True)):
        if name == "api_ovirt":
            table: dict[str, Any] = {k: draw(_entry(t)) for k, t in API_KEYS.items()
                                     if draw(st.booleans())}
            if draw(st.booleans()):
                table["directories"] = draw(st.one_of(value, st.dictionaries(
                    st.sampled_from(["corp", "internal", "x y"]),
                    st.one_of(value, st.dictionaries(st.sampled_from(DIRECTORY_KEYS),
                                                     st.one_of(st.just("ldap://x"), value),
                                                     max_size=4)), max_size=2)))
        elif name in PLUGINS:
            keys = _plugin_keys(PLUGINS[name])
            table = {k: draw(_entry(keys[k])) for k in draw(st.lists(
                st.sampled_from(sorted(keys)), min_size=1, max_size=3, unique=True))}
        else:
            table = draw(st.dictionaries(st.sampled_from(["a", "b"]), value, max_size=2))
        if draw(st.integers(0, 6)) == 0:
            table["unknown_key"] = draw(value)
        plugins[name] = table
    if plugins:
        data["plugin"] = plugins if draw(st.integers(0, 8)) else draw(value)
    if draw(st.integers(0, 8)) == 0:
        data[draw(st.sampled_from(["nope", "plugins x", "\u202e"]))] = {"a": 1}
    if draw(st.integers(0, 8)) == 0:
        data["deep"] = {"v": draw(st.sampled_from([5, 40, 3000]))}
    return data


def _string(text: str) -> str:
    # a TOML basic string; DEL and other raw controls make it invalid TOML (also tested)
    return json.dumps(text, ensure_ascii=False)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        if isinstance(v, float) and v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict) and "v" in v and len(v) == 1 and isinstance(v["v"], int) \
            and v["v"] in (5, 40, 3000):
        return "[" * v["v"] + "]" * v["v"]  # deep nesting
    return "{" + ", ".join(f"{_string(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def render(data: dict[str, Any]) -> str:
    """TOML text: a [section] per table (plugin tables as [plugin.NAME]), inline values."""
    lines = []
    for section, table in data.items():
        if section == "plugin" and isinstance(table, dict):
            for name, sub in table.items():
                lines.append(f"[plugin.{_string(name)}]")
                lines += [f"{_string(k)} = {_toml_value(v)}" for k, v in sub.items()] \
                    if isinstance(sub, dict) else [f"x = {_toml_value(sub)}"]
        elif isinstance(table, dict):
            lines.append(f"[{_string(section)}]")
            lines += [f"{_string(k)} = {_toml_value(v)}" for k, v in table.items()]
        else:
            lines.insert(0, f"{_string(section)} = {_toml_value(table)}")
    return "\n".join(lines) + "\n"


@st.composite
def config_files(draw: st.DrawFn) -> bytes:
    raw = render(draw(tables())).encode("utf-8", "surrogatepass")
    mutation = draw(st.integers(0, 9))
    lines = raw.splitlines(keepends=True)
    if mutation == 0 and lines:  # a line twice: a duplicated key or table
        i = draw(st.integers(0, len(lines) - 1))
        lines.insert(i, lines[i])
    elif mutation == 1:  # bytes that are not UTF-8
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(
            [b'x = "\xff\xfe"\n', b"\xc3\x28\n", b"\xed\xa0\x80\n", b"\x00\n"])))
    elif mutation == 2:  # cut off
        return raw[:draw(st.integers(0, len(raw)))]
    elif mutation == 3:  # not TOML
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(
            [b"[[[\n", b"[plugin\n", b"= 1\n", b"a = \n", b'a = """\n', b"[plugin.kvm]]\n",
             b"a.b.c.d = 1\n", b"[[plugin.kvm]]\n"])))
    return b"".join(lines)


# ------------------------------------------------------------------ the consumers


def _consume(cfg: config.Config) -> None:
    """Everything that reads the loaded values: plugin settings, the engine's settings,
    the oVirt API's, and ``config show``."""
    for name, cls in PLUGINS.items():
        config.plugin_settings(cfg, name, cls)
    from virtplane_api_ovirt.authz import Settings
    from virtplane_engine.placement import AutomationSettings
    from virtplane_engine.settings import EngineSettings

    Settings.from_config(cfg)
    EngineSettings.from_config(cfg)
    AutomationSettings.from_config(cfg)
    json.dumps(cfg.as_dict())


def check_file(path: Path) -> None:
    try:
        cfg = config.load(path, env={})
        _consume(cfg)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message, message
        assert str(path) in message or message.startswith("engine."), message
        assert len(message) < 1000, message[:300]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(data=config_files())
def test_generated_config_files_load_or_give_a_config_error(tmp_path, data):
    path = tmp_path / "virtplane.toml"
    path.write_bytes(data)
    check_file(path)


# ------------------------------------------------------------------ the command line

#: state locations the CLI may be given (it creates the file): only under the test's
#: folder, or where nothing can be created
SAFE_STATE = ["state.db", "a/../state2.db", "../up/state.db", "/etc/passwd/x.db", "",
              "x\x00y", "sqlite://h/x.db", "postgresql://vp@127.0.0.1:1/vp", "http:/x"]


@st.composite
def cli_files(draw: st.DrawFn) -> bytes:
    data = draw(tables())
    if "state" in data:
        data["state"] = {k: draw(st.one_of(st.sampled_from(SAFE_STATE), scalar.filter(
            lambda v: not isinstance(v, str)))) for k in data["state"]}
    return render(data).encode()


@settings(max_examples=CLI_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(data=cli_files())
def test_the_command_line_gives_one_error_line(tmp_path, xdg, data):
    work = tmp_path / "w" / "x"
    work.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "virtplane.toml"
    path.write_bytes(data)
    env = {**os.environ, "VIRTPLANE_DIRECT": "1"}
    proc = subprocess.run([sys.executable, "-m", "virtplane.cli", "--config", str(path), "dc",
                           "list"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=60, errors="replace")
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("virtplane: ")]
        assert errors and errors[-1].startswith("virtplane: error: "), proc.stderr
        error_lines = [line for line in proc.stderr.splitlines()
                       if not line.startswith("virtplane: warning:")]
        assert len(error_lines) == 1, proc.stderr


@pytest.mark.parametrize("text", [
    b'[state]\npath = "a\\u0000b"\n', b"[engine]\nworkers = " + b"9" * 5000 + b"\n",
    b"a = " + b"[" * 3000 + b"]" * 3000 + b"\n",
])
def test_known_files_on_the_command_line(tmp_path, xdg, text):
    path = tmp_path / "virtplane.toml"
    path.write_bytes(text)
    proc = subprocess.run([sys.executable, "-m", "virtplane.cli", "--config", str(path), "dc",
                           "list"], cwd=tmp_path, env={**os.environ, "VIRTPLANE_DIRECT": "1"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"virtplane: error: {path}: ")
    assert proc.stderr.count("\n") == 1, proc.stderr
