"""VM lifecycle through the embedder API on libvirt's test driver (test:///default)."""

from __future__ import annotations

import libvirt
import pytest

from virtplane import model
from virtplane.errors import (
    AlreadyExists,
    HookError,
    HostUnreachable,
    InvalidInput,
    InvalidState,
)


def _spec(name="vm1", **kw):
    return model.VmSpec(name=name, memory_mib=kw.pop("memory_mib", 256),
                        disks=kw.pop("disks", []),
                        nics=[model.NicSpec(name="nic0")], **kw)


def _on_host(name):
    conn = libvirt.open("test:///default")
    try:
        return name in [d.name() for d in conn.listAllDomains()]
    finally:
        conn.close()


def test_full_lifecycle_fires_its_hooks(env, recorder, tmp_path):
    dom = env.store.find(model.StorageDomain, "data1")
    disk = model.DiskSpec(name="d0", size_bytes=16 << 20, domain_id=dom.id,
                          custom_properties={"iotune": "low"})
    vm = env.vms.create(_spec(disks=[disk]), "cl1")
    image = env.store.get(model.Image, vm.spec.disks[0].image_id)
    vol_path = tmp_path / "sd" / dom.id / "images" / image.id / image.volumes[0].id
    assert vol_path.exists()

    env.vms.start("vm1")
    calls = recorder.take()
    # volumes are prepared before the XML is built (VDSM's order), one call per managed disk
    assert calls[:2] == ["after_disk_prepare", "adjust_domain_xml"]
    # device hooks run only for devices with custom properties (VDSM's contract): the disk
    assert calls.count("before_device_create") == calls.count("after_device_create") == 1
    assert calls.index("before_vm_start") < calls.index("after_vm_start")
    vm = env.vms.get("vm1")
    assert vm.status == model.VmStatus.UP and _on_host("vm1")
    assert str(vol_path) in vm.started_xml

    stats = env.vms.stats("vm1")
    assert stats["name"] == "vm1" and stats["status"] == "Up"
    assert recorder.take() == ["before_get_vm_stats", "after_get_vm_stats"]

    env.vms.pause("vm1")
    assert env.vms.get("vm1").status == model.VmStatus.PAUSED
    assert recorder.take() == ["before_vm_pause", "after_vm_pause"]
    env.vms.resume("vm1")
    assert recorder.take() == ["before_vm_cont", "after_vm_cont"]

    env.snapshots.take("vm1", "s1")
    assert [s.name for s in env.snapshots.list("vm1")] == ["s1"]
    with pytest.raises(AlreadyExists):
        env.snapshots.take("vm1", "s1")

    env.vms.hibernate("vm1")
    vm = env.vms.get("vm1")
    assert vm.status == model.VmStatus.DOWN and vm.saved_state and not _on_host("vm1")
    assert recorder.take() == ["before_vm_hibernate", "after_vm_hibernate"]
    with pytest.raises(InvalidState, match="hibernated; restore it"):
        env.vms.start("vm1")
    env.vms.restore("vm1")
    assert env.vms.get("vm1").status == model.VmStatus.UP and _on_host("vm1")
    assert recorder.take() == ["before_vm_dehibernate", "after_vm_dehibernate"]

    env.vms.destroy("vm1")
    calls = recorder.take()
    assert calls[0] == "before_vm_destroy" and calls[-1] == "after_vm_destroy"
    assert "before_device_destroy" in calls and "after_device_destroy" in calls
    assert env.vms.get("vm1").status == model.VmStatus.DOWN and not _on_host("vm1")

    env.vms.remove("vm1")
    assert not vol_path.exists()
    assert env.vms.list() == [] and env.store.list(model.Image) == []


def test_shutdown_reports_how(env, recorder):
    env.vms.create(_spec(), "cl1")
    env.vms.start("vm1")
    assert env.vms.shutdown("vm1", timeout=5) == "shutdown"
    assert env.vms.get("vm1").status_reason == "shutdown"


