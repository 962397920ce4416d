"""Plugin-API versioning: deprecated hook arguments warn, and ``plugins doctor`` names
every installed wheel that does not fit the core, with the reason (docs/versioning.md)."""

from __future__ import annotations

import warnings

import pytest

from virtplane import _compat, config, hookspecs
from virtplane._plugins import PluginRegistry, new_plugin_manager
from virtplane.hookspecs import VirtplaneDeprecationWarning

OLD_STYLE = """
from virtplane import hookimpl
VIRTPLANE_PLUGIN_API = ">=1.0,<2"

@hookimpl
def after_vm_destroy(vm, reason):
    pass
"""

NEW_STYLE = """
from virtplane import hookimpl
VIRTPLANE_PLUGIN_API = ">=1.0,<2"

@hookimpl
def after_vm_destroy(vm):
    pass
"""


@pytest.fixture
def reason_deprecated(monkeypatch):
    """Pretend a minor release deprecated ``after_vm_destroy(reason=...)``."""
    monkeypatch.setattr(hookspecs, "DEPRECATED_ARGUMENTS", {
        "after_vm_destroy": {"reason": "read vm.status_reason; removed in plugin API 2.0"}})


def test_plugin_taking_a_deprecated_argument_warns_and_keeps_working(
        reason_deprecated, plugin_site, manager_factory):
    plugin_site.add("vp-old", {"oldplug.py": OLD_STYLE}, {"virtplane.hooks": {"old": "oldplug"}})
    with pytest.warns(VirtplaneDeprecationWarning,
                      match="after_vm_destroy: argument 'reason' is deprecated: read "
                            "vm.status_reason"):
        m = manager_factory()
    rec = m.plugins.records["old"]
    assert rec.status == "loaded" and "after_vm_destroy" in rec.hooks
    assert rec.deprecated == ["hook after_vm_destroy(reason=...): read vm.status_reason; "
                              "removed in plugin API 2.0"]


def test_plugin_without_the_argument_is_quiet(reason_deprecated, plugin_site, manager_factory):
    plugin_site.add("vp-new", {"newplug.py": NEW_STYLE}, {"virtplane.hooks": {"new": "newplug"}})
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", VirtplaneDeprecationWarning)
        m = manager_factory()
    # pluggy points each warning at the implementation that takes the argument
    assert [w.filename for w in seen if w.filename.endswith("newplug.py")] == []
    assert m.plugins.records["new"].deprecated == []


def test_doctor_lists_deprecated_use_as_a_warning(reason_deprecated, plugin_site, cli):
    plugin_site.add("vp-old", {"oldplug.py": OLD_STYLE}, {"virtplane.hooks": {"old": "oldplug"}})
    with pytest.warns(VirtplaneDeprecationWarning):
        rc, out, _ = cli("plugins", "doctor")
    assert rc == 0, out
    assert ("[warn] old: deprecated hook after_vm_destroy(reason=...): read vm.status_reason; "
            "removed in plugin API 2.0") in out
    assert "\nno problems, " in out and out.strip().endswith("deprecation warning(s)")


def test_api_1_0_deprecates_nothing_and_specs_carry_no_warnings():
    assert hookspecs.DEPRECATED_ARGUMENTS == {}
    pm = new_plugin_manager()
    assert all(not c.spec.warn_on_impl_args for c in pm.hook.__dict__.values()
               if hasattr(c, "spec") and c.spec is not None)


def test_doctor_names_a_wheel_requiring_a_newer_core(plugin_site, cli):
    plugin_site.add("vp-future", {"futureplug.py": NEW_STYLE},
                    {"virtplane.hooks": {"future": "futureplug"}},
                    requires=("virtplane>=0.3", "attrs>=23"))
    rc, out, _ = cli("plugins", "doctor")
    assert rc == 1
    assert ("[FAIL] future (vp-future 1.0): vp-future requires virtplane>=0.3, but virtplane "
            "0.1.0 is installed") in out
    assert _compat.requirement_problems("vp-future") != []


def test_doctor_ignores_requirements_it_satisfies_and_extras(plugin_site, cli):
    plugin_site.add("vp-fits", {"fitsplug.py": NEW_STYLE},
                    {"virtplane.hooks": {"fits": "fitsplug"}},
                    requires=("virtplane>=0.1,<1", 'virtplane>=9; extra == "future"'))
    rc, out, _ = cli("plugins", "doctor")
    assert rc == 0, out
    assert "[ok  ] fits (vp-fits 1.0)" in out


def test_doctor_names_an_entry_point_group_virtplane_does_not_read(plugin_site, cli):
    plugin_site.add("vp-typo", {"typoplug.py": NEW_STYLE},
                    {"virtplane.storages": {"typo": "typoplug:Driver"}})
    rc, out, _ = cli("plugins", "doctor")
    assert rc == 1
    assert ("[FAIL] vp-typo declares entry point 'typo' in group 'virtplane.storages', which "
            "virtplane does not read; groups: virtplane.architectures, virtplane.hooks, "
            "virtplane.hypervisors, virtplane.storage") in out


def test_plugin_needing_the_next_major_is_failed_with_both_versions(plugin_site, cli):
    plugin_site.add("vp-two", {"twoplug.py": NEW_STYLE.replace(">=1.0,<2", ">=2.0,<3")},
                    {"virtplane.hooks": {"two": "twoplug"}})
    rc, out, _ = cli("plugins", "doctor")
    assert rc == 1
    assert "[FAIL] two (vp-two 1.0): needs plugin API >=2.0,<3, but this virtplane core " \
           "offers 1.0" in out


def test_registry_records_deprecations_only_for_loaded_hooks(reason_deprecated, plugin_site):
    plugin_site.add("vp-old", {"oldplug.py": OLD_STYLE}, {"virtplane.hooks": {"old": "oldplug"}})
    reg = PluginRegistry(config.load(env={"VIRTPLANE_DISABLE_PLUGINS": "old"}))
    with pytest.warns(VirtplaneDeprecationWarning) as seen:  # hook_scripts takes `reason`
        reg.load()
    assert not [w for w in seen if w.filename.endswith("oldplug.py")]
    assert reg.records["old"].status == "disabled" and reg.records["old"].deprecated == []
