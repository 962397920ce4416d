"""Every hook spec declares its policy, is documented in docs/ and called by a test,
with VDSM semantics."""

from __future__ import annotations

import inspect
import logging
import re
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pluggy
import pytest

from virtplane import PLUGIN_API_VERSION, config, hookimpl, hookspecs
from virtplane.errors import HookError, HookVeto
from virtplane.hookspecs import Policy
from virtplane.payloads import JsonPayload, XmlPayload
from virtplane.plugins import DaemonContext, HookRunner, fails_operation, new_plugin_manager
from virtplane.plugins.hooks import TRACE_LOGGER, enable_trace

ROOT = Path(__file__).resolve().parents[2]
SPECS = list(hookspecs.specs())

#: The specs nothing in the core fires yet (docs show them as reserved).
RESERVED = {"before_network_setup", "after_network_setup", "after_network_setup_fail",
            "after_hostdev_list_by_caps"}


#: Specs added after plugin API 2.0 (no 1.x name rule to keep) -> their declared policy.
ADDED_SINCE_2_0 = {"configure_plugin": Policy.FAIL}


def _rule_of_1x(point):
    """Plugin API 1.x decided the policy from the name; 2.0 must keep every outcome."""
    if point in ADDED_SINCE_2_0:
        return ADDED_SINCE_2_0[point]
    if point.startswith("validate_"):
        return Policy.COLLECT
    if point.startswith("before_"):
        return (Policy.LOG if point in {"before_vm_destroy", "before_vm_set_ticket",
                                        "before_vdsm_start"} else Policy.FAIL)
    return Policy.FAIL if point in {"after_disk_prepare", "adjust_domain_xml"} else Policy.LOG

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


@pytest.mark.parametrize("name", SPECS)
def test_spec_declares_its_policy_as_1x_behaved(name):
    options = getattr(hookspecs.specs()[name], hookspecs.OPTIONS_ATTR)
    assert isinstance(options.policy, Policy)
    assert hookspecs.policy_of(name) is _rule_of_1x(name)
    assert fails_operation(name) is (_rule_of_1x(name) is Policy.FAIL)


def test_specs_lists_every_marked_function_in_declaration_order():
    assert SPECS[0] == "before_vm_start" and len(SPECS) == 70
    assert all(hasattr(hookspecs.specs()[n], "virtplane_spec") for n in SPECS)
    assert "hookspec" not in SPECS and "Policy" not in SPECS


def test_reserved_specs_are_the_ones_nothing_fires():
    assert {n for n in SPECS if hookspecs.options_of(n).reserved} == RESERVED
    core = ROOT / "core" / "src" / "virtplane"
    for path in core.rglob("*.py"):
        if path.name == "hookspecs.py":
            continue
        text = path.read_text()
        for name in RESERVED:
            assert f'"{name}"' not in text, (
                f"{path} names {name}: if the core fires it now, drop reserved=True from "
                "its spec (and regenerate docs/hooks.md)")


def test_a_spec_without_a_policy_is_refused():
    def before_teleport(vm):
        """Not a hook."""

    with pytest.raises(TypeError, match=r"before_teleport: declare the failure policy, e\.g\. "
                                        r"@hookspec\(policy=Policy\.FAIL\); allowed policies: "
                                        "FAIL, LOG, COLLECT"):
        hookspecs.hookspec(before_teleport)
    with pytest.raises(TypeError, match="a hook spec: declare the failure policy"):
        hookspecs.hookspec(reserved=True)
    with pytest.raises(KeyError, match="no hook spec named 'before_teleport'"):
        hookspecs.policy_of("before_teleport")


