"""Plugin discovery, loading and isolation of broken plugins."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

GOOD_HOOKS = """
from virtplane import hookimpl
VIRTPLANE_PLUGIN_API = ">=2.0,<3"
CALLS = []

@hookimpl
def extend_host_capabilities(host, caps):
    caps["goodplug"] = True
"""


def _good(site, name="goodplug"):
    site.add(f"vp-{name}", {f"{name}.py": GOOD_HOOKS},
             {"virtplane.hooks": {name: name}})


def test_builtin_and_first_party_plugins_are_listed(cli):
    rc, out, err = cli("plugins", "list", "--json")
    assert rc == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["core"]["status"] == "loaded" and rows["core"]["builtin"]
    assert "validate_vm_spec" in rows["core"]["hooks"]
    assert rows["kvm"]["distribution"] == "virtplane-hypervisor-kvm"
    assert rows["kvm"]["kinds"] == ["hypervisor"]
    assert rows["x86_64"]["kinds"] == ["architecture"]
    assert rows["localfs"]["kinds"] == ["storage"]


def test_third_party_hook_plugin_loads_and_runs(plugin_site, manager_factory):
    _good(plugin_site)
    m = manager_factory()
    rec = m.plugins.records["goodplug"]
    assert rec.status == "loaded", rec.reason
    assert rec.dist == "vp-goodplug" and rec.hooks == ["extend_host_capabilities"]
    caps: dict = {}
    m.hooks.fire("extend_host_capabilities", host=None, caps=caps)
    assert caps["goodplug"] is True


@pytest.mark.parametrize(
    "code, reason",
    [
        ("import no_such_module_xyz\n", "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
        ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
        ("from virtplane import hookimpl\nVIRTPLANE_PLUGIN_API = '>=3.0'\n"
         "@hookimpl\ndef after_vm_start(vm, domxml):\n    pass\n",
         "needs plugin API >=3.0, but this virtplane core offers 2.1 (and 1.0 through "
         "adapters)"),
        ("from virtplane import hookimpl\nVIRTPLANE_PLUGIN_API = 'banana'\n",
         "not a version range"),
        ("from virtplane import hookimpl\n"
         "@hookimpl\ndef after_vm_start(vm, domxml):\n    pass\n",
         "declares no VIRTPLANE_PLUGIN_API"),
        ("from virtplane import hookimpl\nVIRTPLANE_PLUGIN_API = '>=2.0,<3'\n"
         "@hookimpl\ndef after_vm_start(vm, domxml, flavour):\n    pass\n",
         "Argument(s) {'flavour'} are declared in the hookimpl but can not be found"),
        ("from virtplane import hookimpl\nVIRTPLANE_PLUGIN_API = '>=2.0,<3'\n"
         "@hookimpl\ndef before_teleport(vm):\n    pass\n",
         "implements unknown hook 'before_teleport'"),
        ("from virtplane import hookimpl\nVIRTPLANE_PLUGIN_API = '>=2.0,<3'\n"
         "@hookimpl(wrapper=True)\ndef after_vm_start(vm, domxml):\n    return (yield)\n",
         "as a wrapper"),
    ],
    ids=["missing-dependency", "raises-at-import", "newer-api", "bad-api-range", "no-api",
         "bad-hook-argument", "unknown-hook", "wrapper"],
)
def test_broken_plugin_is_isolated(plugin_site, cli, code, reason):
    _good(plugin_site)
    plugin_site.add("vp-broken", {"brokenplug.py": code}, {"virtplane.hooks": {"broken": "brokenplug"}})
    rc, out, err = cli("plugins", "list", "--json")
    assert rc == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["broken"]["status"] == "failed"
    assert reason in rows["broken"]["reason"]
    # everything else keeps working
    assert rows["goodplug"]["status"] == "loaded"
    assert rows["kvm"]["status"] == "loaded"
    rc, out, _ = cli("plugins", "doctor")
    assert rc == 1
    assert "[FAIL] broken" in out and reason in out
    rc, out, _ = cli("plugins", "list")
    assert rc == 0 and "broken: failed: " in out
    rc, out, _ = cli("config", "show")
    assert rc == 0


def test_broken_plugin_never_breaks_a_vm_operation(plugin_site, manager_factory):
    plugin_site.add("vp-broken", {"brokenplug.py": "raise ImportError('nope')"},
                    {"virtplane.hooks": {"broken": "brokenplug"}})
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.hosts.add("h", "cl", "test:///default")
    assert m.plugins.records["broken"].status == "failed"


def test_broken_driver_is_isolated_and_named(plugin_site, cli, manager_factory):
    plugin_site.add("vp-badarch", {"badarch.py": "class Arch:\n    pass\n"},
                    {"virtplane.architectures": {"mips": "badarch:Arch"}})
    rc, out, _ = cli("plugins", "show", "mips", "--json")
    data = json.loads(out)
    assert data["status"] == "failed" and "declares no VIRTPLANE_PLUGIN_API" in data["reason"]
    m = manager_factory()
    m.datacenters.add("dc")
    from virtplane.errors import PluginError

    with pytest.raises(PluginError, match="architecture driver 'mips' is failed"):
        m.clusters.add("cl", "dc", architecture="mips")
    with pytest.raises(PluginError, match="no architecture driver named 'sparc'.*x86_64"):
        m.clusters.add("cl", "dc", architecture="sparc")


def test_two_distributions_claiming_one_name_both_fail(plugin_site, cli):
    plugin_site.add("vp-a", {"pa.py": GOOD_HOOKS}, {"virtplane.hooks": {"same": "pa"}})
    plugin_site.add("vp-b", {"pb.py": GOOD_HOOKS}, {"virtplane.hooks": {"same": "pb"}})
    rc, out, _ = cli("plugins", "show", "same", "--json")
    data = json.loads(out)
    assert data["status"] == "failed" and "uninstall one" in data["reason"]


def test_only_enabled_plugins_are_imported(plugin_site, xdg, cli):
    import sys

    plugin_site.add("vp-lazy", {"lazyplug.py": GOOD_HOOKS + "\nimport sys\nsys.LAZY_IMPORTED = True\n"},
                    {"virtplane.hooks": {"lazy": "lazyplug"}})
    cfg = xdg["XDG_CONFIG_HOME"] / "virtplane"
    cfg.mkdir()
    (cfg / "virtplane.toml").write_text('[plugins]\ndisabled = ["lazy"]\n')
    rc, out, _ = cli("plugins", "show", "lazy", "--json")
    data = json.loads(out)
    assert data["status"] == "disabled" and "disabled" in data["reason"]
    assert not hasattr(sys, "LAZY_IMPORTED")
    assert "lazyplug" not in sys.modules


def test_enabled_list_and_load_plugins_env(plugin_site, xdg, cli, monkeypatch):
    _good(plugin_site)
    cfg = xdg["XDG_CONFIG_HOME"] / "virtplane"
    cfg.mkdir()
    (cfg / "virtplane.toml").write_text('[plugins]\nenabled = ["kvm", "vp-goodplug"]\n')
    rc, out, _ = cli("plugins", "list", "--json")
    rows = {r["name"]: r["status"] for r in json.loads(out)}
    # enabled by entry name (kvm) or by distribution name (vp-goodplug)
    assert rows["kvm"] == "loaded" and rows["goodplug"] == "loaded"
    assert rows["localfs"] == "disabled" and rows["x86_64"] == "disabled"
    monkeypatch.setenv("VIRTPLANE_LOAD_PLUGINS", "")
    rc, out, _ = cli("plugins", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["core"]["status"] == "loaded"  # the core's own plugin always loads
    assert all(r["status"] == "disabled" for n, r in rows.items() if n != "core")
    assert rows["kvm"]["reason"] == "not in VIRTPLANE_LOAD_PLUGINS"
    monkeypatch.setenv("VIRTPLANE_LOAD_PLUGINS", "goodplug")
    rc, out, _ = cli("plugins", "list", "--json")
    rows = {r["name"]: r["status"] for r in json.loads(out)}
    assert rows["goodplug"] == "loaded" and rows["kvm"] == "disabled"


def test_disable_plugins_env_is_an_escape_hatch(plugin_site, cli, monkeypatch):
    plugin_site.add("vp-broken", {"brokenplug.py": "raise ImportError('nope')"},
                    {"virtplane.hooks": {"broken": "brokenplug"}})
    assert cli("plugins", "doctor")[0] == 1
    monkeypatch.setenv("VIRTPLANE_DISABLE_PLUGINS", "broken")
    rc, out, _ = cli("plugins", "doctor")
    assert rc == 0, out
    assert "[--  ] broken" in out


def test_plugin_settings_are_validated_by_the_plugin_class(xdg, cli, manager_factory):
    cfg = xdg["XDG_CONFIG_HOME"] / "virtplane"
    cfg.mkdir()
    path = cfg / "virtplane.toml"
    path.write_text("[plugin.kvm]\nshutdown_poll_seconds = 0.5\n")
    m = manager_factory()
    assert m.plugins.records["kvm"].settings.shutdown_poll_seconds == 0.5
    path.write_text("[plugin.kvm]\nshutdown_pol_seconds = 0.5\n")
    rc, out, _ = cli("plugins", "show", "kvm", "--json")
    reason = json.loads(out)["reason"]
    assert str(path) in reason and "plugin.kvm.shutdown_pol_seconds" in reason
    assert ("allowed keys: connect_timeout, keepalive_interval, shutdown_poll_seconds, "
            "test_driver_files") in reason
    path.write_text("[plugin.kvm]\nshutdown_poll_seconds = -1\n")
    rc, out, _ = cli("plugins", "show", "kvm", "--json")
    reason = json.loads(out)["reason"]
    assert str(path) in reason and "shutdown_poll_seconds" in reason and "> 0" in reason
    path.write_text("[plugin.kvm]\nshutdown_poll_seconds = 'soon'\n")
    rc, out, _ = cli("plugins", "show", "kvm", "--json")
    reason = json.loads(out)["reason"]
    assert "shutdown_poll_seconds" in reason and "soon" in reason
    # the other plugins are untouched
    rc, out, _ = cli("plugins", "show", "localfs", "--json")
    assert json.loads(out)["status"] == "loaded"


def test_settings_for_a_plugin_without_settings_or_not_installed(xdg, cli):
    cfg = xdg["XDG_CONFIG_HOME"] / "virtplane"
    cfg.mkdir()
    (cfg / "virtplane.toml").write_text("[plugin.localfs]\nx = 1\n[plugin.ghost]\ny = 2\n")
    rc, out, _ = cli("plugins", "doctor")
    assert rc == 1
    assert "[plugin.localfs] is set, but this plugin takes no settings" in out
    assert "config has [plugin.ghost] but no plugin named 'ghost' is installed" in out


def test_plugins_show_unknown_name(cli):
    rc, out, err = cli("plugins", "show", "nope")
    assert rc == 1 and "no plugin named 'nope'" in err and "kvm" in err


def test_manager_plugin_finds_one_record_or_names_the_installed_ones(manager_factory):
    from virtplane.errors import NotFound

    m = manager_factory()
    assert m.plugin("kvm") is next(r for r in m.plugin_records() if r.name == "kvm")
    with pytest.raises(NotFound, match=r"no plugin named 'nope' \(installed: .*kvm"):
        m.plugin("nope")


def test_the_cli_uses_the_public_api_only(xdg, cli, monkeypatch):
    """The CLI reads plugins through ``Manager.plugin``/``plugin_records``, never the
    registry (``m.plugins``) or the store below the services (``m.store``)."""
    import virtplane.cli
    from virtplane.manager import Manager

    for path in Path(virtplane.cli.__file__).parent.glob("*.py"):
        text = path.read_text()
        for reach in ("m.plugins", "m.store", "m.context", "m.hooks."):
            assert not re.search(rf"\b{re.escape(reach)}\b", text), f"{path.name}: {reach}"

    def forbidden(self):
        raise AssertionError("the CLI reached into Manager.plugins")

    monkeypatch.setattr(Manager, "plugins", property(forbidden))
    rc, out, _ = cli("plugins", "show", "kvm", "--json")
    assert rc == 0 and json.loads(out)["name"] == "kvm"
    rc, _, err = cli("plugins", "show", "nope")
    assert rc == 1 and "no plugin named 'nope' (installed: " in err
    cfg = xdg["XDG_CONFIG_HOME"] / "virtplane"
    cfg.mkdir()
    (cfg / "virtplane.toml").write_text("[plugin.ghost]\ny = 2\n")
    rc, out, _ = cli("plugins", "doctor")
    assert rc == 1 and "[ok  ] kvm" in out
    assert "config has [plugin.ghost] but no plugin named 'ghost' is installed" in out


def test_public_plugins_package_and_the_old_module_names_are_the_same_objects():
    import virtplane._compat
    import virtplane._discovery
    import virtplane._hookrunner
    import virtplane._plugins
    import virtplane.plugins as plugins
    from virtplane.plugins import _compat, _discovery, _kinds

    assert virtplane._plugins.PluginRecord is plugins.PluginRecord
    assert virtplane._plugins.PluginRegistry is plugins.PluginRegistry
    assert virtplane._plugins.KIND_GROUPS is _kinds.KIND_GROUPS
    assert virtplane._hookrunner.HookRunner is plugins.HookRunner
    assert virtplane._hookrunner.fails_operation is plugins.fails_operation
    assert virtplane._compat.deprecated_uses is _compat.deprecated_uses
    assert virtplane._discovery.entry_points is _discovery.entry_points
    # the entry-point groups are listed once
    assert _discovery.GROUPS == tuple(_kinds.KIND_GROUPS.values())
    assert sorted(plugins.__all__) == sorted(n for n in plugins.__all__ if hasattr(plugins, n))


def test_plugin_records_are_read_only_once_loaded(plugin_site, manager_factory):
    _good(plugin_site)
    m = manager_factory()
    rec = m.plugins.records["goodplug"]
    with pytest.raises(AttributeError, match="plugin record 'goodplug': status is read-only "
                                             "once plugins are loaded"):
        rec.status = "failed"
    assert rec.status == "loaded"
    assert m.plugins.records["core"].load_settings(m.config) is None  # caching still works