def test_host_caps_and_stats_fire_hooks(env, recorder):
    host = env.store.find(model.Host, "h1")
    caps = env.hosts.capabilities(host)
    from virtplane import PLUGIN_API_VERSION

    assert caps["virtplane"]["plugin_api"] == PLUGIN_API_VERSION  # the core's built-in plugin
    assert caps["cpus"] == 16 and caps["numa_cells"][0]["id"] == 0
    assert recorder.take() == ["before_get_caps", "extend_host_capabilities", "after_get_caps"]
    stats = env.hosts.stats("h1")
    assert stats["memory_mib"] == 3072 and stats["vms"] >= 1 and len(stats["load"]) == 3
    assert recorder.take() == ["before_get_stats", "after_get_stats"]
    env.vms.all_stats("h1")
    assert recorder.take() == ["before_get_all_vm_stats", "after_get_all_vm_stats"]


def test_vdsm_start_and_stop_hooks(manager_factory, recorder):
    m = manager_factory()
    m.plugins.pm.register(recorder.module, name="recorder")
    m.close()
    assert recorder.take() == ["after_vdsm_stop"]


def test_crash_is_detected_and_fires_after_vm_destroy(env, recorder):
    env.vms.create(_spec(), "cl1")
    env.vms.start("vm1")
    recorder.take()
    conn = libvirt.open("test:///default")
    conn.lookupByName("vm1").destroy()  # dies behind virtplane's back
    conn.close()
    changed = env.monitor.refresh_host("h1")
    assert [v.name for v in changed] == ["vm1"]
    vm = env.vms.get("vm1")
    assert vm.status == model.VmStatus.DOWN and vm.status_reason.startswith("crashed")
    assert "after_vm_destroy" in recorder.take()


# ------------------------------------------------------------------ bad input


def test_unreachable_uri(env):
    with pytest.raises(HostUnreachable, match="cannot connect to qemu\\+unix:///system\\?socket=/nonexistent"):
        env.hosts.add("h2", "cl1", "qemu+unix:///system?socket=/nonexistent/sock")
    assert [h.name for h in env.store.list(model.Host)] == ["h1"]


def test_duplicate_vm_name(env):
    env.vms.create(_spec(), "cl1")
    with pytest.raises(AlreadyExists, match="a VM named 'vm1' already exists"):
        env.vms.create(_spec(), "cl1")


def test_start_of_a_running_vm(env):
    env.vms.create(_spec(), "cl1")
    env.vms.start("vm1")
    with pytest.raises(InvalidState, match="VM 'vm1' is Up; only a Down VM can be started"):
        env.vms.start("vm1")


def test_memory_above_the_hosts(env):
    env.vms.create(_spec(memory_mib=1 << 20), "cl1")
    with pytest.raises(InvalidInput, match="asks for 1048576 MiB but host 'h1' has 3072 MiB"):
        env.vms.start("vm1")
    assert env.vms.get("vm1").status == model.VmStatus.DOWN and not _on_host("vm1")


def test_a_hook_that_raises_fails_the_start_cleanly(env, recorder):
    env.vms.create(_spec(), "cl1")
    recorder.raise_in["before_vm_start"] = RuntimeError("pinning failed")
    with pytest.raises(HookError, match="hook before_vm_start of plugin 'recorder' failed: "
                                        "RuntimeError: pinning failed"):
        env.vms.start("vm1")
    vm = env.vms.get("vm1")
    assert vm.status == model.VmStatus.DOWN and "pinning failed" in vm.status_reason
    assert not _on_host("vm1")
    assert any("start failed" in e[2] for e in env.vms.events("vm1"))
    # an after_* hook that raises is logged, the operation stands
    del recorder.raise_in["before_vm_start"]
    recorder.raise_in["after_vm_start"] = RuntimeError("noisy")
    env.vms.start("vm1")
    assert env.vms.get("vm1").status == model.VmStatus.UP
    assert any("noisy" in e[2] and e[1] == "error" for e in env.vms.events("vm1"))


