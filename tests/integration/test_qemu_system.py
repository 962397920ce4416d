"""Real libvirtd + QEMU (qemu:///system), started by tools/start-daemons.sh.

Locally these skip with the reason when libvirtd is not running; in CI
(CI=true) a missing daemon fails them.
"""

from __future__ import annotations

import os
import signal
import time

import libvirt
import pytest

from tests.conftest import need
from virtplane import model

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
    from tests.kvm.conftest import Recorder

    rec = Recorder()
    m = manager_factory()
    m.plugins.pm.register(rec.module, name="recorder")
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    host = m.hosts.add("h1", "cl1", URI)
    m.storage.add("data1", "localfs", "dc1", {"path": str(tmp_path / "sd")})
    rec.take()
    yield m, rec, host
    for vm in m.vms.list():
        if vm.status != model.VmStatus.DOWN and vm.host_id:
            m.vms.destroy(vm.name)


def _qemu_pid(name: str) -> int:
    with open(f"/run/libvirt/qemu/{name}.pid") as f:
        return int(f.read().strip())


def test_x86_64_guest_full_cycle_on_real_qemu(real):
    m, rec, host = real
    kvm = "kvm" in host.capabilities["domain_types"].get("x86_64", [])
    print(f"domain type used: {'kvm' if kvm else 'qemu (TCG)'}")
    dom = m.store.find(model.StorageDomain, "data1")
    name = f"vp-it-{os.getpid()}"
    spec = model.VmSpec(name=name, memory_mib=256,
                        disks=[model.DiskSpec(name="d0", size_bytes=32 << 20, domain_id=dom.id)],
                        nics=[model.NicSpec(name="nic0", network="user")])
    m.vms.create(spec, "cl1")
    m.vms.start(name)
    vm = m.vms.get(name)
    assert vm.status == model.VmStatus.UP
    assert f"type='{'kvm' if kvm else 'qemu'}'" in vm.started_xml
    time.sleep(0.5)
    stats = m.vms.stats(name)
    assert stats["cpu_time_ns"] > 0 and stats["balloon_kib"] == 256 * 1024
    assert len(stats["disks"]) >= 1 and len(stats["nics"]) == 1

    m.vms.pause(name)
    c = libvirt.open(URI)
    assert c.lookupByName(name).state()[0] == libvirt.VIR_DOMAIN_PAUSED
    m.vms.resume(name)
    assert c.lookupByName(name).state()[0] == libvirt.VIR_DOMAIN_RUNNING

    m.vms.hibernate(name)
    assert name not in [d.name() for d in c.listAllDomains()]
    saved = m.vms.get(name).saved_state
    assert saved and os.path.getsize(saved) > 0
    m.vms.restore(name)
    assert c.lookupByName(name).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert not os.path.exists(saved)

    m.snapshots.take(name, "s1")
    image = m.store.get(model.Image, m.vms.get(name).spec.disks[0].image_id)
    assert len(image.volumes) == 2 and image.volumes[1].parent_id == image.volumes[0].id
    live = c.lookupByName(name).XMLDesc(0)
    # the running disk moved onto the new qcow2 leaf, backed by the frozen volume
    assert f"{image.volumes[1].id}'" in live and f"{image.volumes[0].id}'" in live

    # kill QEMU behind virtplane's back: seen as Down with a reason, after_vm_destroy fires
    rec.take()
    os.kill(_qemu_pid(name), signal.SIGKILL)
    for _ in range(50):
        if name not in [d.name() for d in c.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)]:
            break
        time.sleep(0.1)
    changed = m.monitor.refresh_host("h1")
    assert [v.name for v in changed] == [name]
    vm = m.vms.get(name)
    assert vm.status == model.VmStatus.DOWN and vm.status_reason.startswith("crashed")
    assert "after_vm_destroy" in rec.take()
    c.close()
    m.vms.remove(name)


