"""A third architecture added through entry points only: no change to the core."""

from __future__ import annotations

import json

import pytest

from virtplane import domxml, model
from virtplane.errors import InvalidInput

AARCH64 = '''
from pathlib import Path

class Aarch64:
    VIRTPLANE_PLUGIN_API = ">=2.0,<3"
    name = "aarch64"
    default_os = "other_aarch64"
    memory_granularity_mib = 1

    def __init__(self, settings=None):
        self.settings = settings

    def cpu_models(self):
        return ["cortex-a57", "cortex-a72", "neoverse-n1"]

    def machine_types(self):
        return ["virt"]

    def chipset(self, spec):
        return None

    def osinfo_files(self):
        return [Path(__file__).with_name("aarch64.properties")]

    def features(self, compat_version):
        return {"live_migration": False, "memory_snapshot": False, "hibernate": True,
                "disk_hotplug": True, "nic_hotplug": True, "uefi": True}

    def disk_hotplug_refusal(self, interface):
        return None

    def validate(self, spec, cluster):
        if spec.machine not in (None, "virt"):
            return [f"machine type {spec.machine!r} is not available on aarch64; allowed: virt"]
        return []

    def customize_domain(self, spec, cluster, domain):
        domain.os.arch = "aarch64"
        domain.os.machine = spec.machine or "virt"
        domain.features.gic_version = "3"
'''

PROPERTIES = """
os.other_aarch64.id.value = 7001
os.other_aarch64.name.value = Other OS
os.other_aarch64.cpuArchitecture.value = aarch64
os.other_aarch64.resources.minimum.ram.value = 128
os.other_aarch64.resources.maximum.ram.value = 1048576
os.other_aarch64.devices.diskInterfaces.value = VirtIO, VirtIO_SCSI
os.other_aarch64.devices.disk.hotpluggableInterfaces.value = VirtIO, VirtIO_SCSI
os.other_aarch64.devices.network.value = pv
os.other_aarch64.devices.display.protocols.value = vnc/virtio
os.other_aarch64.devices.watchdog.models.value = i6300esb
os.other_aarch64.devices.cdInterface.value = scsi

os.debian_12_aarch64.id.value = 7002
os.debian_12_aarch64.name.value = Debian 12 (arm64)
os.debian_12_aarch64.derivedFrom.value = other_aarch64
"""


@pytest.fixture
def aarch64(plugin_site):
    plugin_site.add("vp-arch-aarch64", {"vp_aarch64/__init__.py": AARCH64,
                                        "vp_aarch64/aarch64.properties": PROPERTIES},
                    {"virtplane.architectures": {"aarch64": "vp_aarch64:Aarch64"}})


def test_aarch64_vm_validates_and_renders(aarch64, manager_factory, cli):
    rc, out, _ = cli("plugins", "show", "aarch64", "--json")
    assert json.loads(out)["status"] == "loaded"
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("arm", "dc", architecture="aarch64", cpu_model="neoverse-n1")
    host = m.hosts.add("h", "arm", "test:///default")
    assert {o["name"] for o in m.arch.os_list("aarch64")} == {"other_aarch64", "debian_12_aarch64"}
    vm = m.vms.create(model.VmSpec(name="arm1", memory_mib=512, os="debian_12_aarch64",
                                   disks=[model.DiskSpec(name="d", interface="virtio-scsi",
                                                         path="/dev/null")],
                                   nics=[model.NicSpec(name="n", model="virtio")]), "arm")
    with pytest.raises(InvalidInput, match="interface 'ide' is not allowed on "
                                           r"debian_12_aarch64 \(aarch64"):
        m.vms.create(model.VmSpec(name="arm2", memory_mib=512, os="debian_12_aarch64",
                                  disks=[model.DiskSpec(name="d", interface="ide")]), "arm")
    with pytest.raises(InvalidInput, match="machine type 'q35' is not available on aarch64"):
        m.vms.create(model.VmSpec(name="arm3", memory_mib=512, machine="q35"), "arm")
    # rendering goes through the plugin; the test driver then runs its mock guest
    doc = domxml.parse(m.vms.domain_xml(vm, host))["domain"]
    assert doc["devices"]["disk"][0]["target"]["@bus"] == "scsi"
    m.vms.start("arm1")
    assert m.vms.get("arm1").status == model.VmStatus.UP
    m.vms.destroy("arm1")


def test_architecture_features_refuse_migration_and_ppc64_vscsi_hotplug(aarch64,
                                                                        manager_factory):
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("arm", "dc", architecture="aarch64")
    m.clusters.add("ppc", "dc", architecture="ppc64")
    m.hosts.add("h1", "arm", "test:///default")
    m.hosts.add("h2", "arm", "test:///default")
    m.hosts.add("p1", "ppc", "test:///default")
    m.vms.create(model.VmSpec(name="a", memory_mib=512), "arm")
    m.vms.start("a", host="h1")
    with pytest.raises(InvalidInput, match="live migration is not supported on aarch64"):
        m.migrations.migrate("a", "h2")
    m.vms.destroy("a")
    m.vms.create(model.VmSpec(name="p", memory_mib=512), "ppc")
    m.vms.start("p")
    with pytest.raises(InvalidInput, match="hot-plugging an sPAPR VSCSI disk is not supported"):
        m.devices.hotplug_disk("p", model.DiskSpec(name="x", interface="spapr-vscsi",
                                                   path="/dev/null"))
    m.vms.destroy("p")
