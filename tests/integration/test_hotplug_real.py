"""Memory and vCPU hotplug and volume preparation on real QEMU (qemu:///system).

The guests have no OS: QEMU plugs DIMMs and vCPUs without one (a guest would
online them); unplugging needs the guest's cooperation, so a DIMM unplug is
checked for what it records (hooks, events, the VM's memory agreeing with the
modules still live), not for the module leaving. Locally these skip when libvirtd is not
running; in CI (CI=true) they fail.
"""

from __future__ import annotations

import os
import types
from pathlib import Path
from xml.etree import ElementTree

import libvirt
import pytest

from tests.conftest import need
from virtplane import hookimpl, model
from virtplane.errors import InvalidInput, VirtplaneError

pytestmark = pytest.mark.integration

URI = "qemu:///system"


def _libvirtd_up() -> bool:
    try:
        c = libvirt.open(URI)
    except libvirt.libvirtError:
        return False
    c.close()
    return True


@pytest.fixture
def real(manager_factory, tmp_path):
    need(_libvirtd_up(), f"libvirtd is not reachable at {URI} (run tools/start-daemons.sh)")
    m = manager_factory()
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    m.hosts.add("h1", "cl1", URI)
    m.storage.add("data1", "localfs", "dc1", {"path": str(tmp_path / "sd")})
    yield m
    for vm in m.vms.list():
        if vm.status != model.VmStatus.DOWN and vm.host_id:
            m.vms.destroy(vm.name)


def _live(name: str) -> str:
    c = libvirt.open(URI)
    try:
        return str(c.lookupByName(name).XMLDesc(0))
    finally:
        c.close()


def _cmdline(name: str) -> str:
    with open(f"/run/libvirt/qemu/{name}.pid") as f:
        pid = int(f.read().strip())
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_memory_and_vcpu_hotplug_on_real_qemu(real):
    m = real
    name = f"vp-hot-{os.getpid()}"
    seen: list[str] = []
    mod = types.ModuleType("hotrec")
    for point in ("before_memory_hotplug", "after_memory_hotplug", "before_set_num_of_cpus",
                  "after_set_num_of_cpus"):
        if point.endswith("cpus"):
            def fn(vm, domxml, vcpus, point=point):
                seen.append(f"{point}:{vcpus}")
        else:
            def fn(vm, devxml, point=point):
                seen.append(point)
        setattr(mod, point, hookimpl(specname=point)(fn))
    m.plugins.pm.register(mod, name="hotrec")
    m.vms.create(model.VmSpec(name=name, memory_mib=256, max_memory_mib=1024, vcpus=1,
                              max_vcpus=4), "cl1")
    m.vms.start(name)
    live = _live(name)
    assert "<maxMemory slots='16' unit='KiB'>1048576</maxMemory>" in live
    assert "current='1'>4</vcpu>" in live

    m.devices.hotplug_memory(name, 256)
    assert m.vms.get(name).spec.memory_mib == 512
    assert "model='dimm'" in _live(name)
    with pytest.raises(InvalidInput, match="does not fit"):
        m.devices.hotplug_memory(name, 1024)

    m.devices.set_vcpus(name, 3)
    assert m.vms.get(name).spec.vcpus == 3
    c = libvirt.open(URI)
    try:
        assert c.lookupByName(name).vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE) == 3
    finally:
        c.close()
    with pytest.raises(InvalidInput, match="at most 4 vCPUs"):
        m.devices.set_vcpus(name, 5)
    assert seen == ["before_memory_hotplug", "after_memory_hotplug",
                    "before_set_num_of_cpus:3", "after_set_num_of_cpus:3"]
    assert any("vCPUs set to 3" in msg for _t, _l, msg in m.vms.events(name))