def test_guest_without_os_is_destroyed_after_shutdown_timeout(real):
    m, rec, host = real
    name = f"vp-it-noos-{os.getpid()}"
    m.vms.create(model.VmSpec(name=name, memory_mib=256), "cl1")
    m.vms.start(name)
    t0 = time.monotonic()
    assert m.vms.shutdown(name, timeout=2) == "destroyed"
    assert time.monotonic() - t0 >= 2
    assert m.vms.get(name).status == model.VmStatus.DOWN
    m.vms.remove(name)


def test_failed_start_leaves_nothing_defined(real):
    m, rec, host = real
    name = f"vp-it-bad-{os.getpid()}"
    m.vms.create(model.VmSpec(name=name, memory_mib=256,
                              disks=[model.DiskSpec(name="d0", path="/nonexistent/disk.qcow2")]),
                 "cl1")
    from virtplane.errors import HypervisorError

    with pytest.raises(HypervisorError, match="starting .* on qemu:///system"):
        m.vms.start(name)
    c = libvirt.open(URI)
    assert name not in [d.name() for d in c.listAllDomains()]
    c.close()
    assert m.vms.get(name).status == model.VmStatus.DOWN


def test_disk_and_nic_hotplug_on_real_qemu(real):
    m, rec, host = real
    dom = m.store.find(model.StorageDomain, "data1")
    name = f"vp-it-hp-{os.getpid()}"
    m.vms.create(model.VmSpec(name=name, memory_mib=256), "cl1")
    m.vms.start(name)
    rec.take()
    c = libvirt.open(URI)

    m.devices.hotplug_disk(name, model.DiskSpec(name="extra", size_bytes=8 << 20,
                                                domain_id=dom.id))
    live = c.lookupByName(name).XMLDesc(0)
    assert "ua-extra" in live and "<target dev='vda' bus='virtio'/>" in live
    # the new volume is prepared for the VM (after_disk_prepare), then plugged
    assert rec.take() == ["after_disk_prepare", "before_disk_hotplug", "after_disk_hotplug"]
    assert [d.name for d in m.vms.get(name).spec.disks] == ["extra"]

    m.devices.hotplug_nic(name, model.NicSpec(name="n1", network="user", model="e1000e"))
    assert "ua-n1" in c.lookupByName(name).XMLDesc(0)
    assert rec.take() == ["before_nic_hotplug", "after_nic_hotplug"]

    m.devices.hotunplug_nic(name, "n1")
    assert rec.take() == ["before_nic_hotunplug", "after_nic_hotunplug"]
    for _ in range(50):  # the guest has no OS to acknowledge; QEMU completes the unplug itself
        if "ua-n1" not in c.lookupByName(name).XMLDesc(0):
            break
        time.sleep(0.1)
    assert m.vms.get(name).spec.nics == []

    # a refused plug fires the _fail hook and leaves the spec and storage unchanged
    from virtplane.errors import HypervisorError

    with pytest.raises(HypervisorError):
        m.devices.hotplug_disk(name, model.DiskSpec(name="bad", path="/nonexistent/x.qcow2"))
    assert rec.take() == ["before_disk_hotplug", "after_disk_hotplug_fail"]
    assert [d.name for d in m.vms.get(name).spec.disks] == ["extra"]
    assert any("disk_hotplug failed" in e[2] for e in m.vms.events(name))

    m.devices.hotunplug_disk(name, "extra")
    assert rec.take() == ["before_disk_hotunplug", "after_disk_hotunplug"]
    c.close()
    m.vms.destroy(name)
    m.vms.remove(name)


def test_hotplug_refuses_bad_input(real):
    m, rec, host = real
    name = f"vp-it-hpbad-{os.getpid()}"
    m.vms.create(model.VmSpec(name=name, memory_mib=256), "cl1")
    from virtplane.errors import InvalidInput, InvalidState

    with pytest.raises(InvalidState, match="hotplug needs Up or Paused"):
        m.devices.hotplug_nic(name, model.NicSpec(name="n"))
    m.vms.start(name)
    with pytest.raises(InvalidInput, match=r"model 'spapr-vlan' is not allowed on other \(x86_64"):
        m.devices.hotplug_nic(name, model.NicSpec(name="n", model="spapr-vlan"))
    with pytest.raises(InvalidInput, match="has no interface named 'ghost' plugged"):
        m.devices.hotunplug_nic(name, "ghost")
    m.vms.destroy(name)
    m.vms.remove(name)



