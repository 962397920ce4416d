"""``configure_plugin``: each plugin gets its configuration when it is activated, before
any other hook runs; a raising implementation fails that plugin alone, naming it."""

from __future__ import annotations

import json
import logging
import types

import pytest

from virtplane import PLUGIN_API_VERSION, config, hookimpl
from virtplane.errors import HookError
from virtplane.plugins import DaemonContext, PluginRegistry

#: records what happens, in order: ("configure", vm_interval, own status) / ("start",)
CONFIGURED = """
from virtplane import hookimpl
VIRTPLANE_PLUGIN_API = ">=2.0,<3"
CALLS = []

@hookimpl
def configure_plugin(context):
    CALLS.append(("configure", context.config.values["engine"]["vm_interval"],
                  context.plugins["configured"].status, context.plugin_api))

@hookimpl(tryfirst=True)
def before_vdsm_start(context):
    CALLS.append(("start",))
"""

BROKEN = """
from virtplane import hookimpl
VIRTPLANE_PLUGIN_API = ">=2.0,<3"

@hookimpl
def configure_plugin(context):
    raise RuntimeError(f"no licence for vm_interval {context.config.values['engine']['vm_interval']}")

@hookimpl
def extend_host_capabilities(host, caps):
    caps["broken"] = "ran"
"""

GOOD = """
from virtplane import hookimpl
VIRTPLANE_PLUGIN_API = ">=2.0,<3"

@hookimpl
def extend_host_capabilities(host, caps):
    caps["good"] = "ran"
"""

#: what a plugin scaffolded for plugin API 1.x looks like: no configure_plugin
LEGACY = """
from virtplane import hookimpl
VIRTPLANE_PLUGIN_API = ">=1.0,<2"

@hookimpl
def extend_host_capabilities(host, caps):
    caps["legacy"] = "ran"
"""

REASON = ("hook configure_plugin of plugin 'broken' failed: RuntimeError: no licence for "
          "vm_interval")


@pytest.fixture
def interval(xdg):
    """``[engine] vm_interval = 42.0`` in the test's configuration."""
    folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "virtplane.toml").write_text("[engine]\nvm_interval = 42.0\n")
    return 42.0


def _add(site, name, code):
    site.add(f"vp-{name}", {f"{name}.py": code}, {"virtplane.hooks": {name: name}})


def test_configured_once_at_load_before_any_before_vdsm_start(plugin_site, manager_factory,
                                                              interval):
    _add(plugin_site, "configured", CONFIGURED)
    m = manager_factory()
    import configured

    # configured once, with the loaded configuration, already counted as loaded; then
    # the Manager's start-up hook (tryfirst: the first before_vdsm_start of all)
    assert configured.CALLS == [("configure", interval, "loaded", PLUGIN_API_VERSION),
                                ("start",)]
    assert m.plugins.records["configured"].hooks == ["before_vdsm_start", "configure_plugin"]


def test_an_embedder_that_never_fires_before_vdsm_start_gets_configured_plugins(
        plugin_site, interval):
    _add(plugin_site, "configured", CONFIGURED)
    registry = PluginRegistry(config.load())
    registry.load()
    import configured

    assert configured.CALLS == [("configure", interval, "loaded", PLUGIN_API_VERSION)]


def test_a_raising_configure_fails_that_plugin_alone_naming_it(plugin_site, manager_factory,
                                                               interval, caplog):
    _add(plugin_site, "broken", BROKEN)
    _add(plugin_site, "good", GOOD)
    with caplog.at_level(logging.WARNING, logger="virtplane.plugins"):
        m = manager_factory()
    rec = m.plugins.records["broken"]
    assert rec.status == "failed" and rec.reason == f"{REASON} {interval}"
    assert rec.objects == {}
    with pytest.raises(AttributeError, match="read-only"):
        rec.status = "loaded"  # still sealed
    assert [r.getMessage() for r in caplog.records if r.name == "virtplane.plugins"] == [
        f"virtplane: warning: plugin 'broken' is not used: {REASON} {interval}"]
    # its hooks are gone; every other plugin keeps working
    assert m.plugins.pm.get_plugin("broken") is None
    caps: dict = {}
    m.hooks.fire("extend_host_capabilities", host=None, caps=caps)
    assert caps["good"] == "ran" and "broken" not in caps
    assert m.plugins.records["good"].status == "loaded"


def test_a_raising_configure_is_an_error_line_in_the_cli_not_a_traceback(plugin_site, cli):
    _add(plugin_site, "broken", BROKEN)
    rc, out, err = cli("dc", "list")
    assert rc == 0 and "Traceback" not in err, err
    rc, out, err = cli("plugins", "show", "broken", "--json")
    assert "Traceback" not in err, err
    data = json.loads(out)
    assert data["status"] == "failed" and data["reason"].startswith(REASON)


def test_a_broken_hook_plugin_on_a_host_with_scripts_blocks_vm_operations(
        plugin_site, manager_factory, hooks):
    hooks.add("before_vm_start", "10_noop", "pass\n")
    _add(plugin_site, "broken", BROKEN)
    m = manager_factory()
    (line,) = [w for w in m.warnings if "'broken'" in w]
    assert REASON in line and "VM operations are refused" in line


def test_a_plugin_added_later_is_configured_as_it_is_added(manager_factory):
    m = manager_factory()
    seen: list[DaemonContext] = []
    late = types.ModuleType("late")
    late.configure_plugin = hookimpl(lambda context: seen.append(context))  # type: ignore[attr-defined]
    assert m.plugins.register(late, name="late") == "late"
    (context,) = seen
    assert context.config is m.config and context.plugin_api == PLUGIN_API_VERSION
    assert "hook_scripts" in context.plugins
    assert m.plugins.pm.get_plugin("late") is late
    # straight on the pluggy manager it bypasses the registry: not configured
    raw = types.ModuleType("raw")
    raw.configure_plugin = hookimpl(lambda context: seen.append(context))  # type: ignore[attr-defined]
    m.plugins.pm.register(raw, name="raw")
    assert len(seen) == 1


def test_a_plugin_added_later_whose_configure_raises_is_refused(manager_factory):
    m = manager_factory()

    def configure_plugin(context):
        raise ValueError("missing [plugin.late] key")

    late = types.ModuleType("late")
    late.configure_plugin = hookimpl(configure_plugin)  # type: ignore[attr-defined]
    with pytest.raises(HookError, match=r"^hook configure_plugin of plugin 'late' failed: "
                                        r"ValueError: missing \[plugin.late\] key$"):
        m.plugins.register(late, name="late")
    assert m.plugins.pm.get_plugin("late") is None


def test_a_1x_plugin_without_the_hook_still_loads(plugin_site, manager_factory):
    _add(plugin_site, "legacy", LEGACY)
    with pytest.warns(DeprecationWarning, match="runs through the 1.x adapter"):
        m = manager_factory()
    rec = m.plugins.records["legacy"]
    assert rec.status == "loaded" and rec.adapter == "1.x", rec.reason
    caps: dict = {}
    m.hooks.fire("extend_host_capabilities", host=None, caps=caps)
    assert caps["legacy"] == "ran"