def test_declared_spec_is_a_real_pluggy_spec():
    mod = types.ModuleType("extra_specs")

    def before_teleport(vm):
        """A spec declared the project's way."""

    mod.before_teleport = hookspecs.hookspec(policy=Policy.FAIL, reserved=True)(before_teleport)
    pm = pluggy.PluginManager("virtplane")
    pm.add_hookspecs(mod)
    assert pm.hook.before_teleport.spec.argnames == ("vm",)
    assert mod.before_teleport.virtplane_hook == hookspecs.SpecOptions(Policy.FAIL, True)


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
    for arg in inspect.signature(hookspecs.specs()[name]).parameters:
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
    """A plugin implementing ``name`` with every argument but the deprecated ones."""
    mod = types.ModuleType(f"rec_{name}")
    gone = hookspecs.DEPRECATED_ARGUMENTS.get(name, {})
    args = [a for a in inspect.signature(hookspecs.specs()[name]).parameters if a not in gone]
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
    runner = HookRunner(pm)
    kwargs = _kwargs(name)
    before = {k: (v.xml if isinstance(v, XmlPayload) else None) for k, v in kwargs.items()}
    if hookspecs.policy_of(name) is Policy.COLLECT:
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
    runner = HookRunner(pm)
    if hookspecs.policy_of(name) is Policy.COLLECT:
        out = runner.collect(name, **_kwargs(name))
        assert out[0][0] == "vetoer" and "validator crashed" in out[0][1]
        return
    errors: list[HookError] = []
    if fails_operation(name):
        with pytest.raises(HookError, match=f"hook {name} of plugin 'vetoer' failed: not today"):
            runner.fire(name, on_error=errors.append, **_kwargs(name))
        assert calls == []
    else:
        runner.fire(name, on_error=errors.append, **_kwargs(name))
        assert [e.plugin for e in errors] == ["vetoer"] and calls == ["later"]


def test_vdsm_raise_rules():
    assert fails_operation("before_vm_start")
    assert fails_operation("before_get_caps")
    assert fails_operation("after_disk_prepare")
    assert not fails_operation("before_vm_destroy")
    assert not fails_operation("before_vm_set_ticket")
    assert not fails_operation("before_vdsm_start")
    assert not fails_operation("after_vm_start")
    assert not fails_operation("validate_vm_spec")


def test_fire_and_collect_refuse_the_other_kind_of_point():
    runner = HookRunner(new_plugin_manager())
    with pytest.raises(ValueError, match=r"validate_vm_spec is a validator \(Policy.COLLECT\); "
                                         r"run it with HookRunner.collect\(\)"):
        runner.fire("validate_vm_spec", spec=None, cluster=None)
    with pytest.raises(ValueError, match=r"after_vm_start is not a validator \(its spec "
                                         r"declares Policy.LOG\); run it with HookRunner.fire"):
        runner.collect("after_vm_start", vm=None, domxml=XmlPayload(""))


def test_firing_without_an_argument_a_plugin_takes_is_the_cores_error():
    pm = new_plugin_manager()
    pm.register(_plugin("after_vm_pause", lambda *a: None), name="p")
    with pytest.raises(TypeError, match="hook after_vm_pause was fired without argument "
                                        "'domxml', which plugin 'p' takes; got: vm"):
        HookRunner(pm).fire("after_vm_pause", vm=None)


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
    runner = HookRunner(pm)
    runner.fire("after_vm_start", vm=None, domxml=XmlPayload(""))
    assert order == ["early", "second-registered", "first-registered", "late"]
    assert runner.implemented("after_vm_start") == ["d", "c", "a", "b"]


@pytest.fixture
def trace_off():
    """Leave the ``virtplane.hooks`` logger as the test found it."""
    log = logging.getLogger(TRACE_LOGGER)
    handlers, level = list(log.handlers), log.level
    yield
    log.handlers[:] = handlers
    log.setLevel(level)


def test_trace_logs_each_call_to_stderr(capsys, trace_off):
    pm = new_plugin_manager()
    pm.register(_plugin("after_vm_pause", lambda *a: None), name="tracer")
    runner = HookRunner(pm, trace=True)
    runner.fire("after_vm_pause", **_kwargs("after_vm_pause"))
    assert "virtplane hook after_vm_pause -> tracer" in capsys.readouterr().err
    assert enable_trace()() is None  # already on: a second switch changes nothing
    runner.fire("after_vm_pause", **_kwargs("after_vm_pause"))
    assert capsys.readouterr().err.count("after_vm_pause -> tracer") == 1


def test_calls_go_to_the_hooks_logger_without_printing(capsys, caplog, trace_off):
    pm = new_plugin_manager()
    pm.register(_plugin("after_vm_pause", lambda *a: None), name="quiet")
    with caplog.at_level(logging.DEBUG, logger=TRACE_LOGGER):
        HookRunner(pm).fire("after_vm_pause", **_kwargs("after_vm_pause"))
    assert [r.getMessage() for r in caplog.records] == ["virtplane hook after_vm_pause -> quiet"]
    assert capsys.readouterr().err == ""