def test_after_disk_prepare_can_move_a_volume_on_real_qemu(real, tmp_path):
    """VDSM's after_disk_prepare may hand QEMU another path for a prepared volume."""
    m = real
    name = f"vp-prep-{os.getpid()}"
    alt = tmp_path / "elsewhere.qcow2"
    prepared: list[dict[str, str]] = []

    def after_disk_prepare(payload):
        import shutil

        prepared.append(dict(payload.data))
        shutil.copyfile(payload.data["path"], alt)
        payload.data = {**payload.data, "path": str(alt)}

    mod = types.ModuleType("prep")
    mod.after_disk_prepare = hookimpl(after_disk_prepare)
    m.plugins.pm.register(mod, name="prep")
    dom = m.storage.get("data1")
    m.vms.create(model.VmSpec(name=name, memory_mib=256, disks=[
        model.DiskSpec(name="d0", size_bytes=16 << 20, domain_id=dom.id)]), "cl1")
    m.vms.start(name)
    assert len(prepared) == 1 and prepared[0]["disk"] == "d0" and prepared[0]["format"] == "qcow2"
    assert str(alt) in _live(name) and str(alt) in _cmdline(name)


def test_memory_hotunplug_on_real_qemu(real):
    """Plug a DIMM, then unplug it. Without a guest OS nobody ejects the DIMM, so
    libvirt may report the unplug as requested while the module stays (it completes
    when a guest acknowledges it) or refuse it: either way the hook points, the event
    log and the stored memory must tell one consistent story."""
    m = real
    name = f"vp-unhot-{os.getpid()}"
    seen: list[tuple[str, str]] = []
    mod = types.ModuleType("unhotrec")
    for point in ("before_memory_hotplug", "after_memory_hotplug", "before_memory_hotunplug",
                  "after_memory_hotunplug", "after_memory_hotunplug_fail"):
        if point.endswith("_fail"):
            def fn(vm, devxml, error, point=point):
                seen.append((point, devxml.xml))
        else:
            def fn(vm, devxml, point=point):
                seen.append((point, devxml.xml))
        setattr(mod, point, hookimpl(specname=point)(fn))
    m.plugins.pm.register(mod, name="unhotrec")
    m.vms.create(model.VmSpec(name=name, memory_mib=256, max_memory_mib=1024), "cl1")
    m.vms.start(name)
    m.devices.hotplug_memory(name, 256)
    assert m.vms.get(name).spec.memory_mib == 512
    with pytest.raises(InvalidInput, match="no plugged memory module of 128 MiB"):
        m.devices.hotunplug_memory(name, 128)
    assert [p for p, _x in seen] == ["before_memory_hotplug", "after_memory_hotplug"]
    seen.clear()

    failed = None
    try:
        m.devices.hotunplug_memory(name, 256)
    except VirtplaneError as exc:
        failed = exc
    points = [p for p, _x in seen]
    events = [msg for _t, _l, msg in m.vms.events(name)]
    vm = m.vms.get(name)
    assert vm.status == model.VmStatus.UP
    # the hooks got the DIMM libvirt has live (found by size: 256 MiB, live in KiB)
    unplugged = ElementTree.fromstring(seen[0][1])
    assert unplugged.tag == "memory" and unplugged.get("model") == "dimm"
    assert unplugged.findtext("target/size") == str(256 * 1024)
    assert unplugged.find("alias") is not None
    # what is stored is what the guest has: the base 256 MiB plus the DIMMs still live
    live_dimms = ElementTree.fromstring(_live(name)).findall("devices/memory")
    assert vm.spec.memory_mib == 256 + 256 * len(live_dimms)
    if failed is not None:  # the hypervisor refused the request
        assert points == ["before_memory_hotunplug", "after_memory_hotunplug_fail"]
        assert len(live_dimms) == 1 and events[-1].startswith("memory_hotunplug failed")
    elif live_dimms:  # accepted, but the guest (here: none) has not released it
        assert points == ["before_memory_hotunplug", "after_memory_hotunplug"]
        assert "has not released it yet" in events[-1]
    else:  # done
        assert points == ["before_memory_hotunplug", "after_memory_hotunplug"]
        assert events[-1] == "memory_hotunplug: memory unplugged"
    m.vms.destroy(name)
