"""The ``vdsm`` modules VDSM-style hook scripts import, run through the real runner.

Each script here is written the way published VDSM hooks are (``from vdsm.hook
import hooking``, ``from vdsm.config import config``, ``from vdsm import
osinfo``) and runs as a child process of a real VM start on the test driver.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import libvirt
import pytest

from virtplane import model

#: VDSM-style: the property's absence is a normal case, the import must not fail
CONSOLE_LOG = """
import os
from vdsm.hook import hooking

if 'console_log' in os.environ:
    domxml = hooking.read_domxml()
    devices = domxml.getElementsByTagName('devices')[0]
    serial = domxml.createElement('serial')
    serial.setAttribute('type', 'file')
    source = domxml.createElement('source')
    source.setAttribute('path', os.environ['console_log'])
    serial.appendChild(source)
    devices.appendChild(serial)
    desc = domxml.createElement('description')
    desc.appendChild(domxml.createTextNode('console to ' + os.environ['console_log']))
    domxml.documentElement.appendChild(desc)
    hooking.write_domxml(domxml)
"""


def _spec(name="vm1", **props):
    return model.VmSpec(name=name, memory_mib=256, custom_properties=props)


def _live(name):
    conn = libvirt.open("test:///default")
    try:
        return conn.lookupByName(name).XMLDesc(0)
    finally:
        conn.close()


def _cleanup(m):
    for vm in m.vms.list():
        if vm.status != model.VmStatus.DOWN and vm.host_id:
            m.vms.destroy(vm.name)


def _results(hooks, tmp_path, name, body):
    """Install a before_vm_start script that dumps ``RESULT`` (a dict) as JSON."""
    out = tmp_path / f"{name}.json"
    hooks.add("before_vm_start", name, body + f"""
import json
with open({str(out)!r}, 'w') as f:
    json.dump(RESULT, f)
