"""Hook scripts on a real libvirtd + QEMU: pinning and launch flags."""

from __future__ import annotations

import os

import libvirt
import pytest

from tests.conftest import need
from tests.hook_scripts.test_scripts import PINCPU
from tests.integration.test_qemu_system import URI, _libvirtd_up
from virtplane import model

pytestmark = pytest.mark.integration


def test_pincpu_script_pins_a_real_guest(hooks, manager_factory):
    need(_libvirtd_up(), f"libvirtd is not reachable at {URI}")
    hooks.add("before_vm_start", "50_pincpu", PINCPU)
    hooks.add("before_vm_start", "60_paused", """
        import os, hooking
        flags = hooking.load_vm_launch_flags_from_file(os.environ['vmId'])
        hooking.dump_vm_launch_flags_to_file(os.environ['vmId'], flags | 1)  # START_PAUSED
    """)
    m = manager_factory()
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    m.hosts.add("h1", "cl1", URI)
    name = f"vp-pin-{os.getpid()}"
    m.vms.create(model.VmSpec(name=name, memory_mib=256, vcpus=2,
                              custom_properties={"pincpu": "0"}), "cl1")
    m.vms.start(name)
    c = libvirt.open(URI)
    dom = c.lookupByName(name)
    assert "cpuset='0'" in dom.XMLDesc(0)
    # libvirt reports the pinning it applied: every vCPU on CPU 0 only
    assert all(cpumap[0] and not any(cpumap[1:]) for cpumap in dom.vcpuPinInfo(0))
    assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
    assert m.vms.get(name).status == model.VmStatus.PAUSED
    c.close()
    m.vms.destroy(name)
    m.vms.remove(name)
