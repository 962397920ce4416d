"""Config files the fuzzer (tests/security/test_config_fuzz.py) found escaping as
something other than a ConfigError, or accepted with a meaning the administrator did
not write; each gives a ConfigError naming the file, the key and what is allowed."""

from __future__ import annotations

import json

import pytest

from virtplane import config
from virtplane.errors import ConfigError


def _load(tmp_path, text: bytes) -> config.Config:
    path = tmp_path / "virtplane.toml"
    path.write_bytes(text)
    return config.load(path, env={})


def _error(tmp_path, text: bytes) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'virtplane.toml'}: ") and "\n" not in message
    return message


def test_an_integer_of_thousands_of_digits(tmp_path):
    # was: ValueError (Exceeds the limit (4300 digits) for integer string conversion)
    message = _error(tmp_path, b"[engine]\nworkers = " + b"9" * 5000 + b"\n")
    assert "not valid TOML" in message and "64 bits" in message


def test_an_integer_beyond_64_bits(tmp_path):
    message = _error(tmp_path, b"[engine]\nworkers = 99999999999999999999999\n")
    assert "engine.workers" in message and "64 bits" in message


def test_a_float_key_given_a_huge_integer(tmp_path):
    # was: OverflowError (int too large to convert to float)
    message = _error(tmp_path, b"[engine]\nhost_interval = " + b"9" * 400 + b"\n")
    assert "engine.host_interval" in message


@pytest.mark.parametrize("text", [b"a = " + b"[" * 3000 + b"]" * 3000 + b"\n",
                                  b"a = " + b"{b = " * 3000 + b"1" + b"}" * 3000 + b"\n"])
def test_nesting_thousands_of_levels_deep(tmp_path, text):
    # was: RecursionError from tomllib
    assert "nested" in _error(tmp_path, text)


def test_nesting_deeper_than_any_key_takes(tmp_path):
    assert "nested more than 16 levels" in _error(tmp_path, b"[plugin.x]\na = " + b"[" * 20
                                                  + b"]" * 20 + b"\n")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_and_inf(tmp_path, value):
    # was: loaded; the engine's loops then slept nan seconds (ValueError) or forever
    message = _error(tmp_path, f"[engine]\nhost_interval = {value}\n".encode())
    assert f"engine.host_interval = {value}" in message and "finite number" in message


def test_a_nul_character(tmp_path):
    # was: loaded; `dc list` then died in open() with "ValueError: embedded null byte"
    message = _error(tmp_path, b'[state]\npath = "a\\u0000b"\n')
    assert "state.path contains a NUL character" in message


def test_an_empty_state_path(tmp_path):
    # was: loaded; `dc list` then said "state store . is unreadable"
    assert "state.path = '' is not allowed" in _error(tmp_path, b'[state]\npath = ""\n')


def test_a_date_in_a_plugin_table(tmp_path):
    # was: loaded; `config show` then died in json.dumps (date is not JSON serializable)
    message = _error(tmp_path, b"[plugin.nosuch]\nwhen = 1979-05-27\n")
    assert "plugin.nosuch.when = 1979-05-27 is not allowed" in message


def test_a_key_with_a_line_break_stays_on_one_line(tmp_path):
    message = _error(tmp_path, b'[state]\n"a\\nb" = 1\n')
    assert 'unknown key state."a\\nb"' in message


def test_a_long_value_is_cut_in_the_message(tmp_path):
    message = _error(tmp_path, b"[state]\npath = [\"" + b"a" * 100000 + b"\"]\n")
    assert len(message) < 300 and "..." in message


@pytest.mark.parametrize("name", ["", " ", "a\tb"])
def test_plugin_names_must_be_names(tmp_path, name):
    message = _error(tmp_path, f"[plugins]\ndisabled = [{json.dumps(name)}]\n".encode())
    assert "plugins.disabled has" in message


