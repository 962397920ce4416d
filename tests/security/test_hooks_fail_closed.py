"""Hooks fail closed: a broken hook plugin that matters refuses VM operations, and says so.

Before: a typo in ``[plugin.hook_scripts]`` failed the plugin, every hook script
was skipped, a vetoing ``before_vm_start`` script was never run and the VM
started; no command warned.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from virtplane import model
from virtplane.errors import PluginError

VETO = "import sys\nsys.stderr.write('vetoed by policy')\nsys.exit(1)\n"


@pytest.fixture
def vetoing(hooks):
    hooks.add("before_vm_start", "10_veto", VETO)
    return hooks


def _setup(m) -> None:
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.hosts.add("h", "cl", "test:///default")


def test_a_typo_in_the_hook_scripts_table_refuses_starts(vetoing, plugin_config,
                                                        manager_factory):
    plugin_config("timeout_secnds = 5\n")  # typo: the plugin fails to load
    m = manager_factory()
    rec = m.plugins.records["hook_scripts"]
    assert rec.status == "failed"
    _setup(m)
    with pytest.raises(PluginError) as info:
        m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "cl")
    message = str(info.value)
    assert "refusing to accept VM 'vm1'" in message
    assert "hook plugin 'hook_scripts'" in message and "timeout_secnds" in message
    assert '[plugins] disabled = ["hook_scripts"]' in message
    assert m.vms.list() == []


def test_a_vm_made_before_the_typo_does_not_start(vetoing, plugin_config, manager_factory,
                                                   tmp_path):
    m = manager_factory()
    _setup(m)
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "cl")
    with pytest.raises(Exception, match="vetoed by policy"):
        m.vms.start("vm1")  # the script runs: it vetoes
    m.close()
    plugin_config("timeout_secnds = 5\n")
    broken = manager_factory()
    with pytest.raises(PluginError, match="refusing to start VM 'vm1'.*hook_scripts"):
        broken.vms.start("vm1")
    vm = broken.vms.get("vm1")
    assert vm.status == model.VmStatus.DOWN and vm.host_id is None


def test_operations_through_the_skeleton_are_refused_too(hooks, plugin_config,
                                                        manager_factory):
    m = manager_factory()
    _setup(m)
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "cl")
    m.vms.start("vm1")  # m stays open: the test driver forgets VMs with its last connection
    hooks.add("before_vm_pause", "10_noop", "pass\n")
    plugin_config("run_dri = '/x'\n")
    broken = manager_factory()
    with pytest.raises(PluginError, match="refusing to pause VM 'vm1'"):
        broken.vms.pause("vm1")
    assert broken.vms.get("vm1").status == model.VmStatus.UP
    broken.vms.destroy("vm1")  # stopping is never refused: it vetoes nothing


def test_a_configured_plugin_blocks_even_without_scripts(plugin_config, manager_factory):
    plugin_config("timeout_seconds = -1\n")  # invalid value
    m = manager_factory()
    _setup(m)
    with pytest.raises(PluginError, match="it is configured"):
        m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "cl")


def _broken_hook_plugin(plugin_site) -> None:
    plugin_site.add("vp-broken-hooks", {"vp_broken_hooks.py": "raise ImportError('gone')\n"},
                    {"virtplane.hooks": {"broken_hooks": "vp_broken_hooks"}})


def test_an_unrelated_failed_plugin_blocks_nothing(plugin_site, manager_factory):
    """A failed hook plugin nobody configured, on a host without hook scripts, and a failed
    storage driver: reported, but VMs run."""
    _broken_hook_plugin(plugin_site)
    plugin_site.add("vp-broken-storage", {"vp_broken_storage.py": "raise ImportError('x')\n"},
                    {"virtplane.storage": {"brokenfs": "vp_broken_storage:Driver"}})
    m = manager_factory()
    assert m.plugins.records["broken_hooks"].status == "failed"
    assert m.plugins.records["brokenfs"].status == "failed"
    assert m.warnings == []
    _setup(m)
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "cl")
    m.vms.start("vm1")
    m.vms.destroy("vm1")


def test_any_failed_hook_plugin_blocks_where_scripts_are_installed(plugin_site, hooks,
                                                                    manager_factory):
    _broken_hook_plugin(plugin_site)
    hooks.add("after_vm_start", "50_report", "pass\n")
    m = manager_factory()
    _setup(m)
    with pytest.raises(PluginError, match="broken_hooks.*hook scripts are installed "
                                          r"\(after_vm_start/50_report\)"):
        m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "cl")


def test_disabling_the_broken_plugin_is_the_way_out(vetoing, xdg, manager_factory):
    folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "virtplane.toml").write_text(
        '[plugins]\ndisabled = ["hook_scripts"]\n[plugin.hook_scripts]\ntimeout_secnds = 5\n')
    m = manager_factory()
    assert m.plugins.records["hook_scripts"].status == "disabled"
    assert m.warnings == []
    _setup(m)
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "cl")
    m.vms.start("vm1")  # the administrator chose to run without the scripts
    m.vms.destroy("vm1")


def test_every_command_warns_on_stderr(vetoing, plugin_config, xdg, tmp_path):
    plugin_config("timeout_secnds = 5\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTPLANE_")}
    env["VIRTPLANE_DIRECT"] = "1"
    for argv in (["dc", "list"], ["vm", "list"]):
        run = subprocess.run([sys.executable, "-m", "virtplane.cli", "--state",
                              str(tmp_path / "s.db"), *argv], env=env, capture_output=True,
                             text=True, timeout=60, check=False)
        assert run.returncode == 0, run.stderr
        assert "virtplane: warning: hook plugin 'hook_scripts'" in run.stderr
        assert "VM operations are refused" in run.stderr
        assert "Traceback" not in run.stderr
