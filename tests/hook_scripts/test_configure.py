"""The hook-scripts plugin gets virtplane's configuration from ``configure_plugin``, when
it is activated: scripts see it (``vdsm.config``) whether or not ``before_vdsm_start``
fired yet, or ever does."""

from __future__ import annotations

import pytest

from virtplane import config, model
from virtplane.payloads import JsonPayload
from virtplane.plugins import HookRunner, PluginRegistry

#: a JSON-point script that answers with what ``vdsm.config`` says
SAMPLE_INTERVAL = """
import hooking
from vdsm.config import config
hooking.write_json({'vm_sample_interval': config.getint('vars', 'vm_sample_interval'),
                    'host_sample_stats_interval':
                        config.getint('vars', 'host_sample_stats_interval')})
"""
WANT = {"vm_sample_interval": 42, "host_sample_stats_interval": 7}


@pytest.fixture
def intervals(xdg):
    """``[engine]`` intervals in the test's configuration (VDSM's sample intervals)."""
    folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "virtplane.toml").write_text("[engine]\nvm_interval = 42.0\n"
                                           "host_interval = 7.4\n")


def test_scripts_see_the_configuration_in_an_embedder_that_never_fires_before_vdsm_start(
        hooks, intervals):
    hooks.add("after_get_caps", "10_intervals", SAMPLE_INTERVAL)
    registry = PluginRegistry(config.load())
    registry.load()
    assert registry.records["hook_scripts"].status == "loaded"
    payload = JsonPayload({})
    host = model.Host(name="h", cluster_id="c", driver="kvm", uri="test:///default")
    HookRunner(registry.pm).fire("after_get_caps", host=host, payload=payload)
    assert payload.data == WANT


def test_scripts_see_the_configuration_before_any_before_vdsm_start(
        hooks, intervals, plugin_site, manager_factory):
    """The first ``before_vdsm_start`` of all (``tryfirst``) runs a script through the
    hook-scripts plugin: the plugin has its configuration already."""
    hooks.add("after_get_caps", "10_intervals", SAMPLE_INTERVAL)
    plugin_site.add("vp-early", {"early.py": """
        from virtplane import hookimpl
        from virtplane.payloads import JsonPayload
        VIRTPLANE_PLUGIN_API = ">=2.0,<3"
        SEEN = []

        @hookimpl(tryfirst=True)
        def before_vdsm_start(context):
            scripts = context.plugins["hook_scripts"].objects["hooks_instance"]
            payload = JsonPayload({})
            scripts.run("after_get_caps", payload=payload)
            SEEN.append(payload.data)
    """}, {"virtplane.hooks": {"early": "early"}})
    m = manager_factory()
    import early

    assert m.plugins.records["early"].status == "loaded"
    assert early.SEEN == [WANT]


def test_before_vdsm_start_scripts_still_run_at_open_with_the_configuration(
        hooks, intervals, manager_factory, tmp_path):
    out = tmp_path / "started.txt"
    hooks.add("before_vdsm_start", "10_started", f"""
from vdsm.config import config
with open({str(out)!r}, 'w') as f:
    f.write(str(config.getint('vars', 'vm_sample_interval')))
""")
    m = manager_factory()
    assert out.read_text() == "42"
    assert "hook_scripts" in m.hooks.implemented("before_vdsm_start")


def test_no_script_no_before_vdsm_start_call(manager_factory):
    """Without a ``before_vdsm_start`` script the plugin has nothing to do at open (it
    no longer needs the point to learn the configuration)."""
    m = manager_factory()
    assert "hook_scripts" not in m.hooks.implemented("before_vdsm_start")
    assert "hook_scripts" in m.hooks.implemented("configure_plugin")


def test_a_plugin_instance_added_later_is_configured(hooks, intervals, manager_factory):
    """An embedder adding its own instance of the plugin after opening gets it configured."""
    from virtplane_hook_scripts import HookScripts

    hooks.add("after_get_caps", "10_intervals", SAMPLE_INTERVAL)
    m = manager_factory()
    m.plugins.pm.unregister(name="hook_scripts")
    mine = HookScripts()
    m.plugins.register(mine, name="hook_scripts")
    payload = JsonPayload({})
    m.hooks.fire("after_get_caps", host=None, payload=payload)
    assert payload.data == WANT
