"""Plugin-API versioning: deprecated hook arguments warn, a 1.x plugin runs through the
adapter with a warning, and ``plugins doctor`` names every installed wheel that does not
fit the core, with the reason (docs/versioning.md)."""

from __future__ import annotations

import warnings

import pytest

from virtplane import PLUGIN_API_VERSION, config, hookspecs
from virtplane.hookspecs import VirtplaneDeprecationWarning
from virtplane.plugins import PluginRegistry, _compat, new_plugin_manager

OLD_STYLE = """
from virtplane import hookimpl
VIRTPLANE_PLUGIN_API = ">=2.0,<3"

@hookimpl
def after_vm_destroy(vm, reason):
    pass
"""

NEW_STYLE = """
from virtplane import hookimpl
VIRTPLANE_PLUGIN_API = ">=2.0,<3"

@hookimpl
def after_vm_destroy(vm):
    pass
"""


@pytest.fixture
def reason_deprecated(monkeypatch):
    """Pretend a minor release deprecated ``after_vm_destroy(reason=...)``."""
    # the hook-scripts plugin builds its forwarders from the real table when first
    # imported; import it now so the pretend table does not leak into later tests
    import virtplane_hook_scripts  # noqa: F401

    monkeypatch.setattr(hookspecs, "DEPRECATED_ARGUMENTS", {
        "after_vm_destroy": {"reason": "read vm.status_reason; removed in plugin API 3.0"}})


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
                              "removed in plugin API 3.0"]


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
            "removed in plugin API 3.0") in out
    assert "\nno problems, " in out and out.strip().endswith("deprecation warning(s)")


def test_api_2_0_deprecates_only_the_manager_of_the_daemon_hooks():
    assert {h: set(args) for h, args in hookspecs.DEPRECATED_ARGUMENTS.items()} == {
        "before_vdsm_start": {"manager"}, "after_vdsm_stop": {"manager"}}
    pm = new_plugin_manager()
    warned = {c.name: set(c.spec.warn_on_impl_args) for c in pm.hook.__dict__.values()
              if getattr(c, "spec", None) is not None and c.spec.warn_on_impl_args}
    assert warned == {"before_vdsm_start": {"manager"}, "after_vdsm_stop": {"manager"}}


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
            "virtplane does not read; groups: virtplane.architectures, ") in out
    assert "virtplane.hypervisors, " in out and "virtplane.storage\n" in out


def test_plugin_needing_the_next_major_is_failed_with_both_versions(plugin_site, cli):
    plugin_site.add("vp-three", {"threeplug.py": NEW_STYLE.replace(">=2.0,<3", ">=3.0,<4")},
                    {"virtplane.hooks": {"three": "threeplug"}})
    rc, out, _ = cli("plugins", "doctor")
    assert rc == 1
    assert ("[FAIL] three (vp-three 1.0): needs plugin API >=3.0,<4, but this virtplane core "
            "offers 2.1 (and 1.0 through adapters)") in out


def test_registry_records_deprecations_only_for_loaded_hooks(reason_deprecated, plugin_site):
    plugin_site.add("vp-old", {"oldplug.py": OLD_STYLE}, {"virtplane.hooks": {"old": "oldplug"}})
    reg = PluginRegistry(config.load(env={"VIRTPLANE_DISABLE_PLUGINS": "old"}))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", VirtplaneDeprecationWarning)
        reg.load()
    assert not [w for w in seen if w.filename.endswith("oldplug.py")]
    assert reg.records["old"].status == "disabled" and reg.records["old"].deprecated == []


# --------------------------------------------------------------------------------------
# Plugin API 2.0 runs 1.x plugins through the adapter
# --------------------------------------------------------------------------------------

#: What ``virtplane plugin new legacy --kind hooks`` wrote under plugin API 1.0 (the
#: template rendered with ``$api_range`` = ``>=1.0,<2``), plus a daemon hook taking the
#: Manager as 1.x passed it.
SCAFFOLD_1X = '''
"""The `legacy` hook plugin for virtplane."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import attrs

from virtplane import hookimpl

VIRTPLANE_PLUGIN_API = ">=1.0,<2"
STARTED_WITH = []


@attrs.define
class Settings:
    max_vcpus: int = attrs.field(default=64, validator=attrs.validators.ge(1))
    tag: str = "started by legacy"


VIRTPLANE_SETTINGS = Settings


class Hooks:
    VIRTPLANE_PLUGIN_API = VIRTPLANE_PLUGIN_API
    VIRTPLANE_SETTINGS = Settings

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()

    @hookimpl
    def validate_vm_spec(self, spec: Any) -> list[str]:
        limit = self.settings.max_vcpus
        if spec.vcpus > limit:
            return [f"{spec.vcpus} vCPUs are more than this site allows; allowed: 1-{limit} "
                    "([plugin.legacy] max_vcpus)"]
        return []

    @hookimpl
    def before_vm_start(self, domxml: Any) -> None:
        root = ET.fromstring(domxml.xml)
        desc = root.find("description")
        if desc is None:
            desc = ET.SubElement(root, "description")
        desc.text = ((desc.text + "; ") if desc.text else "") + self.settings.tag
        domxml.xml = ET.tostring(root, encoding="unicode")

    @hookimpl
    def before_vdsm_start(self, manager: Any) -> None:
        STARTED_WITH.append(manager)
'''