def test_hypervisor_refusal_leaves_nothing_defined(env):
    env.vms.create(_spec(), "cl1")
    conn = libvirt.open("test:///default")
    xml = "<domain type='test'><name>vm1</name><memory>1024</memory><os><type>hvm</type></os></domain>"
    squatter = conn.createXML(xml, 0)  # a foreign domain with the same name
    try:
        with pytest.raises(InvalidState, match="a domain named 'vm1' already exists"):
            env.vms.start("vm1")
        assert env.vms.get("vm1").status == model.VmStatus.DOWN
    finally:
        squatter.destroy()
        conn.close()


def test_invalid_spec_is_refused_before_any_host(env):
    bad = model.VmSpec(name="bad name!", vcpus=0,
                       nics=[model.NicSpec(name="n", model="spapr-vlan"),
                             model.NicSpec(name="n")])
    with pytest.raises(InvalidInput) as info:
        env.vms.create(bad, "cl1")
    msg = str(info.value)
    assert "VM name 'bad name!' is not allowed" in msg
    assert "vcpus must be at least 1" in msg
    assert "two nics are named 'n'" in msg
    assert ("nic 'n': model 'spapr-vlan' is not allowed on other (x86_64, compatibility 4.8); "
            "allowed: rtl8139, e1000, e1000e, virtio") in msg
    assert env.vms.list() == []


def test_operations_on_a_vm_in_the_wrong_state(env):
    env.vms.create(_spec(), "cl1")
    with pytest.raises(InvalidState, match="pause needs Up"):
        env.vms.pause("vm1")
    with pytest.raises(InvalidState, match="not running on any host"):
        env.vms.destroy("vm1")
    env.vms.start("vm1")
    with pytest.raises(InvalidState, match="stop it before removing it"):
        env.vms.remove("vm1")


def test_hundreds_of_vms(env):
    n = 300
    for i in range(n):
        env.vms.create(model.VmSpec(name=f"s{i:03}", memory_mib=256), "cl1")
    for i in range(n):
        env.vms.start(f"s{i:03}")
    stats = env.vms.all_stats("h1")
    names = {s["name"] for s in stats}
    assert {f"s{i:03}" for i in range(n)} <= names
    for i in range(0, n, 2):
        env.vms.pause(f"s{i:03}")
    up = [v for v in env.vms.list() if v.status == model.VmStatus.UP]
    assert len(up) == n // 2
    for i in range(n):
        env.vms.destroy(f"s{i:03}")
        env.vms.remove(f"s{i:03}")
    assert env.vms.list() == []


def test_hooks_change_the_xml_libvirt_gets(env):
    import types

    from virtplane import hookimpl

    mod = types.ModuleType("xmlhooks")

    @hookimpl
    def before_vm_start(vm, domxml):
        domxml.xml = domxml.xml.replace("</name>", "</name>\n  <description>from a hook</description>", 1)

    @hookimpl
    def before_device_create(vm, devxml):
        if devxml.xml.startswith("<interface"):
            devxml.xml = devxml.xml.replace("<model type=\"virtio\"", "<model type=\"e1000\"")

    mod.before_vm_start = before_vm_start
    mod.before_device_create = before_device_create
    env.plugins.pm.register(mod, name="xmlhooks")
    spec = _spec()
    spec.nics[0].custom_properties = {"mtu": "9000"}  # device hooks run for such devices
    env.vms.create(spec, "cl1")
    env.vms.start("vm1")
    conn = libvirt.open("test:///default")
    live = conn.lookupByName("vm1").XMLDesc(0)
    conn.close()
    assert "<description>from a hook</description>" in live
    assert "type='e1000'" in live
    # the XML that was actually started is kept with the VM
    assert env.vms.get("vm1").started_xml == live


def test_reboot_keeps_the_vm_up(env):
    env.vms.create(_spec(), "cl1")
    with pytest.raises(InvalidState, match="reboot needs Up"):
        env.vms.reboot("vm1")
    env.vms.start("vm1")
    env.vms.reboot("vm1")
    assert env.vms.get("vm1").status == model.VmStatus.UP and _on_host("vm1")
    assert any("reboot requested" in e[2] for e in env.vms.events("vm1"))
