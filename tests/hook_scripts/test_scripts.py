"""VDSM-style hook scripts, run for real as child processes (test driver host)."""

from __future__ import annotations

import json

import libvirt
import pytest

from virtplane import model
from virtplane.errors import HookError, InvalidInput

PINCPU = """
import os
import hooking

# VDSM-era pincpu style: read the custom property, pin <vcpu> with cpuset
if 'pincpu' in os.environ:
    domxml = hooking.read_domxml()
    vcpu = domxml.getElementsByTagName('vcpu')[0]
    vcpu.setAttribute('cpuset', os.environ['pincpu'])
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


def _defined(name):
    conn = libvirt.open("test:///default")
    try:
        return name in [d.name() for d in conn.listAllDomains()]
    finally:
        conn.close()


def _cleanup(m):
    for vm in m.vms.list():
        if vm.status != model.VmStatus.DOWN and vm.host_id:
            m.vms.destroy(vm.name)


def test_pincpu_script_changes_the_started_xml(hooks, hs_env):
    hooks.add("before_vm_start", "50_pincpu", PINCPU)
    m = hs_env()
    m.vms.create(_spec(pincpu="0-1"), "cl1")
    m.vms.start("vm1")
    assert "cpuset='0-1'" in _live("vm1")
    assert "cpuset=\"0-1\"" in m.vms.get("vm1").started_xml or "cpuset='0-1'" in m.vms.get(
        "vm1").started_xml
    _cleanup(m)


def test_scripts_run_in_order_and_see_each_others_edits(hooks, hs_env, tmp_path):
    log = tmp_path / "order.log"
    hooks.add("before_vm_start", "20_second", f"""
        import hooking
        dom = hooking.read_domxml()
        seen = dom.getElementsByTagName('description')[0].firstChild.data
        open({str(log)!r}, 'a').write('second saw ' + seen + '\\n')
    """)
    hooks.add("before_vm_start", "10_first", f"""
        import hooking
        dom = hooking.read_domxml()
        d = dom.createElement('description')
        d.appendChild(dom.createTextNode('from-first'))
        dom.documentElement.appendChild(d)
        hooking.write_domxml(dom)
        open({str(log)!r}, 'a').write('first\\n')
    """)
    hooks.add("before_vm_start", "05_not_executable", "raise SystemExit(2)").chmod(0o644)
    m = hs_env()
    m.vms.create(_spec(), "cl1")
    m.vms.start("vm1")
    assert log.read_text() == "first\nsecond saw from-first\n"
    assert "<description>from-first</description>" in _live("vm1")
    _cleanup(m)


@pytest.mark.parametrize("rc, second_runs", [(1, True), (2, False)])
def test_failing_before_vm_start(hooks, hs_env, tmp_path, rc, second_runs):
    marker = tmp_path / "second-ran"
    hooks.add("before_vm_start", "10_fail", f"""
        import hooking
        hooking.exit_hook('hugepages are not configured on this host', {rc})
    """)
    hooks.add("before_vm_start", "20_after", f"open({str(marker)!r}, 'w').write('x')")
    m = hs_env()
    m.vms.create(_spec(), "cl1")
    with pytest.raises(HookError, match="hugepages are not configured on this host"):
        m.vms.start("vm1")
    vm = m.vms.get("vm1")
    assert vm.status == model.VmStatus.DOWN
    assert "hugepages are not configured on this host" in vm.status_reason
    assert not _defined("vm1")
    assert marker.exists() is second_runs
    events = [e[2] for e in m.vms.events("vm1")]
    assert any(f"before_vm_start/10_fail failed (rc={rc})" in e for e in events)


def test_unexpected_code_is_logged_and_the_start_goes_on(hooks, hs_env):
    hooks.add("before_vm_start", "10_odd", "import sys; sys.stderr.write('odd'); sys.exit(3)")
    m = hs_env()
    m.vms.create(_spec(), "cl1")
    m.vms.start("vm1")
    assert m.vms.get("vm1").status == model.VmStatus.UP
    assert any("returned unexpected code 3: odd" in e[2] for e in m.vms.events("vm1"))
    _cleanup(m)


def test_failure_on_an_after_point_only_logs(hooks, hs_env):
    hooks.add("after_vm_start", "10_noisy", """
        import hooking
        hooking.log('could not notify the CMDB')
        raise SystemExit(1)
    """)
    m = hs_env()
    m.vms.create(_spec(), "cl1")
    m.vms.start("vm1")
    assert m.vms.get("vm1").status == model.VmStatus.UP
    errors = [e for e in m.vms.events("vm1") if e[1] == "error"]
    assert any("after_vm_start/10_noisy failed (rc=1): could not notify the CMDB" in e[2]
               for e in errors)
    _cleanup(m)


def test_a_hung_script_is_killed_at_its_timeout(hooks, hs_env, plugin_config):
    import time

    plugin_config("timeout_seconds = 1\n")
    hooks.add("before_vm_start", "10_hang", "#!/bin/sh\nsleep 30 &\nsleep 30\n", python=False)
    m = hs_env()
    m.vms.create(_spec(), "cl1")
    t0 = time.monotonic()
    with pytest.raises(HookError, match="killed after 1 s"):
        m.vms.start("vm1")
    assert time.monotonic() - t0 < 10
    assert m.vms.get("vm1").status == model.VmStatus.DOWN and not _defined("vm1")


def test_custom_properties_vm_id_and_launch_flags(hooks, hs_env, tmp_path):
    out = tmp_path / "env.json"
    hooks.add("before_vm_start", "10_env", f"""
        import json, os, hooking
        flags = hooking.load_vm_launch_flags_from_file(os.environ['vmId'])
        data = {{k: os.environ.get(k) for k in ('sap_agent', 'vmId', '_hook_domxml')}}
        data['flags'] = flags
        json.dump(data, open({str(out)!r}, 'w'))
        hooking.dump_vm_launch_flags_to_file(os.environ['vmId'], flags)
    """)
    m = hs_env()
    vm = m.vms.create(_spec(sap_agent="true"), "cl1")
    m.vms.start("vm1")
    env = json.loads(out.read_text())
    assert env["sap_agent"] == "true" and env["vmId"] == vm.id and env["_hook_domxml"]
    assert env["flags"] == 0  # the test driver takes no start flags; see the real-QEMU test
    _cleanup(m)


def test_property_failing_its_regex_is_refused_before_any_script(hooks, hs_env, plugin_config,
                                                                  tmp_path):
    marker = tmp_path / "ran"
    plugin_config('vm_properties = { pincpu = "^[0-9,-]+$" }\n')
    hooks.add("before_vm_start", "10_mark", f"open({str(marker)!r}, 'w').write('x')")
    m = hs_env()
    with pytest.raises(InvalidInput, match="custom property pincpu='all' does not match its "
                                           "declared pattern"):
        m.vms.create(_spec(pincpu="all"), "cl1")
    assert not marker.exists() and m.vms.list() == []
    m.vms.create(_spec(pincpu="0-1"), "cl1")  # a matching value is fine


def test_bad_property_regex_in_config_fails_the_plugin(plugin_config, cli):
    plugin_config('vm_properties = { pincpu = "([" }\n')
    rc, out, _ = cli("plugins", "show", "hook_scripts", "--json")
    data = json.loads(out)
    assert data["status"] == "failed" and "is not a regular expression" in data["reason"]


def test_json_hook_changes_bulk_stats(hooks, hs_env):
    hooks.add("after_get_all_vm_stats", "10_fake", """
        import hooking
        stats = hooking.read_json()
        for s in stats:
            s['fake'] = True
        hooking.write_json(stats)
    """)
    m = hs_env()
    m.vms.create(_spec(), "cl1")
    m.vms.start("vm1")
    stats = m.vms.all_stats("h1")
    assert stats and all(s.get("fake") is True for s in stats)
    _cleanup(m)


def test_installed_hooks_in_caps_list_and_dry_run(hooks, hs_env, cli):
    import hashlib

    script = hooks.add("before_vm_start", "50_pincpu", PINCPU)
    digest = hashlib.sha256(script.read_bytes()).hexdigest()
    m = hs_env()
    caps = m.hosts.capabilities(m.store.find(model.Host, "h1"))
    assert caps["hooks"]["before_vm_start"]["50_pincpu"] == {"checksum": digest}
    listing = {d["point"]: d for d in m.hook_admin.describe()}
    impls = listing["before_vm_start"]["implementations"]
    assert impls[-1]["plugin"] == "hook_scripts"  # scripts run after in-process hooks
    assert impls[-1]["scripts"][0]["sha256"] == digest
    m.vms.create(_spec(pincpu="1"), "cl1")
    steps = m.hook_admin.dry_run("before_vm_start", "vm1")
    # scripts are programs with side effects: a dry run names them, runs them only if asked
    assert steps[-1]["by"] == "hook_scripts" and steps[-1]["ran"] is False
    assert "--run-scripts" in steps[-1]["note"]
    steps = m.hook_admin.dry_run("before_vm_start", "vm1", run_scripts=True)
    assert steps[-1]["by"].endswith("50_pincpu") and steps[-1]["ran"] is True
    assert any(line.startswith("+") and "cpuset" in line for line in steps[-1]["diff"])
    assert m.vms.get("vm1").status == model.VmStatus.DOWN and not _defined("vm1")
    with pytest.raises(InvalidInput, match="carries no XML"):
        m.hook_admin.dry_run("after_get_stats", "vm1")
    with pytest.raises(InvalidInput, match="no hook point named 'before_teleport'"):
        m.hook_admin.dry_run("before_teleport", "vm1")


def test_hooking_helpers_behave_like_vdsms(hooks, hs_env, tmp_path, plugin_config):
    out = tmp_path / "helpers.json"
    vdsm_root = tmp_path / "libexec-vdsm-hooks"
    plugin_config(f'vdsm_dir = "{vdsm_root}"\n')
    script = vdsm_root / "after_get_caps" / "50_helpers"
    script.parent.mkdir(parents=True)
    import sys
    script.write_text(f"""#!{sys.executable}