@pytest.fixture(scope="module")
def tiny_guest():
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = root / ".work" / "tiny-guest"
    proc = subprocess.run(["bash", str(root / "tools" / "build-tiny-guest.sh"), str(out)],
                          capture_output=True, text=True)
    need(proc.returncode == 0, f"could not build the tiny guest: {proc.stderr[-500:]}")
    return out


def test_tiny_linux_guest_powers_off_on_acpi_shutdown(real, tiny_guest, tmp_path):
    """A real Linux guest (TCG: nested KVM does not boot Linux here) honours ACPI shutdown."""
    m, rec, host = real
    name = f"vp-it-tiny-{os.getpid()}"
    console = tmp_path / "console.log"
    spec = model.VmSpec(
        name=name, memory_mib=256,
        boot=model.BootSpec(kernel=str(tiny_guest / "vmlinuz"),
                            initrd=str(tiny_guest / "initrd.img"), cmdline="console=ttyS0"),
        serial_log=str(console), custom_properties={"virt_type": "qemu"})
    m.vms.create(spec, "cl1")
    m.vms.start(name)
    assert "type='qemu'" in m.vms.get(name).started_xml
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if console.exists() and "tiny-guest: ready" in console.read_text(errors="replace"):
            break
        time.sleep(0.5)
    else:
        pytest.fail("the tiny guest did not boot to its ready line in 120 s")
    t0 = time.monotonic()
    assert m.vms.shutdown(name, timeout=60) == "shutdown"
    assert time.monotonic() - t0 < 60
    assert "powering off" in console.read_text(errors="replace")
    vm = m.vms.get(name)
    assert vm.status == model.VmStatus.DOWN and vm.status_reason == "shutdown"
    m.vms.remove(name)


