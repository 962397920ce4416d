"""Every hook spec is documented in docs/ and called by a test, with VDSM semantics."""

from __future__ import annotations

import inspect
import subprocess
import sys
import types
from pathlib import Path

import pytest

from virtplane import _hookrunner, hookimpl, hookspecs
from virtplane._plugins import new_plugin_manager
from virtplane.errors import HookError, HookVeto
from virtplane.payloads import JsonPayload, XmlPayload

ROOT = Path(__file__).resolve().parents[2]
SPECS = [n for n, f in vars(hookspecs).items()
         if inspect.isfunction(f) and hasattr(f, "virtplane_spec")]

VDSM_POINTS = """before_vm_start after_vm_start before_vm_cont after_vm_cont before_vm_pause
after_vm_pause before_vm_hibernate after_vm_hibernate before_vm_dehibernate after_vm_dehibernate
before_vm_migrate_source after_vm_migrate_source before_vm_migrate_destination
after_vm_migrate_destination before_vm_destroy after_vm_destroy before_vm_set_ticket
after_vm_set_ticket before_device_create after_device_create before_device_destroy
after_device_destroy before_device_migrate_source after_device_migrate_source
before_device_migrate_destination after_device_migrate_destination before_update_device
after_update_device after_update_device_fail before_nic_hotplug after_nic_hotplug
after_nic_hotplug_fail before_nic_hotunplug after_nic_hotunplug after_nic_hotunplug_fail
before_disk_hotplug after_disk_hotplug before_disk_hotunplug after_disk_hotunplug
before_memory_hotplug after_memory_hotplug before_set_num_of_cpus after_set_num_of_cpus
after_disk_prepare before_vdsm_start after_vdsm_stop before_network_setup after_network_setup
after_network_setup_fail before_get_vm_stats after_get_vm_stats before_get_all_vm_stats
after_get_all_vm_stats before_get_caps after_get_caps before_get_stats after_get_stats
after_hostdev_list_by_caps""".split()


def test_all_58_vdsm_hook_points_are_specified():
    assert len(VDSM_POINTS) == 58
    assert set(VDSM_POINTS) <= set(SPECS)


def test_docs_hooks_md_is_generated_from_the_specs():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_hook_docs.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", SPECS)
def test_hook_is_documented(name):
    doc = (ROOT / "docs" / "hooks.md").read_text()
    args = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    assert f"## `{name}({args})`" in doc
    assert inspect.getdoc(getattr(hookspecs, name)), f"{name} has no docstring"


def _kwargs(name):
    """Arguments for a spec, with real payload objects."""
    out = {}
    for arg in inspect.signature(getattr(hookspecs, name)).parameters:
        out[arg] = {
            "domxml": XmlPayload("<domain><name>v</name></domain>"),
            "devxml": XmlPayload("<disk type='file'/>"),
            "payload": JsonPayload({"k": 1}),
            "caps": {},
            "features": {"live_migration": True},
            "params": {"protocol": "vnc"},
            "from_snapshot": False,
            "vcpus": 2,
        }.get(arg, object() if arg not in ("error", "reason", "destination", "source",
                                           "arch", "compat_version") else "x")
    return out


def _plugin(name, body):
    mod = types.ModuleType(f"rec_{name}")
    args = list(inspect.signature(getattr(hookspecs, name)).parameters)
    src = f"def {name}({', '.join(args)}):\n    return BODY({', '.join(args)})\n"
    ns: dict = {"BODY": body}
    exec(src, ns)
    setattr(mod, name, hookimpl(ns[name]))
    return mod


@pytest.mark.parametrize("name", SPECS)
def test_hook_is_called_and_can_change_its_payload(name):
    pm = new_plugin_manager()
    seen = []

    def body(*args):
        seen.append(args)
        for a in args:
            if isinstance(a, XmlPayload):
                a.xml = a.xml.replace("/>", " changed='1'/>", 1) if "/>" in a.xml else a.xml + " "
            elif isinstance(a, JsonPayload):
                a.data = {"changed": True}
            elif isinstance(a, dict) and name != "validate_vm_spec":
                a["changed"] = True
        return ["a violation"] if name.startswith("validate_") else None

    pm.register(_plugin(name, body), name="recorder")
    runner = _hookrunner.HookRunner(pm)
    kwargs = _kwargs(name)
    before = {k: (v.xml if isinstance(v, XmlPayload) else None) for k, v in kwargs.items()}
    if name.startswith("validate_"):
        assert runner.collect(name, **kwargs) == [("recorder", "a violation")]
    else:
        runner.fire(name, **kwargs)
    assert len(seen) == 1
    for k, v in kwargs.items():
        if isinstance(v, XmlPayload):
            assert v.xml != before[k]
        if isinstance(v, JsonPayload):
            assert v.data == {"changed": True}


@pytest.mark.parametrize("name", SPECS)
def test_hook_failure_follows_the_points_rule(name):
    pm = new_plugin_manager()
    calls = []

    def veto(*args):
        raise HookVeto("not today")

    def later(*args):
        calls.append("later")
        return None

    # registered first = called last
    pm.register(_plugin(name, later), name="later")
    pm.register(_plugin(name, veto), name="vetoer")
    runner = _hookrunner.HookRunner(pm)
    if name.startswith("validate_"):
        out = runner.collect(name, **_kwargs(name))
        assert out[0][0] == "vetoer" and "validator crashed" in out[0][1]
        return
    errors: list[HookError] = []
    if _hookrunner.fails_operation(name):
        with pytest.raises(HookError, match=f"hook {name} of plugin 'vetoer' failed: not today"):
            runner.fire(name, on_error=errors.append, **_kwargs(name))
        assert calls == []
    else:
        runner.fire(name, on_error=errors.append, **_kwargs(name))
        assert [e.plugin for e in errors] == ["vetoer"] and calls == ["later"]


def test_vdsm_raise_rules():
    assert _hookrunner.fails_operation("before_vm_start")
    assert _hookrunner.fails_operation("before_get_caps")
    assert _hookrunner.fails_operation("after_disk_prepare")
    assert not _hookrunner.fails_operation("before_vm_destroy")
    assert not _hookrunner.fails_operation("before_vm_set_ticket")
    assert not _hookrunner.fails_operation("before_vdsm_start")
    assert not _hookrunner.fails_operation("after_vm_start")


def test_order_tryfirst_last_registered_trylast():
    pm = new_plugin_manager()
    order = []

    def mk(tag, **opts):
        mod = types.ModuleType(tag)

        def after_vm_start(vm, domxml):
            order.append(tag)
        mod.after_vm_start = hookimpl(**opts)(after_vm_start) if opts else hookimpl(after_vm_start)
        return mod

    pm.register(mk("first-registered"), name="a")
    pm.register(mk("late", trylast=True), name="b")
    pm.register(mk("second-registered"), name="c")
    pm.register(mk("early", tryfirst=True), name="d")
    runner = _hookrunner.HookRunner(pm)
    runner.fire("after_vm_start", vm=None, domxml=XmlPayload(""))
    assert order == ["early", "second-registered", "first-registered", "late"]
    assert runner.implemented("after_vm_start") == ["d", "c", "a", "b"]


def test_trace_prints_each_call(capsys):
    pm = new_plugin_manager()
    pm.register(_plugin("after_vm_pause", lambda *a: None), name="tracer")
    _hookrunner.HookRunner(pm, trace=True).fire("after_vm_pause", **_kwargs("after_vm_pause"))
    assert "virtplane hook after_vm_pause -> tracer" in capsys.readouterr().err