import json, hooking
rc, lines, err = hooking.execCmd(['/bin/echo', 'one'], raw=False)
rc2, raw, _ = hooking.execCmd(['/bin/sh', '-c', 'printf x; exit 3'], raw=True)
caps = hooking.read_json()
caps['from_vdsm_dir'] = True
hooking.write_json(caps)
json.dump({{'tobool': [hooking.tobool(v) for v in
                       (True, 'TRUE', 'false', '1', '0', 2, None, 'yes')],
           'exec': [rc, [l.decode() for l in lines], rc2, raw.decode()]}},
          open({str(out)!r}, 'w'))
""")
    script.chmod(0o755)
    m = hs_env()
    caps = m.hosts.capabilities(m.store.find(model.Host, "h1"))
    assert caps["from_vdsm_dir"] is True
    data = json.loads(out.read_text())
    assert data["tobool"] == [True, True, False, True, False, True, False, False]
    assert data["exec"] == [0, ["one"], 3, "x"]


def test_hooks_cli_list_and_dry_run(hooks, cli, tmp_path):
    hooks.add("before_vm_start", "50_pincpu", PINCPU)
    keep = libvirt.open("test:///default")
    assert cli("dc", "add", "dc1")[0] == 0
    assert cli("cluster", "add", "cl1", "--dc", "dc1")[0] == 0
    assert cli("host", "add", "h1", "test:///default", "--cluster", "cl1")[0] == 0
    rc, out, err = cli("hooks", "list")
    assert rc == 0 and "before_vm_start" in out and "50_pincpu  sha256:" in out
    from virtplane import Manager, config

    with Manager(config.load()) as m:
        m.vms.create(_spec(pincpu="0"), "cl1")
    rc, out, err = cli("hooks", "run", "before_vm_start", "--vm", "vm1", "--dry-run")
    assert rc == 0, err
    assert "== hook_scripts: not run" in out and "cpuset" not in out
    rc, out, err = cli("hooks", "run", "before_vm_start", "--vm", "vm1", "--dry-run",
                       "--run-scripts")
    assert rc == 0, err
    assert "50_pincpu: ok" in out and "cpuset" in out
    # the script's diff is of pretty-printed XML: the edit is one short line of its own
    added = [line for line in out.splitlines() if line.startswith("+") and "cpuset" in line]
    assert len(added) == 1 and "<domain" not in added[0] and "<name>" not in added[0]
    assert len(added[0]) < 80, added[0]
    assert not any(line.startswith("-") and "<domain" in line and "<name>" in line
                   for line in out.splitlines())
    rc, out, err = cli("hooks", "run", "before_vm_start", "--vm", "vm1")
    assert rc == 1 and "only supported as a dry run" in err
    keep.close()


DEVICE_SCRIPT = """
import hooking
dev = hooking.read_domxml()
dev.documentElement.setAttribute('data-seen', '1')
hooking.write_domxml(dev)
"""


def test_device_point_dry_run_runs_only_for_devices_with_properties(hooks, hs_env, cli):
    """As the operation does (VDSM's contract): a device point runs for the disks and
    NICs with custom properties, each step names its device."""
    hooks.add("before_device_create", "50_dev", DEVICE_SCRIPT)
    m = hs_env()
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256,
                              nics=[model.NicSpec(name="nic1"),
                                    model.NicSpec(name="nic10",
                                                  custom_properties={"p_mtu": "9000"})]),
                 "cl1")
    steps = m.hook_admin.dry_run("before_device_create", "vm1", run_scripts=True)
    assert [s["device"] for s in steps] == ["ua-nic10"]
    assert steps[0]["by"].endswith("50_dev on device ua-nic10") and steps[0]["rc"] == 0
    assert any(line.startswith("+") and "data-seen" in line for line in steps[0]["diff"])
    m.vms.create(model.VmSpec(name="vm2", memory_mib=256, nics=[model.NicSpec(name="nic1")]),
                 "cl1")
    steps = m.hook_admin.dry_run("before_device_create", "vm2", run_scripts=True)
    assert steps and all(s["ran"] is False for s in steps)
    assert "no disk or NIC of VM 'vm2' has custom properties" in steps[0]["note"]
