"""VDSM fidelity (issue 16): device properties reach only their device, VDSM's payload
keys, custom properties from the CLI, osinfo problems in ``plugins doctor``."""

from __future__ import annotations

import json

from virtplane import model

DEVICE_ENV = """
import json, os, hooking
# a NIC/disk script in the VDSM style: which device am I, which properties do I see
dev = hooking.read_domxml()
alias = dev.getElementsByTagName('alias')[0].getAttribute('name')
seen = {{k: v for k, v in os.environ.items() if k.startswith('p_')}}
with open({log!r}, 'a') as f:
    f.write(json.dumps([alias, seen]) + '\\n')
"""


def _cleanup(m):
    for vm in m.vms.list():
        if vm.status != model.VmStatus.DOWN and vm.host_id:
            m.vms.destroy(vm.name)


def test_device_properties_reach_only_their_device(hooks, hs_env, tmp_path):
    log = tmp_path / "devices.log"
    hooks.add("before_device_create", "50_env", DEVICE_ENV.format(log=str(log)))
    m = hs_env()
    # oVirt's names: ua-nic1 is a substring of ua-nic10's XML, ua-d of ua-d1's
    nics = [model.NicSpec(name="nic1", custom_properties={"p_nic1": "1"}),
            model.NicSpec(name="nic10", custom_properties={"p_nic10": "10"}),
            model.NicSpec(name="nic2")]
    disks = [model.DiskSpec(name="d", path=str(tmp_path / "d.img"),
                            custom_properties={"p_d": "d"}),
             model.DiskSpec(name="d1", path=str(tmp_path / "d1.img"),
                            custom_properties={"p_d1": "d1"})]
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256, nics=nics, disks=disks,
                              custom_properties={"p_vm": "v"}), "cl1")
    m.vms.start("vm1")
    runs = dict(json.loads(line) for line in log.read_text().splitlines())
    # once per device with properties (nic2 has none), each with its own and the VM's
    assert runs == {"ua-nic1": {"p_nic1": "1", "p_vm": "v"},
                    "ua-nic10": {"p_nic10": "10", "p_vm": "v"},
                    "ua-d": {"p_d": "d", "p_vm": "v"},
                    "ua-d1": {"p_d1": "d1", "p_vm": "v"}}
    _cleanup(m)


def test_device_of_matches_the_alias_and_the_kind():
    from virtplane_hook_scripts import _device_of

    spec = model.VmSpec(name="v", nics=[model.NicSpec(name="x"), model.NicSpec(name="x1")],
                        disks=[model.DiskSpec(name="x")])
    assert _device_of(spec, "<interface><alias name='ua-x1'/></interface>") is spec.nics[1]
    assert _device_of(spec, "<interface><alias name='ua-x'/></interface>") is spec.nics[0]
    assert _device_of(spec, "<disk><alias name='ua-x'/></disk>") is spec.disks[0]
    assert _device_of(spec, "<disk><alias name='ua-x1'/></disk>") is None
    assert _device_of(spec, "<interface><alias name='net0'/></interface>") is None
    assert _device_of(spec, "<interface>ua-x</interface>") is None
    assert _device_of(spec, "vif = ['ua-x']") is None  # not XML: no device
