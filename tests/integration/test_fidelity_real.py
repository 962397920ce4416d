"""VDSM-era hook scripts on a real libvirtd + QEMU (issue 16): what they write reaches the
QEMU process's command line. No guest OS is needed (the firmware just waits)."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import need
from tests.integration.test_qemu_system import URI, _libvirtd_up, _qemu_pid
from virtplane import model

pytestmark = pytest.mark.integration

#: fills <sysinfo> as oVirt's sysinfo-style hooks do, through the vdsm modules
SYSINFO = """
import os
from vdsm.hook import hooking
from vdsm.common import units
from vdsm.config import config

if 'vp_serial' in os.environ:
    dom = hooking.read_domxml()
    system = dom.getElementsByTagName('sysinfo')[0].getElementsByTagName('system')[0]
    wanted = {
        'serial': '%s-%d' % (os.environ['vp_serial'], units.KiB),
        'sku': 'overhead-%d' % config.getint('vars', 'guest_ram_overhead'),
    }
    for entry in system.getElementsByTagName('entry'):
        if entry.getAttribute('name') in wanted:
            system.removeChild(entry)
    for name, value in sorted(wanted.items()):
        entry = dom.createElement('entry')
        entry.setAttribute('name', name)
        entry.appendChild(dom.createTextNode(value))
        system.appendChild(entry)
    hooking.write_domxml(dom)
"""

#: edits <cpu>: a named model (one TCG runs too) and a topology
CPU = """
import os
import hooking

if 'vp_cpu' in os.environ:
    dom = hooking.read_domxml()
    cpu = dom.getElementsByTagName('cpu')[0]
    for child in list(cpu.childNodes):
        cpu.removeChild(child)
    for attr in list(cpu.attributes.keys()):
        cpu.removeAttribute(attr)
    cpu.setAttribute('mode', 'custom')
    cpu.setAttribute('match', 'exact')
    cpu.setAttribute('check', 'none')  # qemu64 names svm, which an Intel host lacks under KVM
    model = dom.createElement('model')
    model.setAttribute('fallback', 'allow')
    model.appendChild(dom.createTextNode(os.environ['vp_cpu']))
    cpu.appendChild(model)
    topology = dom.createElement('topology')
    for key, value in (('sockets', '1'), ('dies', '1'), ('cores', '2'), ('threads', '1')):
        topology.setAttribute(key, value)
    cpu.appendChild(topology)
    hooking.write_domxml(dom)
"""

#: a NIC script in the VDSM style: only for NICs carrying its property
MAC = """
import json, os
import hooking

dev = hooking.read_domxml()
alias = dev.getElementsByTagName('alias')[0].getAttribute('name')
with open({log!r}, 'a') as f:
    f.write(json.dumps(alias) + '\\n')
if 'vp_mac' in os.environ:
    iface = dev.getElementsByTagName('interface')[0]
    for mac in iface.getElementsByTagName('mac'):
        iface.removeChild(mac)
    mac = dev.createElement('mac')
    mac.setAttribute('address', os.environ['vp_mac'])
    iface.appendChild(mac)
    hooking.write_domxml(dev)
"""


def _cmdline(name: str) -> list[str]:
    with open(f"/proc/{_qemu_pid(name)}/cmdline", "rb") as f:
        return f.read().decode().split("\0")


def _device_arg(arg: str) -> dict[str, str]:
    """A ``-device`` argument as a dict, whichever syntax libvirt used."""
    if arg.startswith("{"):
        try:
            data = json.loads(arg)
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return dict(part.split("=", 1) for part in arg.split(",") if "=" in part)


def test_sysinfo_cpu_and_nic_scripts_reach_the_qemu_command_line(hooks, manager_factory,
                                                                  tmp_path):
    need(_libvirtd_up(), f"libvirtd is not reachable at {URI} (run tools/start-daemons.sh)")
    log = tmp_path / "nics.log"
    sysinfo = hooks.add("before_vm_start", "10_sysinfo", SYSINFO)
    if os.path.exists("/usr/bin/python3"):
        # as published hooks are: the system interpreter, not virtplane's venv
        sysinfo.write_text("#!/usr/bin/python3\n" + sysinfo.read_text().split("\n", 1)[1])
    hooks.add("before_vm_start", "20_cpu", CPU)
    hooks.add("before_device_create", "50_mac", MAC.format(log=str(log)))
    m = manager_factory()
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    m.hosts.add("h1", "cl1", URI)
    m.storage.add("data1", "localfs", "dc1", {"path": str(tmp_path / "sd")})
    dom = m.store.find(model.StorageDomain, "data1")
    name = f"vp-fid-{os.getpid()}"
    nics = [model.NicSpec(name="nic1", network="user"),
            model.NicSpec(name="nic10", network="user",
                          custom_properties={"vp_mac": "52:54:00:16:00:10"})]
    spec = model.VmSpec(name=name, memory_mib=256, vcpus=2, nics=nics,
                        disks=[model.DiskSpec(name="d", size_bytes=8 << 20, domain_id=dom.id)],
                        custom_properties={"vp_serial": "VP-SERIAL", "vp_cpu": "qemu64"})
    m.vms.create(spec, "cl1")
    try:
        m.vms.start(name)
        args = _cmdline(name)
        joined = " ".join(args)
        smbios = [a for a in args if a.startswith("type=1,")]
        assert smbios, f"no -smbios type=1 in {joined}"
        assert "serial=VP-SERIAL-1024" in smbios[0] and "sku=overhead-65" in smbios[0]
        cpu = args[args.index("-cpu") + 1]
        assert cpu.split(",")[0] == "qemu64", cpu
        smp = args[args.index("-smp") + 1]
        assert "sockets=1" in smp and "cores=2" in smp and "threads=1" in smp, smp
        # the NIC script ran for the NIC with the property only (not nic1, not the disk)
        assert [json.loads(line) for line in log.read_text().splitlines()] == ["ua-nic10"]
        # -device arguments are JSON objects (libvirt 9 + QEMU 7) or key=value lists
        nets = {_device_arg(a).get("id"): _device_arg(a).get("mac") for a in args
                if _device_arg(a).get("mac")}
        assert nets["ua-nic10"] == "52:54:00:16:00:10", nets
        assert nets["ua-nic1"] and nets["ua-nic1"] != "52:54:00:16:00:10", nets
        # and what QEMU got is what virtplane reports, with VDSM's keys
        stats = m.vms.stats(name)
        assert stats["vmId"] == m.vms.get(name).id and stats["vcpuCount"] == "2"
        assert float(stats["cpuUser"]) >= 0 and int(stats["elapsedTime"]) >= 0
    finally:
        if m.vms.get(name).status != model.VmStatus.DOWN:
            m.vms.destroy(name)
        m.vms.remove(name)