def test_monitor_sees_each_call_and_its_failure_and_can_be_removed():
    pm = new_plugin_manager()
    pm.register(_plugin("after_vm_pause", lambda *a: None), name="fine")
    pm.register(_plugin("after_vm_pause", lambda *a: 1 / 0), name="broken")
    runner = HookRunner(pm)
    seen = []
    undo = runner.add_monitor(lambda point, plugin, kwargs: seen.append(("before", plugin)),
                              lambda point, plugin, exc: seen.append(
                                  ("after", plugin, type(exc).__name__ if exc else None)))
    errors: list[HookError] = []
    runner.fire("after_vm_pause", on_error=errors.append, **_kwargs("after_vm_pause"))
    assert seen == [("before", "broken"), ("after", "broken", "ZeroDivisionError"),
                    ("before", "fine"), ("after", "fine", None)]
    assert [e.plugin for e in errors] == ["broken"]
    undo()
    runner.fire("after_vm_pause", on_error=errors.append, **_kwargs("after_vm_pause"))
    assert len(seen) == 4


def test_impls_is_public_and_skips_plugins_with_nothing_to_do():
    pm = new_plugin_manager()

    class Idle:
        @hookimpl
        def after_vm_start(self, vm):
            raise AssertionError("an inactive plugin must not run")

        def hook_point_active(self, point):
            return False

    pm.register(_plugin("after_vm_start", lambda *a: None), name="busy")
    pm.register(Idle(), name="idle")
    runner = HookRunner(pm)
    assert [i.plugin_name for i in runner.impls("after_vm_start")] == ["busy"]
    assert runner.implemented("after_vm_start") == ["busy"]
    runner.fire("after_vm_start", vm=None, domxml=XmlPayload(""))


class _FakeManager:
    def __init__(self, records):
        self.config = config.Config()
        self.plugins = types.SimpleNamespace(records=records)


def test_daemon_hooks_get_a_read_only_context_made_from_the_manager():
    seen = []
    mod = types.ModuleType("starter")

    @hookimpl
    def before_vdsm_start(context):
        seen.append(context)

    mod.before_vdsm_start = before_vdsm_start
    pm = new_plugin_manager()
    pm.register(mod, name="starter")
    records = {"starter": object()}
    HookRunner(pm).fire("before_vdsm_start", manager=_FakeManager(records))
    (context,) = seen
    assert isinstance(context, DaemonContext)
    assert context.plugin_api == PLUGIN_API_VERSION and list(context.plugins) == ["starter"]
    with pytest.raises(TypeError):
        context.plugins["other"] = object()  # type: ignore[index]
    with pytest.raises(AttributeError):
        context.config = config.Config()  # type: ignore[misc]


def test_a_1x_daemon_hook_taking_the_manager_still_gets_it_with_a_warning():
    seen = []
    mod = types.ModuleType("old_starter")

    def after_vdsm_stop(manager):
        seen.append(manager)

    mod.after_vdsm_stop = hookimpl(after_vdsm_stop)
    pm = new_plugin_manager()
    with pytest.warns(hookspecs.VirtplaneDeprecationWarning,
                      match="after_vdsm_stop: argument 'manager' is deprecated: take `context`"):
        pm.register(mod, name="old_starter")
    fake = _FakeManager({})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # calling it warns no more: registering did
        HookRunner(pm).fire("after_vdsm_stop", manager=fake)
    assert seen == [fake]


def test_docs_show_policy_reserved_badge_and_examples():
    doc = (ROOT / "docs" / "hooks.md").read_text()
    sections = dict(re.findall(r"^## `(\w+)\(.*?\)`\n(.*?)(?=^## |\Z)", doc, re.S | re.M))
    assert set(sections) == set(SPECS)
    for name, text in sections.items():
        options = hookspecs.options_of(name)
        assert f"*policy: `{options.policy.name}`" in text, name
        assert ("**reserved: not fired yet**" in text) is options.reserved, name
        example = hookspecs.example_of(name)
        if example is not None:
            assert f"```python\n{example}\n```" in text, name
            assert "Example::" not in text, name
    assert hookspecs.example_of("before_vm_start") is not None