def test_the_documented_state_url_key(tmp_path):
    # was: "unknown key state.url; allowed keys in [state]: path", though docs/config.md
    # documents it
    cfg = _load(tmp_path, b'[state]\nurl = "postgresql://vp@db.example.org/vp"\n')
    assert cfg.values["state"]["url"] == "postgresql://vp@db.example.org/vp"
    assert "has an invalid port" in _error(tmp_path, b'[state]\nurl = "postgresql://h:x/vp"\n')


def test_virtplane_state_wins_over_the_file_s_state_url(tmp_path):
    from virtplane.state import location_of

    path = tmp_path / "virtplane.toml"
    path.write_text('[state]\nurl = "postgresql://vp@db/vp"\n')
    cfg = config.load(path, env={"VIRTPLANE_STATE": str(tmp_path / "s.db")})
    assert location_of(cfg) == str(tmp_path / "s.db")


# ----------------------------------------------------------- plugin tables


def _plugin(tmp_path, text: str, name: str, cls: type):
    cfg = _load(tmp_path, f"[plugin.{name}]\n{text}\n".encode())
    return config.plugin_settings(cfg, name, cls)


@pytest.mark.parametrize(("text", "allowed"), [
    ('test_driver_files = "no"', "true or false"),  # was: True (cattrs: bool("no"))
    ("test_driver_files = 1", "true or false"),
    ('keepalive_interval = "5"', "an integer"),
    ("keepalive_interval = 1.9", "an integer"),  # was: 1
    ("keepalive_interval = true", "an integer"),
    ('connect_timeout = "30"', "a number"),
])
def test_kvm_values_are_not_converted(tmp_path, text, allowed):
    from virtplane_kvm.settings import KvmSettings

    with pytest.raises(ConfigError) as info:
        _plugin(tmp_path, text, "kvm", KvmSettings)
    key = text.partition(" ")[0]
    assert f"plugin.kvm.{key} = " in str(info.value)
    assert str(info.value).endswith(f"it must be {allowed}")


@pytest.mark.parametrize(("text", "allowed"), [
    ('dirs = "/srv/hooks"', "a list of strings"),  # was: ['/', 's', 'r', 'v', ...]
    ("dirs = [1]", "a list of strings"),  # was: ['1']
    ('strict_properties = "no"', "true or false"),  # was: True
    ("vm_properties = {a = 5}", "a table of strings"),
    ("vdsm_dir = 5", "a string"),
])
def test_hook_scripts_values_are_not_converted(tmp_path, text, allowed):
    from virtplane_hook_scripts.settings import HookScriptsSettings

    with pytest.raises(ConfigError, match=f"it must be {allowed}$"):
        _plugin(tmp_path, text, "hook_scripts", HookScriptsSettings)


def test_ovm3_verify_tls_false_as_a_string(tmp_path):
    from virtplane_ovm3.settings import Ovm3Settings

    with pytest.raises(ConfigError, match="plugin.ovm3.verify_tls = 'false' is not allowed"):
        _plugin(tmp_path, 'verify_tls = "false"', "ovm3", Ovm3Settings)


def test_right_types_still_load(tmp_path):
    from virtplane_kvm.settings import KvmSettings

    s = _plugin(tmp_path, "connect_timeout = 5\nkeepalive_interval = 0\n"
                "test_driver_files = false", "kvm", KvmSettings)
    assert (s.connect_timeout, s.keepalive_interval, s.test_driver_files) == (5.0, 0, False)


@pytest.mark.parametrize("text", ['dirs = ["hooks"]', 'dirs = [""]', 'vdsm_dir = "../../etc"',
                                  'run_dir = ""', 'run_dir = "run"'])
def test_hook_scripts_paths_are_absolute(tmp_path, text):
    # was: loaded; a relative hook root ran the scripts under the command's folder
    from virtplane_hook_scripts.settings import HookScriptsSettings

    key = text.partition(" ")[0]
    with pytest.raises(ConfigError, match=f"{key}: .* is not allowed; it must be an absolute "
                                          r"path \(starting with /\)"):
        _plugin(tmp_path, text, "hook_scripts", HookScriptsSettings)
