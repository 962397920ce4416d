"""Architecture and OS rules, checked before anything touches a host."""

from __future__ import annotations

import pytest

from virtplane import model
from virtplane.errors import InvalidInput


@pytest.fixture
def m(manager_factory):
    m = manager_factory()
    m.datacenters.add("dc", compat_version="4.2")  # cluster "old" is 4.2
    m.clusters.add("x86", "dc")
    m.clusters.add("ppc", "dc", architecture="ppc64", cpu_model="POWER9")
    m.clusters.add("old", "dc", architecture="ppc64", compat_version="4.2")
    return m


def _refused(m, spec, cluster, *messages):
    with pytest.raises(InvalidInput) as info:
        m.vms.create(spec, cluster)
    for msg in messages:
        assert msg in str(info.value), str(info.value)
    assert m.vms.list() == []


def test_ide_disk_on_ppc64(m):
    _refused(m, model.VmSpec(name="v", memory_mib=512, os="rhel_9_ppc64",
                             disks=[model.DiskSpec(name="d", interface="ide")]), "ppc",
             "disk 'd': interface 'ide' is not allowed on rhel_9_ppc64 (ppc64, compatibility "
             "4.8); allowed: virtio, virtio-scsi, spapr-vscsi")


def test_sles11_allows_no_virtio_scsi(m):
    _refused(m, model.VmSpec(name="v", memory_mib=512, os="sles_11_ppc64",
                             disks=[model.DiskSpec(name="d", interface="virtio-scsi")]), "ppc",
             "allowed: virtio, spapr-vscsi")


def test_nic_and_display_the_os_does_not_allow(m):
    _refused(m, model.VmSpec(name="v", memory_mib=512, os="other_ppc64",
                             nics=[model.NicSpec(name="n", model="e1000")],
                             display=model.DisplaySpec(type="spice")), "ppc",
             "nic 'n': model 'e1000' is not allowed on other_ppc64 (ppc64, compatibility 4.8); "
             "allowed: virtio, spapr-vlan",
             "display spice/* is not allowed on other_ppc64 (ppc64, compatibility 4.8); "
             "allowed: vnc/vga")


def test_cpu_model_outside_the_architecture(m):
    with pytest.raises(InvalidInput, match="CPU model 'POWER9' is not supported on x86_64; "
                                           "allowed: Nehalem"):
        m.clusters.add("bad", "dc", cpu_model="POWER9")
    _refused(m, model.VmSpec(name="v", memory_mib=512, cpu_model="Skylake-Server"), "ppc",
             "CPU model 'Skylake-Server' is not a ppc64 model; allowed: POWER8, POWER9, POWER10")
    _refused(m, model.VmSpec(name="v", memory_mib=512, cpu_model="POWER10"), "old",
             "CPU model POWER10 needs compatibility 4.8 or later")
    _refused(m, model.VmSpec(name="v", memory_mib=512, os="rhel_9_ppc64", cpu_model="POWER8"),
             "ppc", "CPU model POWER8 is not supported by rhel_9_ppc64 (ppc64); unsupported: power8")


def test_ppc64_memory_comes_in_256_mib_blocks(m):
    _refused(m, model.VmSpec(name="v", memory_mib=1000), "ppc",
             "memory 1000 MiB is not a multiple of 256 MiB, which ppc64 requires; e.g. 1024 MiB")
    m.vms.create(model.VmSpec(name="v", memory_mib=1024), "ppc")


def test_os_of_another_architecture_and_unknown_os(m):
    _refused(m, model.VmSpec(name="v", memory_mib=512, os="rhel_9x64"), "ppc",
             "OS rhel_9x64 is a x86_64 OS but cluster 'ppc' is ppc64; OSes for ppc64:")
    _refused(m, model.VmSpec(name="v", memory_mib=512, os="amigaos"), "x86",
             "OS 'amigaos' is not known to osinfo; OSes for x86_64:")


def test_windows_11_needs_tpm_cpus_and_memory(m):
    _refused(m, model.VmSpec(name="v", memory_mib=2048, os="windows_11"), "x86",
             "memory 2048 MiB is outside what windows_11 allows",
             "windows_11 needs at least 2 vCPUs", "windows_11 requires a TPM device")
    m.vms.create(model.VmSpec(name="v", memory_mib=4096, vcpus=2, os="windows_11", tpm=True),
                 "x86")


def test_chipset_decides_ide_and_sata(m):
    _refused(m, model.VmSpec(name="v", memory_mib=512, os="rhel_9x64",
                             disks=[model.DiskSpec(name="d", interface="sata")], machine="pc"),
             "x86", "interface 'sata' is not allowed on rhel_9x64 (x86_64, compatibility 4.8) "
             "with the i440fx chipset; allowed: ide, virtio-scsi, virtio")
    m.vms.create(model.VmSpec(name="v", memory_mib=512, os="rhel_9x64",
                              disks=[model.DiskSpec(name="d", interface="ide")], machine="pc"),
                 "x86")


def test_default_os_follows_the_architecture(m):
    vm = m.vms.create(model.VmSpec(name="p", memory_mib=512,
                                   nics=[model.NicSpec(name="n", model="spapr-vlan")]), "ppc")
    assert m.arch.os_name(vm.spec, m.store.find(model.Cluster, "ppc")) == "other_ppc64"