def test_events_see_a_killed_guest_without_polling(real):
    m, rec, host = real
    name = f"vp-it-ev-{os.getpid()}"
    m.vms.create(model.VmSpec(name=name, memory_mib=256), "cl1")
    m.vms.start(name)
    m.monitor.watch_events()
    rec.take()
    # virtplane's own destroy is not mistaken for a crash
    m.vms.destroy(name)
    m.vms.start(name)
    time.sleep(0.5)
    assert m.vms.get(name).status == model.VmStatus.UP
    rec.take()
    os.kill(_qemu_pid(name), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and m.vms.get(name).status != model.VmStatus.DOWN:
        time.sleep(0.1)
    vm = m.vms.get(name)
    assert vm.status == model.VmStatus.DOWN, "the event did not arrive within 10 s"
    assert vm.status_reason.startswith("crashed: stopped on its own")
    assert "after_vm_destroy" in rec.take()
    m.vms.remove(name)


def test_memory_snapshot_and_revert_on_real_qemu(real, tiny_guest, tmp_path):
    """Snapshot a booted Linux guest with memory, then revert: it comes back Up, running."""
    m, rec, host = real
    dom = m.store.find(model.StorageDomain, "data1")
    name = f"vp-it-msnap-{os.getpid()}"
    console = tmp_path / "console.log"
    spec = model.VmSpec(
        name=name, memory_mib=256,
        disks=[model.DiskSpec(name="d0", size_bytes=16 << 20, domain_id=dom.id)],
        boot=model.BootSpec(kernel=str(tiny_guest / "vmlinuz"),
                            initrd=str(tiny_guest / "initrd.img"), cmdline="console=ttyS0"),
        serial_log=str(console), custom_properties={"virt_type": "qemu"})
    m.vms.create(spec, "cl1")
    m.vms.start(name)
    deadline = time.monotonic() + 120
    while "tiny-guest: ready" not in (console.read_text(errors="replace")
                                      if console.exists() else ""):
        assert time.monotonic() < deadline, "tiny guest did not boot"
        time.sleep(0.5)
    snap = m.snapshots.take(name, "booted", with_memory=True)
    assert snap.memory_path and os.path.getsize(snap.memory_path) > 0
    m.snapshots.take(name, "later")
    m.vms.destroy(name)
    image = m.store.get(model.Image, m.vms.get(name).spec.disks[0].image_id)
    assert len(image.volumes) == 3
    rec.take()
    vm = m.snapshots.revert(name, "booted")
    assert vm.status == model.VmStatus.UP
    assert "before_vm_dehibernate" in rec.take()
    c = libvirt.open(URI)
    assert c.lookupByName(name).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    c.close()
    image = m.store.get(model.Image, vm.spec.disks[0].image_id)
    assert len(image.volumes) == 2  # the frozen layer + a fresh leaf; "later" is gone
    assert [s.name for s in m.snapshots.list(name)] == ["booted"]
    # the restored guest is the booted one: it still answers the power button
    assert m.vms.shutdown(name, timeout=60) == "shutdown"
    m.vms.remove(name)


def test_console_ticket_and_cd_change_on_real_qemu(real, tmp_path):
    m, rec, host = real
    name = f"vp-it-cd-{os.getpid()}"
    iso1, iso2 = tmp_path / "one.iso", tmp_path / "two.iso"
    iso1.write_bytes(b"\0" * 65536)
    iso2.write_bytes(b"\1" * 65536)
    m.vms.create(model.VmSpec(name=name, memory_mib=256, display=model.DisplaySpec(type="vnc"),
                              cd=model.CdSpec(path=str(iso1))), "cl1")
    m.vms.start(name)
    rec.take()
    c = libvirt.open(URI)
    from virtplane.errors import InvalidInput

    with pytest.raises(InvalidInput, match="a VNC password has at most 8 characters"):
        m.devices.set_ticket(name, "much-too-long", expiry_seconds=300)
    m.devices.set_ticket(name, "s3cretpw", expiry_seconds=300)
    secure = c.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
    assert "passwd='s3cretpw'" in secure and "passwdValidTo=" in secure
    assert rec.take() == ["before_vm_set_ticket", "after_vm_set_ticket"]
    assert not any("s3cretpw" in e[2] for e in m.vms.events(name))

    m.devices.change_cd(name, str(iso2))
    assert str(iso2) in c.lookupByName(name).XMLDesc(0)
    assert rec.take() == ["before_update_device", "after_update_device"]
    m.devices.change_cd(name, None)
    live = c.lookupByName(name).XMLDesc(0)
    assert str(iso1) not in live and str(iso2) not in live
    assert m.vms.get(name).spec.cd.path is None
    with pytest.raises(InvalidInput, match="does not exist"):
        m.devices.change_cd(name, str(tmp_path / "missing.iso"))
    with pytest.raises(InvalidInput, match="expiry_seconds must be positive"):
        m.devices.set_ticket(name, "x", expiry_seconds=0)
    c.close()
    m.vms.destroy(name)
    m.vms.remove(name)


def test_localfs_chain_and_thin_template_vm_run_on_real_qemu(real):
    m, rec, host = real
    dom = m.store.find(model.StorageDomain, "data1")
    name = f"vp-chain-{os.getpid()}"
    m.vms.create(model.VmSpec(name=name, memory_mib=256, disks=[
        model.DiskSpec(name="d0", size_bytes=16 << 20, domain_id=dom.id)]), "cl1")
    for i in range(5):
        m.snapshots.take(name, f"s{i}")
    m.snapshots.delete(name, "s1")  # merge a middle layer
    m.vms.start(name)
    c = libvirt.open(URI)
    live = c.lookupByName(name).XMLDesc(0)
    assert live.count("<backingStore type='file'") == 4  # 4 layers under the leaf
    m.vms.destroy(name)
    m.templates.create(name, f"t-{os.getpid()}")
    thin = f"vp-thin-{os.getpid()}"
    m.templates.create_vm(f"t-{os.getpid()}", thin, "cl1")
    m.vms.start(thin)
    assert c.lookupByName(thin).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    c.close()
    m.vms.destroy(thin)
    m.vms.remove(thin)
    m.templates.remove(f"t-{os.getpid()}")
    m.vms.remove(name)
    assert m.storage.verify("data1") == []
