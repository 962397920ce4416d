"""Architectures on real QEMU: a ppc64 pseries guest under TCG, host CPU checks."""

from __future__ import annotations

import os

import libvirt
import pytest

from tests.conftest import need
from tests.integration.test_qemu_system import URI, _libvirtd_up
from virtplane import domxml, model

pytestmark = pytest.mark.integration


@pytest.fixture
def m(manager_factory):
    need(_libvirtd_up(), f"libvirtd is not reachable at {URI}")
    m = manager_factory()
    m.datacenters.add("dc")
    yield m
    # a failed assertion must not leave a guest running (a TCG ppc64 guest eats a core)
    for vm in m.vms.list():
        if vm.status != model.VmStatus.DOWN and vm.host_id:
            m.vms.destroy(vm.name)


def test_ppc64_guest_from_a_vmspec_runs_with_the_addresses_the_plugin_gave(m, tmp_path):
    m.clusters.add("ppc", "dc", architecture="ppc64", cpu_model="POWER9")
    host = m.hosts.add("h", "ppc", URI)
    assert host.status == model.HostStatus.UP, host.status_reason
    assert "ppc64" in host.capabilities["domain_types"]
    sd = m.storage.add("sd", "localfs", "dc", {"path": str(tmp_path / "sd")})
    iso = tmp_path / "cd.iso"
    iso.write_bytes(b"\0" * 65536)
    name = f"vp-ppc-{os.getpid()}"
    spec = model.VmSpec(
        name=name, memory_mib=512, os="rhel_9_ppc64",
        disks=[model.DiskSpec(name="d0", size_bytes=16 << 20, interface="virtio-scsi",
                              domain_id=sd.id),
               model.DiskSpec(name="d1", size_bytes=16 << 20, interface="spapr-vscsi",
                              domain_id=sd.id)],
        nics=[model.NicSpec(name="n0", model="spapr-vlan", network="user")],
        cd=model.CdSpec(path=str(iso)))
    m.vms.create(spec, "ppc")
    planned = domxml.parse(m.vms.domain_xml(m.vms.get(name), host))["domain"]["devices"]
    m.vms.start(name)
    c = libvirt.open(URI)
    dom = c.lookupByName(name)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    live = domxml.parse(dom.XMLDesc(0))["domain"]
    assert live["@type"] == "qemu"  # TCG: this x86_64 host has no KVM for ppc64
    assert live["os"]["type"]["@arch"] == "ppc64"
    assert live["os"]["type"]["@machine"].startswith("pseries")

    def addr(devs, tag):
        out = {}
        for d in devs.get(tag, []):
            key = d.get("target", {}).get("@dev") or d.get("alias", {}).get("@name")
            a = d.get("address", {})
            out[key] = (a.get("@type"), a.get("@controller"), a.get("@unit"),
                        int(a["@reg"], 16) if "@reg" in a else None)
        return out

    planned_disks, live_disks = addr(planned, "disk"), addr(live["devices"], "disk")
    for key, want in planned_disks.items():
        assert live_disks[key] == want, (key, want, live_disks)
    assert live_disks["sdb"][1:3] == ("0", "3") and live_disks["sdz"][1:3] == ("0", "2")
    assert live_disks["sda"][1:3] == ("1", "0")
    vscsi = [x for x in live["devices"]["controller"] if x.get("@model") == "ibmvscsi"][0]
    assert vscsi["@index"] == "0" and int(vscsi["address"]["@reg"], 16) == 0x2000
    nic = live["devices"]["interface"][0]["address"]
    assert nic["@type"] == "spapr-vio" and int(nic["@reg"], 16) == 0x1000
    c.close()
    m.vms.destroy(name)
    m.vms.remove(name)


def test_x86_64_q35_virtio_guest_runs(m, tmp_path):
    m.clusters.add("x86", "dc")
    host = m.hosts.add("h", "x86", URI)
    sd = m.storage.add("sd", "localfs", "dc", {"path": str(tmp_path / "sd")})
    name = f"vp-q35-{os.getpid()}"
    m.vms.create(model.VmSpec(name=name, memory_mib=256, os="rhel_9x64", machine="q35",
                              disks=[model.DiskSpec(name="d", size_bytes=8 << 20,
                                                    interface="virtio", domain_id=sd.id)],
                              nics=[model.NicSpec(name="n", model="virtio", network="user")]),
                 "x86")
    m.vms.start(name)
    live = m.vms.get(name).started_xml
    assert "machine='pc-q35" in live and "bus='virtio'" in live
    kvm = "kvm" in host.capabilities["domain_types"].get("x86_64", [])
    assert f"type='{'kvm' if kvm else 'qemu'}'" in live
    print(f"x86_64 q35 guest ran under {'KVM' if kvm else 'TCG'}")
    m.vms.destroy(name)
    m.vms.remove(name)


def test_host_without_the_clusters_cpu_is_nonoperational(m):
    c = libvirt.open(URI)
    from virtplane_kvm.driver import KvmConnection
    from virtplane_kvm.settings import KvmSettings

    usable = KvmConnection(URI, KvmSettings()).usable_cpu_models("x86_64")
    c.close()
    unusable = next(x for x in ("Icelake-Server", "SapphireRapids", "EPYC-Genoa",
                                "Skylake-Server") if x not in usable)
    m.clusters.add("big", "dc", cpu_model=unusable)
    host = m.hosts.add("h", "big", URI)
    assert host.status == model.HostStatus.NON_OPERATIONAL
    assert f"cluster's CPU model {unusable}" in host.status_reason
    from virtplane.errors import InvalidState

    m.vms.create(model.VmSpec(name="nope", memory_mib=256), "big")
    with pytest.raises(InvalidState, match="no host is Up"):
        m.vms.start("nope")