""")
    return out


def test_from_vdsm_hook_import_hooking_edits_the_started_xml(hooks, hs_env):
    hooks.add("before_vm_start", "50_console_log", CONSOLE_LOG)
    m = hs_env()
    m.vms.create(_spec(console_log="/tmp/vm1-console.log"), "cl1")
    m.vms.start("vm1")
    live = _live("vm1")
    assert "<description>console to /tmp/vm1-console.log</description>" in live
    assert "/tmp/vm1-console.log" in m.vms.get("vm1").started_xml
    _cleanup(m)


def test_a_vdsm_style_script_without_its_property_no_longer_fails_the_start(hooks, hs_env):
    """The regression: the import alone used to exit 1 and fail every VM start."""
    hooks.add("before_vm_start", "50_console_log", CONSOLE_LOG)
    hooks.add("before_vm_start", "60_nested", """
        import hooking
        from vdsm import osinfo
        from vdsm.common.units import MiB
        from vdsm.config import config
        if osinfo.nested_virtualization().enabled and config.getboolean('vars', 'ssl'):
            hooking.log('nested: %d MiB' % (256 * MiB // MiB))
    """)
    m = hs_env()
    m.vms.create(_spec(), "cl1")  # no console_log property
    m.vms.start("vm1")
    assert m.vms.get("vm1").status == model.VmStatus.UP
    assert "<description>" not in _live("vm1")
    assert not [e for e in m.vms.events("vm1") if e[1] == "error"]
    _cleanup(m)


def test_hooking_is_one_module_under_both_names(hooks, hs_env, tmp_path):
    out = _results(hooks, tmp_path, "10_same", """
import hooking
from vdsm.hook import hooking as vdsm_hooking
import vdsm.hook.hooking
from vdsm import constants
from vdsm.common import constants as common_constants
RESULT = {
    'same': vdsm_hooking is hooking and vdsm.hook.hooking is hooking,
    'constants': constants is common_constants,
    'run': constants.P_VDSM_RUN,
    'file': hooking.__file__,
}
""")
    m = hs_env()
    m.vms.create(_spec(), "cl1")
    m.vms.start("vm1")
    got = json.loads(out.read_text())
    assert got["same"] is True and got["constants"] is True
    assert got["file"].endswith(os.path.join("_pythonpath", "hooking.py"))
    # launch flags and the hooks' own files share virtplane's run folder
    assert got["run"].endswith("/") and "hooks-run" in got["run"]
    _cleanup(m)


def test_units_and_config_defaults_and_virtplanes_values(hooks, hs_env, tmp_path,
                                                          monkeypatch):
    monkeypatch.setenv("VIRTPLANE_VDSM_CONFIG", json.dumps(
        {"vars": {"fake_vmstats_enable": True}, "sanlock": {"io_timeout": 20}}))
    out = _results(hooks, tmp_path, "10_config", """
import configparser
from vdsm.common import units
from vdsm.common.units import KiB, MiB, GiB, TiB
from vdsm.config import config
try:
    config.get('vars', 'no_such_key')
    missing = None
except configparser.NoOptionError as exc:
    missing = str(exc)
RESULT = {
    'units': [KiB, MiB, GiB, TiB, units.PiB],
    'ssl': config.getboolean('vars', 'ssl'),
    'arch': config.get('vars', 'fake_kvm_architecture'),
    'mem': config.getint('vars', 'fake_kvm_memory'),
    'hsm_tasks': config.get('irs', 'hsm_tasks'),
    'util': config.getfloat('irs', 'volume_utilization_percent'),
    'fake_vmstats': config.getboolean('vars', 'fake_vmstats_enable'),
    'io_timeout': config.getint('sanlock', 'io_timeout'),
    'missing': missing,
}
""")
    m = hs_env()
    m.vms.create(_spec(), "cl1")
    m.vms.start("vm1")
    got = json.loads(out.read_text())
    assert got["units"] == [1024, 1024**2, 1024**3, 1024**4, 1024**5]
    if not Path("/etc/vdsm/vdsm.conf").exists():  # a VDSM host's own file would win
        assert got["ssl"] is True and got["arch"] == "x86_64" and got["mem"] == 0
        assert got["hsm_tasks"] == "/rhev/data-center/hsm-tasks"
        assert got["util"] == 20.0
    assert got["fake_vmstats"] is True and got["io_timeout"] == 20  # virtplane's values
    assert "no key 'no_such_key' in section [vars]" in got["missing"]
    assert "fake_vmstats_enable" in got["missing"]  # the message lists the keys there are
    _cleanup(m)


def test_config_takes_virtplanes_own_settings(hooks, hs_env, tmp_path, monkeypatch, xdg):
    """``[engine] vm_interval`` is VDSM's ``vm_sample_interval`` (and ``host_interval``
    its ``host_sample_stats_interval``), in whole seconds; a value the administrator
    put in ``$VIRTPLANE_VDSM_CONFIG`` still wins, key by key."""
    folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "virtplane.toml").write_text("[engine]\nvm_interval = 42.0\n"
                                           "host_interval = 7.4\n")
    monkeypatch.setenv("VIRTPLANE_VDSM_CONFIG", json.dumps(
        {"vars": {"host_sample_stats_interval": 99}, "sanlock": {"io_timeout": 20}}))
    out = _results(hooks, tmp_path, "10_config", """
from vdsm.config import config
RESULT = {
    'vm': config.getint('vars', 'vm_sample_interval'),
    'host': config.getint('vars', 'host_sample_stats_interval'),
    'io_timeout': config.getint('sanlock', 'io_timeout'),
}
""")
    m = hs_env()
    m.vms.create(_spec(), "cl1")
    m.vms.start("vm1")
    got = json.loads(out.read_text())
    assert got == {"vm": 42, "host": 99, "io_timeout": 20}
    # without the administrator's variable, host_interval (7.4 s) is whole seconds
    monkeypatch.delenv("VIRTPLANE_VDSM_CONFIG")
    m.vms.create(_spec("vm2"), "cl1")
    m.vms.start("vm2")
    got = json.loads(out.read_text())
    assert got["vm"] == 42 and got["host"] == 7
    _cleanup(m)


def test_a_malformed_virtplane_value_names_the_variable(hooks, hs_env, monkeypatch):
    from virtplane.errors import HookError

    monkeypatch.setenv("VIRTPLANE_VDSM_CONFIG", "{vars: 1}")
    hooks.add("before_vm_start", "10_config", "from vdsm.config import config\n")
    m = hs_env()
    m.vms.create(_spec(), "cl1")
    with pytest.raises(HookError, match=r"\$VIRTPLANE_VDSM_CONFIG is not JSON"):
        m.vms.start("vm1")


def _expected_nested():
    """Worked out here independently of vdsm.osinfo, from the same sysfs files."""
    machine = platform.machine()
    if machine.startswith("ppc"):
        return [False, None]
    for module in ("kvm",) if machine.startswith("s390") else ("kvm_intel", "kvm_amd"):
        p = Path(f"/sys/module/{module}/parameters/nested")
        if p.exists() and p.read_text().strip() in ("Y", "1"):
            return [True, module]
    return [False, None]


def test_osinfo_answers_like_vdsms(hooks, hs_env, tmp_path):
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("BOOT_IMAGE=/vmlinuz ro quiet kvm_intel.nested=1 a=b=c "
                       "hugepagesz=1G\n")
    out = _results(hooks, tmp_path, "10_osinfo", f"""
from vdsm import osinfo
nested = osinfo.nested_virtualization()
flags = osinfo.runtime_kernel_flags()
RESULT = {{
    'nested': list(nested),
    'fields': list(nested._fields),
    'enabled': nested.enabled,
    'args': osinfo.kernel_args({str(cmdline)!r}),
    'args_dict': osinfo.kernel_args_dict({str(cmdline)!r}),
    'kernel': flags.version,
    'realtime': flags.realtime,
    'version': osinfo.version(),
    'kdump': osinfo.kdump_status(),
}}
""")
    m = hs_env()
    m.vms.create(_spec(), "cl1")
    m.vms.start("vm1")
    got = json.loads(out.read_text())
    assert got["fields"] == ["enabled", "kvm_module"]
    assert got["nested"] == _expected_nested() and got["enabled"] is got["nested"][0]
    assert got["args"] == "BOOT_IMAGE=/vmlinuz ro quiet kvm_intel.nested=1 a=b=c hugepagesz=1G"
    assert got["args_dict"] == {"BOOT_IMAGE": "/vmlinuz", "kvm_intel.nested": "1",
                                "hugepagesz": "1G"}
    release = os.uname().release
    assert got["kernel"] == {"version": release.split("-", 1)[0],
                             "release": release.split("-", 1)[1]} or "-" not in release
    assert got["realtime"] is ("RT" in os.uname().version)
    assert set(got["version"]) == {"release", "version", "name", "pretty_name"}
    assert got["kdump"] in (-1, 0, 1)
    _cleanup(m)


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no /usr/bin/python3")
def test_a_usr_bin_python3_script_sees_pythonpath_not_the_venv(hooks, hs_env, tmp_path,
                                                               monkeypatch):
    """What docs/hook_scripts.md says scripts can see: their interpreter's own packages
    and virtplane's _pythonpath, not the virtplane venv."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    out = tmp_path / "seen.json"
    script = hooks.add("before_vm_start", "10_system_python", f"""
import importlib.util, json, sys
from vdsm.hook import hooking
from vdsm.config import config
RESULT = {{
    'executable': sys.executable,
    'virtplane': importlib.util.find_spec('virtplane') is not None,
    'libvirt_from_venv': any('.venv' in p for p in sys.path),
    'hooking': hooking.__file__,
}}
with open({str(out)!r}, 'w') as f:
    json.dump(RESULT, f)
""")
    script.write_text("#!/usr/bin/python3\n" + script.read_text().split("\n", 1)[1])
    m = hs_env()
    m.vms.create(_spec(), "cl1")
    m.vms.start("vm1")
    got = json.loads(out.read_text())
    assert got["executable"].startswith("/usr/bin/python3")
    assert got["virtplane"] is False and got["libvirt_from_venv"] is False
    assert "_pythonpath" in got["hooking"]
    _cleanup(m)


def test_an_installed_vdsm_still_provides_what_virtplane_does_not(hooks, hs_env, tmp_path,
                                                                  monkeypatch):
    """On a host that keeps VDSM installed, ``vdsm.network`` ... come from it; the
    modules virtplane provides are virtplane's."""
    site = tmp_path / "site"
    (site / "vdsm" / "network").mkdir(parents=True)
    (site / "vdsm" / "__init__.py").write_text("")
    (site / "vdsm" / "config.py").write_text("raise ImportError('the real VDSM config')\n")
    (site / "vdsm" / "network" / "__init__.py").write_text("")
    (site / "vdsm" / "network" / "ipwrapper.py").write_text("WHO = 'installed vdsm'\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    out = _results(hooks, tmp_path, "10_mixed", """
from vdsm.network import ipwrapper
from vdsm.config import config
RESULT = {'who': ipwrapper.WHO, 'ssl': config.get('vars', 'ssl')}
""")
    m = hs_env()
    m.vms.create(_spec(), "cl1")
    m.vms.start("vm1")
    got = json.loads(out.read_text())
    assert got["who"] == "installed vdsm" and got["ssl"] in ("true", "false", "True", "1")
    _cleanup(m)