ADAPTER_WARNING = ("plugin API 1.x: declares VIRTPLANE_PLUGIN_API = '>=1.0,<2', so it runs "
                   "through the 1.x adapter of plugin API 2.1, which plugin API 3.0 removes; "
                   "port it and declare '>=2.0,<3' (docs/versioning.md, 'What changed in 2.0')")


def _legacy(site):
    site.add("virtplane-legacy", {"virtplane_legacy/__init__.py": SCAFFOLD_1X},
             {"virtplane.hooks": {"legacy": "virtplane_legacy:Hooks"}})


def test_core_offers_2_x_and_runs_1_x_plugins_through_the_adapter():
    assert PLUGIN_API_VERSION == "2.1"  # 2.1 added configure_plugin (docs/versioning.md)
    assert _compat.api_fit(">=2.1,<3") == (True, "", None)
    assert _compat.api_fit(">=2.0,<3") == (True, "", None)
    assert _compat.api_fit(">=1.0,<2") == (True, ADAPTER_WARNING, "1.x")
    assert _compat.api_fit(">=1.0") == (True, "", None)  # admits 2.x (the kit flags it)
    assert not _compat.api_fit(">=1.5,<2").ok  # no 1.5 was ever released: nothing to adapt
    assert _compat.api_compatible(">=1.0,<2") == (True, "")


def test_plugin_from_a_1x_scaffold_loads_with_the_warning_on_its_record(
        plugin_site, manager_factory):
    _legacy(plugin_site)
    with pytest.warns(VirtplaneDeprecationWarning) as seen:
        m = manager_factory()
    messages = [str(w.message) for w in seen]
    assert f"plugin legacy (virtplane-legacy 1.0): {ADAPTER_WARNING}" in messages
    rec = m.plugins.records["legacy"]
    assert rec.status == "loaded", rec.reason
    assert rec.adapter == "1.x" and rec.api == ">=1.0,<2"
    assert rec.deprecated[0] == ADAPTER_WARNING
    assert rec.deprecated[1].startswith("hook before_vdsm_start(manager=...): take `context`")
    assert rec.as_dict()["adapter"] == "1.x"
    # and it works as it did under 1.x: its hooks run, its daemon hook got the Manager
    import virtplane_legacy

    assert virtplane_legacy.STARTED_WITH == [m]
    from virtplane import model

    cluster = model.Cluster(name="c", datacenter_id="d")
    assert m.hooks.collect("validate_vm_spec", spec=model.VmSpec(name="v", vcpus=65),
                           cluster=cluster) == [
        ("legacy", "65 vCPUs are more than this site allows; allowed: 1-64 "
                   "([plugin.legacy] max_vcpus)")]


def test_doctor_shows_a_1x_plugin_as_a_warning_and_passes(plugin_site, cli):
    _legacy(plugin_site)
    with pytest.warns(VirtplaneDeprecationWarning):
        rc, out, _ = cli("plugins", "doctor")
    assert rc == 0, out
    assert out.startswith("virtplane 0.1.0, plugin API 2.1 (plugins for 1.x run through "
                          "adapters)\n")
    assert "[ok  ] legacy (virtplane-legacy 1.0)\n" in out
    assert f"[warn] legacy: deprecated {ADAPTER_WARNING}\n" in out
    assert out.strip().endswith("no problems, 2 deprecation warning(s)")


def test_first_party_plugins_declare_2_x(cli):
    import json

    rc, out, _ = cli("plugins", "list", "--json")
    rows = [r for r in json.loads(out) if not r["builtin"]]
    # the hook-scripts plugin takes its configuration from configure_plugin (2.1)
    wanted = {"hook_scripts": ">=2.1,<3"}
    assert rows and all(r["plugin_api"] == wanted.get(r["name"], ">=2.0,<3")
                        and r["adapter"] is None and r["deprecated"] == [] for r in rows), rows
    assert any(r["name"] == "hook_scripts" for r in rows), rows
