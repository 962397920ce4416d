"""The kit can fail: a scaffolded plugin with one contract broken fails the named test.

Each case writes a plugin project with ``virtplane plugin new``, breaks one
thing in its driver, installs it as a distribution on ``sys.path`` and runs the
project's own ``tests/test_contract.py`` in an inner pytest session.
"""

from __future__ import annotations

import re

import pytest

# imported here, outside the inner sessions: pytester restores sys.modules after each one,
# and a second copy of the model module would not match the first one's classes
import virtplane.capabilities
import virtplane.domxml
import virtplane.manager
import virtplane.options
import virtplane.plugins
import virtplane.services.devices
import virtplane.services.hookadmin
import virtplane.services.hosts
import virtplane.services.inventory
import virtplane.services.migration
import virtplane.services.monitor
import virtplane.services.snapshots
import virtplane.services.storage
import virtplane.services.templates
import virtplane.state
import virtplane.state._sqlite
import virtplane.testing  # noqa: F401
from virtplane._scaffold import new_plugin

pytest_plugins = ["pytester"]

CASES = {
    # storage: delete_volume forgets to delete -> leftovers after a failed layer, a merge
    "storage-delete-noop": (
        "storage", "self.volume_path(domain, image, volume).unlink(missing_ok=True)", "pass",
        {"test_failed_snapshot_leaves_the_chain_as_it_was", "test_snapshot_then_merge"}),
    # storage: a source libvirt cannot use
    "storage-bad-source": (
        "storage", 'return {"type": "file", "source": {"@file": str(self.volume_path(domain, '
                   'image, volume))}}', 'return {"type": "file"}',
        {"test_disk_lifecycle_and_volume_source", "test_snapshot_then_merge",
         "test_failed_create_leaves_nothing", "test_clone_outlives_its_source",
         "test_domain_with_disks_is_not_removed",
         "test_failed_snapshot_leaves_the_chain_as_it_was"}),
    # architecture: accepts anything (a foreign guest arch is still refused by osinfo)
    "arch-accepts-all": (
        "architecture", "        return problems\n", "        return []\n",
        {"test_refuses_unknown_values_and_names_them[machine-kit-no-such-machine]",
         "test_refuses_unknown_values_and_names_them[cpu_model-kit-no-such-cpu]"}),
    # hypervisor: a refused definition stays recorded on the host
    "hypervisor-start-leaks": (
        "hypervisor", '            raise HypervisorError(f"host {self.uri} refused VM',
        "            vms = self._load()\n"
        "            vms[name] = {'state': 'Up', 'reason': '', 'xml': xml, 'vcpus': 1, "
        "'started': 0}\n            self._save(vms)\n"
        '            raise HypervisorError(f"host {self.uri} refused VM',
        {"test_failed_start_leaves_nothing_defined"}),
    # hooks: a validator returning a string instead of a list
    "hooks-validator-str": (
        "hooks", "        return []\n", '        return "fine"\n',
        {"test_every_implementation_runs"}),
    # any kind: a plugin-API range with no upper bound
    "unbounded-api": (
        "hooks", 'VIRTPLANE_PLUGIN_API = ">=2.1,<3"', 'VIRTPLANE_PLUGIN_API = ">=2.1"',
        {"test_declares_a_plugin_api_range_that_fits"}),
    # any kind: still written for plugin API 1.x (loads through the adapter, but is flagged)
    "api-1x": (
        "hooks", 'VIRTPLANE_PLUGIN_API = ">=2.1,<3"', 'VIRTPLANE_PLUGIN_API = ">=1.0,<2"',
        {"test_declares_a_plugin_api_range_that_fits"}),
    # hooks: takes an argument the plugin API deprecates
    "hooks-deprecated-argument": (
        "hooks", "    @hookimpl\n    def before_vm_start(",
        "    @hookimpl\n    def before_vdsm_start(self, manager: Any) -> None:\n"
        "        pass\n\n    @hookimpl\n    def before_vm_start(",
        {"test_uses_no_deprecated_argument"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_kit_fails_a_broken_plugin(case, tmp_path, plugin_site, pytester):
    kind, old, new, expected = CASES[case]
    name = "brk" + re.sub(r"[^a-z]", "", case)[:20]
    project = new_plugin(name, kind, tmp_path / "projects")
    package = f"virtplane_{name}"
    source = (project / "src" / package / "__init__.py").read_text()
    assert old in source, f"the template changed; update case {case!r}"
    modules = {f"{package}/__init__.py": source.replace(old, new, 1)}
    for extra in (project / "src" / package).glob("*.properties"):
        modules[f"{package}/{extra.name}"] = extra.read_text()
    group = {"architecture": "virtplane.architectures", "storage": "virtplane.storage",
             "hypervisor": "virtplane.hypervisors", "hooks": "virtplane.hooks"}[kind]
    obj = {"architecture": "Architecture", "storage": "Storage", "hypervisor": "Hypervisor",
           "hooks": "Hooks"}[kind]
    plugin_site.add(f"virtplane-{name}", modules, {group: {name: f"{package}:{obj}"}})
    pytester.makepyfile(test_contract=(project / "tests" / "test_contract.py").read_text())
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q")
    failed = {r.nodeid.split("::")[-1] for r in result.reprec.getreports("pytest_runtest_logreport")
              if r.failed}
    assert failed == expected, result.stdout.str()[-3000:]


def test_the_same_projects_unbroken_pass(tmp_path, plugin_site, pytester):
    """The control: every kind's scaffold as written passes the kit in the same harness."""
    kinds = {"architecture": ("virtplane.architectures", "Architecture"),
             "storage": ("virtplane.storage", "Storage"),
             "hypervisor": ("virtplane.hypervisors", "Hypervisor"),
             "hooks": ("virtplane.hooks", "Hooks")}
    for kind, (group, obj) in kinds.items():
        name = f"ok{kind[:4]}"
        project = new_plugin(name, kind, tmp_path / "projects")
        package = f"virtplane_{name}"
        modules = {f"{package}/{p.name}": p.read_text()
                   for p in (project / "src" / package).iterdir() if p.is_file()}
        plugin_site.add(f"virtplane-{name}", modules, {group: {name: f"{package}:{obj}"}})
        pytester.makepyfile(**{f"test_{name}": (project / "tests" / "test_contract.py")
                               .read_text()})
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("error", 0) == 0, \
        result.stdout.str()[-3000:]
    assert outcomes["passed"] >= 40
