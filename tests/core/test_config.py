"""Config files (XDG layering, VIRTPLANE_CONFIG), validation errors, `config show`."""

from __future__ import annotations

import json

import pytest

from virtplane import config
from virtplane.errors import ConfigError


def _write(folder, text):
    d = folder / "virtplane"
    d.mkdir(parents=True, exist_ok=True)
    p = d / "virtplane.toml"
    p.write_text(text)
    return p


def test_defaults_without_files(xdg):
    cfg = config.load()
    assert cfg.files == []
    assert cfg.state_path == xdg["XDG_DATA_HOME"] / "virtplane" / "state.db"
    assert cfg.enabled is None and cfg.disabled == []


def test_user_file_wins_over_system_file_key_by_key(xdg):
    system = _write(xdg["XDG_CONFIG_DIRS"], '[plugins]\ndisabled = ["a"]\n[state]\npath = "/sys.db"\n')
    user = _write(xdg["XDG_CONFIG_HOME"], '[state]\npath = "/user.db"\n')
    cfg = config.load()
    assert cfg.files == [system, user]
    assert str(cfg.state_path) == "/user.db"
    assert cfg.disabled == ["a"]
    shown = cfg.as_dict()
    assert shown["state.path"]["source"] == str(user)
    assert shown["plugins.disabled"]["source"] == str(system)
    assert shown["plugins.enabled"]["source"] == "default"


def test_first_xdg_config_dir_wins(xdg, tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    _write(first, '[state]\npath = "/first.db"\n')
    _write(second, '[state]\npath = "/second.db"\n')
    monkeypatch.setenv("XDG_CONFIG_DIRS", f"{first}:{second}")
    assert str(config.load().state_path) == "/first.db"


def test_virtplane_config_names_one_file(xdg, tmp_path, monkeypatch):
    _write(xdg["XDG_CONFIG_HOME"], '[state]\npath = "/user.db"\n')
    one = tmp_path / "one.toml"
    one.write_text('[state]\npath = "/one.db"\n')
    monkeypatch.setenv("VIRTPLANE_CONFIG", str(one))
    cfg = config.load()
    assert cfg.files == [one] and str(cfg.state_path) == "/one.db"
    monkeypatch.setenv("VIRTPLANE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="missing.toml: no such config file .*VIRTPLANE_CONFIG"):
        config.load()


@pytest.mark.parametrize("text, expected", [
    ("[plugins]\nenabld = []\n", "unknown key plugins.enabld; allowed keys in [plugins]: disabled, enabled"),
    ("[plugins]\nenabled = 'kvm'\n", "plugins.enabled = 'kvm' is not allowed; it must be a list of strings"),
    ("[plugins]\nenabled = [1]\n", "plugins.enabled = [1] is not allowed; it must be a list of strings"),
    ("[hooks]\ntrace = 1\n", "hooks.trace = 1 is not allowed; it must be true or false"),
    ("[storage]\nx = 1\n", "unknown section [storage]; allowed sections: engine, hooks, plugin, plugins, state"),
    ("[plugins\n", "not valid TOML"),
    ("plugin = 3\n", "[plugin] must hold one table per plugin"),
])
def test_bad_config_names_file_key_and_allowed(xdg, text, expected, cli):
    path = _write(xdg["XDG_CONFIG_HOME"], text)
    with pytest.raises(ConfigError) as info:
        config.load()
    assert str(path) in str(info.value)
    assert expected in str(info.value)
    rc, out, err = cli("config", "show")
    assert rc == 2 and expected in err and "Traceback" not in err
    rc, out, err = cli("plugins", "list")
    assert rc == 2 and str(path) in err


def test_env_overrides_and_config_show(xdg, cli, monkeypatch, tmp_path):
    _write(xdg["XDG_CONFIG_HOME"], '[plugin.kvm]\nshutdown_poll_seconds = 1.5\n')
    monkeypatch.setenv("VIRTPLANE_STATE", str(tmp_path / "s.db"))
    monkeypatch.setenv("VIRTPLANE_LOAD_PLUGINS", "kvm, localfs")
    rc, out, err = cli("config", "show", "--json")
    assert rc == 0, err
    data = json.loads(out)["values"]
    assert data["state.path"] == {"value": str(tmp_path / "s.db"), "source": "VIRTPLANE_STATE"}
    assert data["env.load_plugins"]["value"] == ["kvm", "localfs"]
    assert data["plugin.kvm.shutdown_poll_seconds"]["value"] == 1.5
    rc, out, _ = cli("config", "show")
    assert "state.path = " in out and "# VIRTPLANE_STATE" in out