def test_embedder_api_lists_what_the_ui_shows(m):
    ppc = {o["name"] for o in m.arch.os_list("ppc64")}
    assert {"other_ppc64", "rhel_9_ppc64", "sles_15_ppc64"} <= ppc
    assert all(o["arch"] == "ppc64" for o in m.arch.os_list("ppc64"))
    info = m.arch.os_info("sles_11_ppc64", "4.8")
    assert info["disk_interfaces"] == ["virtio", "spapr-vscsi"]
    assert info["chain"] == ["sles_11_ppc64", "other_linux_ppc64", "other_ppc64"]
    assert info["values"]["devices.cdInterface"]["value"] == "scsi"
    assert info["values"]["devices.cdInterface"]["source"].endswith("ppc64.properties:21")
    assert m.arch.os_info("rhel_9x64", "4.8", "q35")["disk_interfaces"] == ["virtio-scsi", "virtio",
                                                                            "sata"]


def test_ppc64_rendering_assigns_ovirts_addresses(m):
    sd = m.storage.add("sd", "localfs", "dc", {"path": "/tmp/vp-arch-render"})
    m.hosts.add("h", "ppc", "test:///default")
    spec = model.VmSpec(name="r", memory_mib=512, os="rhel_9_ppc64",
                        disks=[model.DiskSpec(name="a", interface="virtio-scsi", domain_id=sd.id),
                               model.DiskSpec(name="b", interface="spapr-vscsi", domain_id=sd.id),
                               model.DiskSpec(name="c", interface="spapr-vscsi", domain_id=sd.id)],
                        nics=[model.NicSpec(name="n", model="spapr-vlan")],
                        cd=model.CdSpec())
    vm = m.vms.create(spec, "ppc")
    from virtplane import domxml

    doc = domxml.parse(m.vms.domain_xml(vm, m.store.find(model.Host, "h")))["domain"]
    addr = {d.get("alias", {}).get("@name", "cd"): d["address"] for d in doc["devices"]["disk"]}
    assert (addr["ua-a"]["@controller"], addr["ua-a"]["@unit"]) == ("1", "0")
    assert (addr["ua-b"]["@controller"], addr["ua-b"]["@unit"]) == ("0", "3")
    assert (addr["ua-c"]["@controller"], addr["ua-c"]["@unit"]) == ("0", "4")
    assert (addr["cd"]["@controller"], addr["cd"]["@unit"]) == ("0", "2")
    ctrl = {c["@index"]: c for c in doc["devices"]["controller"] if c["@type"] == "scsi"}
    assert ctrl["0"]["@model"] == "ibmvscsi" and ctrl["0"]["address"]["@type"] == "spapr-vio"
    assert ctrl["1"]["@model"] == "virtio-scsi"
    assert doc["devices"]["interface"][0]["address"] == {"@type": "spapr-vio", "@reg": "0x1000"}
    assert "features" not in doc


def test_arch_and_os_cli(cli):
    import json

    rc, out, _ = cli("arch", "list", "--json")
    names = {a["name"] for a in json.loads(out)}
    assert {"x86_64", "ppc64"} <= names
    rc, out, _ = cli("arch", "show", "ppc64")
    assert rc == 0 and "memory_granularity_mib   256" in out and "uefi                   no" in out
    rc, out, err = cli("arch", "show", "sparc")
    assert rc == 1 and "no architecture 'sparc' is loaded" in err
    rc, out, _ = cli("os", "list", "--arch", "ppc64", "--json")
    assert {o["arch"] for o in json.loads(out)} == {"ppc64"}
    rc, out, _ = cli("os", "show", "rhel_9x64", "--version", "4.8", "--chipset", "q35")
    assert "disk interfaces: virtio-scsi, virtio, sata" in out
    assert "derived: rhel_9x64 -> rhel_8x64 -> rhel_7x64 -> other_linux -> other" in out
    rc, out, err = cli("os", "show", "beos")
    assert rc == 1 and "no OS named 'beos'" in err


def test_ovirts_own_file_drives_validation(manager_factory, monkeypatch):
    """oVirt's osinfo-defaults.properties, loaded unchanged, decides for both architectures."""
    from tests.arch.test_osinfo import SHARED

    monkeypatch.setenv("VIRTPLANE_OSINFO", str(SHARED))
    m = manager_factory()
    m.datacenters.add("dc", compat_version="4.2")
    m.clusters.add("x86", "dc", compat_version="4.2")
    m.clusters.add("ppc", "dc", architecture="ppc64", compat_version="4.2")
    # entries only oVirt's file has
    assert {"rhel_6_ppc64", "windows_7", "ubuntu_14_04"} <= {o["name"] for o in m.arch.os_list()}
    _refused(m, model.VmSpec(name="v", memory_mib=512, os="rhel_6_ppc64",
                             cpu_model="POWER8"), "ppc",
             "CPU model POWER8 is not supported by rhel_6_ppc64 (ppc64); unsupported: "
             "power8, power9")
    _refused(m, model.VmSpec(name="w", memory_mib=512, os="windows_7",
                             nics=[model.NicSpec(name="n", model="e1000e")]), "x86",
             "nic 'n': model 'e1000e' is not allowed on windows_7 (x86_64, compatibility 4.2)")
    _refused(m, model.VmSpec(name="r", memory_mib=512, os="rhel_3",
                             disks=[model.DiskSpec(name="d", interface="virtio-scsi")],
                             machine="pc"), "x86",
             "interface 'virtio-scsi' is not allowed on rhel_3")
    # oVirt's gotcha, as oVirt has it: at 4.2 other_ppc64 inherits x86 NIC models from 'other'
    m.vms.create(model.VmSpec(name="p", memory_mib=512, os="other_ppc64",
                              nics=[model.NicSpec(name="n", model="e1000")]), "ppc")


def test_too_many_pci_devices(m):
    disks = [model.DiskSpec(name=f"d{i}", interface="virtio") for i in range(30)]
    _refused(m, model.VmSpec(name="v", memory_mib=512, disks=disks), "x86",
             "30 PCI devices (virtio disks, PCI NICs, a VirtIO-SCSI controller) exceed the 26 "
             "that other allows (x86_64)")
