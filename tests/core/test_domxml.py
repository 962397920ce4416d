"""The typed domain XML layer (plugin API 2.0): views, round trips, build, 1.x adapters."""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from importlib.util import find_spec

import pytest

from tests.conftest import need
from virtplane import domxml, drivers, model
from virtplane.domxml import (
    Cdrom,
    Controller,
    Disk,
    Domain,
    Interface,
    XMLBoolProperty,
    XMLElement,
    XMLFlag,
    XMLIntProperty,
    XMLProperty,
)
from virtplane.errors import InvalidInput
from virtplane.hookspecs import VirtplaneDeprecationWarning

RICH = """<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>rich</name>
  <uuid>11111111-2222-4333-8444-555555555555</uuid>
  <metadata>
    <ovirt-vm:vm xmlns:ovirt-vm="http://ovirt.org/vm/1.0">
      <ovirt-vm:clusterVersion>4.8</ovirt-vm:clusterVersion>
    </ovirt-vm:vm>
  </metadata>
  <memory unit='GiB'>2</memory>
  <vcpu placement='static' current='2'>4</vcpu>
  <os firmware='efi'>
    <type arch='x86_64' machine='q35'>hvm</type>
    <smbios mode='sysinfo'/>
  </os>
  <!-- a hook was here -->
  <cpu mode='custom' match='exact'><model fallback='forbid'>EPYC</model>
    <feature policy='require' name='x2apic'/><topology sockets='4' cores='1' threads='1'/>
  </cpu>
  <devices>
    <disk type='file' device='disk' snapshot='external'>
      <driver name='qemu' type='qcow2' cache='none' discard='unmap'/>
      <source file='/images/a.qcow2'><seclabel model='dac' relabel='no'/></source>
      <target dev='vda' bus='virtio'/>
      <iotune><total_bytes_sec>1000</total_bytes_sec></iotune>
      <alias name='ua-d'/>
    </disk>
    <disk type='file' device='disk'><source file='/images/b.qcow2'/>
      <target dev='vdb' bus='virtio'/><alias name='ua-d1'/></disk>
    <disk type='file' device='cdrom'><target dev='sdz' bus='sata'/><readonly/></disk>
    <interface type='bridge'><mac address='56:6f:00:00:00:01'/><source bridge='br0'/>
      <model type='virtio'/><filterref filter='clean-traffic'/><alias name='ua-nic1'/></interface>
    <interface type='bridge'><source bridge='br0'/><model type='virtio'/>
      <alias name='ua-nic10'/></interface>
    <controller type='scsi' index='0' model='ibmvscsi'><address type='spapr-vio' reg='0x2000'/></controller>
    <graphics type='spice' autoport='yes'><listen type='network' network='vdsm-ovirtmgmt'/></graphics>
    <memballoon model='virtio'><stats period='5'/></memballoon>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
  <qemu:commandline><qemu:arg value='-no-hpet'/></qemu:commandline>
</domain>"""


def canon(xml: str) -> str:
    return ET.canonicalize(xml, strip_text=True)


# ------------------------------------------------------------------- round trips


def test_round_trip_of_a_live_test_driver_domain() -> None:
    need(find_spec("libvirt") is not None, "libvirt-python is not installed")
    import libvirt

    conn = libvirt.open("test:///default")
    try:
        live = conn.lookupByName("test").XMLDesc(0)
    finally:
        conn.close()
    dom = Domain.from_xml(live)
    assert dom.type == "test" and dom.name == "test"
    assert dom.memory_mib == 8192 and dom.vcpu == 2 and dom.os.arch == "i686"
    assert dom.os.boot_devs == ["hd"]
    (disk,) = dom.devices.disks
    assert (disk.target_dev, disk.target_bus, disk.source_file) == ("vda", "virtio",
                                                                    "/guest/diskimage1")
    assert disk.address.type == "pci" and disk.address.bus == "0x01"
    (nic,) = dom.devices.interfaces
    assert (nic.type, nic.source_network, nic.mac) == ("network", "default",
                                                        "aa:bb:cc:dd:ee:ff")
    assert canon(dom.to_xml()) == canon(live)
    # unmodelled devices come through iteration as plain views
    assert [d.element.tag for d in dom.devices] == ["disk", "interface", "memballoon"]


def test_round_trip_keeps_what_the_classes_do_not_model() -> None:
    dom = Domain.from_xml(RICH)
    assert canon(dom.to_xml()) == canon(RICH)
    disk = dom.devices.find("disk", "d")
    assert isinstance(disk, Disk)
    disk.target_dev = "sda"
    disk.target_bus = "scsi"
    nic = dom.devices.find("interface", "nic1")
    assert isinstance(nic, Interface)
    nic.link_state = "down"
    out = dom.to_xml()
    again = Domain.from_xml(out)
    assert again.devices.disk_targets() == ["sda", "vdb", "sdz"]
    assert again.devices.interfaces[0].link_state == "down"
    for kept in ("<iotune><total_bytes_sec>1000</total_bytes_sec></iotune>",
                 'cache="none"', 'snapshot="external"', '<seclabel model="dac"',
                 '<filterref filter="clean-traffic"', '<stats period="5"',
                 "<!-- a hook was here -->", "<ovirt-vm:clusterVersion>4.8",
                 '<qemu:arg value="-no-hpet"', '<feature policy="require" name="x2apic"'):
        assert kept in out, kept
    assert "\n" not in out  # compact
    assert Domain.from_xml(out).to_xml() == out  # deterministic
    assert again.memory_mib == 2048 and again.vcpu_current == 2 and again.os.firmware == "efi"
    assert again.cpu.model == "EPYC" and again.cpu.model_fallback == "forbid"
    assert again.devices.controllers[0].address.reg == 0x2000


def test_bad_xml_is_refused_with_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="domain XML is not well-formed XML"):
        Domain.from_xml("<domain><name>x</domain>")
    with pytest.raises(InvalidInput, match="must have a <domain> root, not <disk>"):
        Domain.from_xml("<disk/>")
    with pytest.raises(InvalidInput, match=r"wraps <disk>, not <interface>"):
        Disk(ET.fromstring("<interface/>"))


# ------------------------------------------------------------------- aliases


@pytest.mark.parametrize("order", [("nic1", "nic10"), ("nic10", "nic1")])
def test_alias_lookup_is_exact(order: tuple[str, str]) -> None:
    dom = Domain.new("v", "u", 64, 1)
    for name in order:
        nic = Interface()
        nic.type, nic.alias_name = "user", "ua-" + name
        dom.devices.add(nic)
    for name in ("d1", "d"):
        disk = Disk()
        disk.target_dev, disk.alias_name = "vd" + name[-1], "ua-" + name
        dom.devices.add(disk)
    assert dom.devices.find("interface", "nic1").alias_name == "ua-nic1"  # type: ignore[union-attr]
    assert dom.devices.find("interface", "nic10").alias_name == "ua-nic10"  # type: ignore[union-attr]
    assert dom.devices.by_alias("ua-nic1").alias_name == "ua-nic1"  # type: ignore[union-attr]
    assert dom.devices.find("interface", "nic") is None
    assert dom.devices.find("disk", "d").alias_name == "ua-d"  # type: ignore[union-attr]
    assert dom.devices.find("disk", "d1").alias_name == "ua-d1"  # type: ignore[union-attr]
    assert dom.devices.find("interface", "d") is None  # kind matters
    assert dom.devices.by_alias("ic1") is None


def test_disk_aliases_and_targets_of_old_helpers() -> None:
    assert domxml.disk_aliases(RICH) == {"ua-d": "vda", "ua-d1": "vdb"}
    assert domxml.disk_targets(RICH) == ["vda", "vdb", "sdz"]
    assert domxml.disk_targets("name = 'vm.cfg text'") == []


# ------------------------------------------------------------------- property types


class Thing(XMLElement):
    TAG = "thing"
    label = XMLProperty("@label")
    text = XMLProperty("inner")
    count = XMLIntProperty("inner/@count")
    reg = XMLIntProperty("@reg", hex=True)
    enabled = XMLBoolProperty("@enabled")
    power = XMLBoolProperty("state/@power", style="onoff")
    marked = XMLFlag("marker")


def test_property_types_read_write_and_clear() -> None:
    t = Thing()
    assert t.label is None and t.count is None and t.enabled is None and t.marked is False
    assert t.to_xml() == "<thing />"  # reading creates nothing
    t.label, t.text, t.count, t.reg = "a", "hello", 3, 4096
    t.enabled, t.power, t.marked = True, False, True
    assert t.to_xml() == ('<thing label="a" reg="0x1000" enabled="yes"><inner count="3">hello'
                          '</inner><state power="off" /><marker /></thing>')
    back = Thing.from_xml(t.to_xml())
    assert (back.label, back.text, back.count, back.reg) == ("a", "hello", 3, 4096)
    assert (back.enabled, back.power, back.marked) == (True, False, True)
    back.text = back.count = None
    back.power = None
    back.marked = False
    assert back.to_xml() == '<thing label="a" reg="0x1000" enabled="yes" />'  # pruned


def test_property_types_refuse_bad_values() -> None:
    t = Thing.from_xml('<thing enabled="maybe" reg="zz"><state power="yes"/></thing>')
    with pytest.raises(InvalidInput, match=r"@enabled is 'maybe'; allowed: yes, no"):
        _ = t.enabled
    with pytest.raises(InvalidInput, match=r"state/@power is 'yes'; allowed: on, off"):
        _ = t.power
    with pytest.raises(InvalidInput, match=r"@reg is 'zz'; allowed: an integer"):
        _ = t.reg
    with pytest.raises(InvalidInput, match="count must be an integer"):
        t.count = "3"  # type: ignore[assignment]
    with pytest.raises(InvalidInput, match="enabled must be True or False"):
        t.enabled = "yes"  # type: ignore[assignment]


def test_lazy_children_appear_on_first_write_only() -> None:
    dom = Domain.new("v", "u", 64, 1)
    assert not dom.cpu.exists and dom.cpu.model is None
    assert "<cpu" not in dom.to_xml()
    dom.cpu.set_model("host-passthrough")
    assert dom.cpu.mode == "host-passthrough" and dom.cpu.model is None
    dom.cpu = None
    assert "<cpu" not in dom.to_xml()
    with pytest.raises(InvalidInput, match="positive memory"):
        Domain.new("v", "u", 0, 1)


# ------------------------------------------------------------------- build_domain


def rich_spec(**changes: object) -> model.VmSpec:
    fields: dict[str, object] = dict(
        name="vm1", memory_mib=512, vcpus=2,
        disks=[model.DiskSpec(name="data", path="/i/data.qcow2"),
               model.DiskSpec(name="root", path="/i/root.qcow2", bootable=True)],
        nics=[model.NicSpec(name="nic1", network="ovirtmgmt", mac="56:6f:00:00:00:01"),
              model.NicSpec(name="nic2", network="user", model="e1000e")],
        cd=model.CdSpec(path="/iso/install.iso"),
        display=model.DisplaySpec(type="vnc", video="vga"),
        custom_properties={"boot_sequence": "DCN"})
    fields.update(changes)
    return model.VmSpec(**fields)  # type: ignore[arg-type]


SOURCES = [{"type": "file", "source": {"@file": "/i/data.qcow2"}},
           {"type": "file", "source": {"@file": "/i/root.qcow2"}}]


def test_build_domain_writes_what_ovirt_writes() -> None:
    dom = domxml.build_domain(rich_spec(), "vm-uuid", SOURCES)
    assert dom.type is None, "the hypervisor sets the domain type, not the generic part"
    assert dom.cpu.exists and (dom.cpu.sockets, dom.cpu.cores, dom.cpu.threads) == (2, 1, 1)
    assert dom.os.smbios_mode == "sysinfo" and dom.os.boot_devs == []
    info = dom.sysinfo
    assert (info.type, info.manufacturer, info.family, info.uuid) == ("smbios", "oVirt",
                                                                      "oVirt", "vm-uuid")
    assert (info.product, info.version, info.serial) == ("OS-NAME:", "OS-VERSION:",
                                                         "HOST-SERIAL:")
    nic1, nic2 = dom.devices.interfaces
    assert (nic1.type, nic1.source_bridge, nic1.source_network, nic1.mac) == (
        "bridge", "ovirtmgmt", None, "56:6f:00:00:00:01")
    assert (nic2.type, nic2.model, nic2.source_bridge) == ("user", "e1000e", None)
    (cd,) = dom.devices.cdroms
    assert isinstance(cd, Cdrom) and cd.readonly and cd.source_file == "/iso/install.iso"
    # boot sequence D, C, N: the CD, the bootable disk before the other, then the NICs
    orders = {(d.alias_name or d.element.tag): d.boot_order for d in dom.devices
              if d.boot_order is not None}
    assert orders == {"disk": 1, "ua-root": 2, "ua-data": 3, "ua-nic1": 4, "ua-nic2": 5}
    assert dom.devices.graphics[0].passwd_valid_to == "1970-01-01T00:00:01"
    domxml.fill_sysinfo(dom, "Debian GNU/Linux", "12", "host-uuid")
    assert (info.product, info.version, info.serial) == ("Debian GNU/Linux", "12",
                                                         "host-uuid")


def test_build_domain_networks_cpu_and_bad_input() -> None:
    dom = domxml.build_domain(
        rich_spec(cpu_model="Skylake-Client", custom_properties={},
                  nics=[model.NicSpec(name="n", network="default"),
                        model.NicSpec(name="m", network="network:nat1")]), "u", SOURCES)
    assert [(n.type, n.source_network) for n in dom.devices.interfaces] == [
        ("network", "default"), ("network", "nat1")]
    assert (dom.cpu.mode, dom.cpu.match, dom.cpu.model) == ("custom", "exact",
                                                            "Skylake-Client")
    assert [d.boot_order for d in dom.devices.disks] == [2, 1, 3]  # default sequence CD
    with pytest.raises(InvalidInput, match="boot_sequence='CX' is not a boot sequence"):
        domxml.build_domain(rich_spec(custom_properties={"boot_sequence": "CX"}), "u", SOURCES)
    with pytest.raises(InvalidInput, match="names no libvirt network"):
        domxml.build_domain(rich_spec(nics=[model.NicSpec(name="n", network="network:")]),
                            "u", SOURCES)
    with pytest.raises(InvalidInput, match="has 2 disks but 1 disk sources"):
        domxml.build_domain(rich_spec(), "u", SOURCES[:1])


def test_kernel_boot_has_no_boot_order() -> None:
    spec = rich_spec(boot=model.BootSpec(kernel="/k", cmdline="console=ttyS0"))
    dom = domxml.build_domain(spec, "u", SOURCES)
    assert dom.os.kernel == "/k" and dom.os.cmdline == "console=ttyS0"
    assert all(d.boot_order is None for d in dom.devices)


def test_old_build_still_returns_the_1x_dict() -> None:
    doc = domxml.build(rich_spec(), "u", SOURCES)
    body = doc["domain"]
    assert isinstance(body["devices"]["disk"], list)
    assert body["os"]["type"] == {"#text": "hvm"}
    xml = domxml.to_xml(doc)
    assert canon(xml) == canon(Domain.from_dict(doc).to_xml())
    devices = domxml.devices_xml(xml)
    assert [t for t, _ in devices] == ["disk", "disk", "disk", "interface", "interface",
                                      "graphics", "video"]
    rebuilt = domxml.replace_devices(xml, devices[:1])
    assert domxml.disk_targets(rebuilt) == ["vda"] and "<sysinfo" in rebuilt
    assert domxml.nic_element(model.NicSpec(name="n", network="br0"))["source"] == {
        "@bridge": "br0"}


# ------------------------------------------------------------------- dispatch


class OldArch:
    """A 1.x architecture driver: edits the dict."""

    def render(self, spec: model.VmSpec, cluster: model.Cluster, domain: dict) -> None:  # type: ignore[type-arg]
        domain["os"]["type"]["@machine"] = "virt"
        domain["features"] = {"gic": {"@version": "3"}}
        domain["devices"].setdefault("controller", []).append({"@type": "usb", "@index": "0"})


class OldHypervisor:
    def render(self, domain: dict, arch: str, virt_type: str | None = None) -> None:  # type: ignore[type-arg]
        domain["@type"] = virt_type or "old"


def test_1x_render_still_works_through_the_dict_and_warns_once() -> None:
    cluster = model.Cluster(name="c", datacenter_id="dc", architecture="aarch64")
    dom = domxml.build_domain(rich_spec(), "u", SOURCES)
    with pytest.warns(VirtplaneDeprecationWarning, match="OldArch implements only render"):
        drivers.apply_architecture(OldArch(), rich_spec(), cluster, dom)
    assert dom.os.machine == "virt" and dom.features.gic_version == "3"
    assert not dom.features.acpi
    assert [c.type for c in dom.devices.controllers] == ["usb"]
    assert dom.sysinfo.uuid == "u" and dom.cpu.sockets == 2  # the rest survived
    with pytest.warns(VirtplaneDeprecationWarning, match="OldHypervisor"):
        drivers.apply_hypervisor(OldHypervisor(), dom, "aarch64", "qemu")
    assert dom.type == "qemu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second VM of the same driver class: no warning
        drivers.apply_architecture(OldArch(), rich_spec(), cluster, dom)
        drivers.apply_hypervisor(OldHypervisor(), dom, "aarch64", None)
    assert dom.type == "old"


def test_first_party_drivers_use_the_2_0_methods_without_warning() -> None:
    from virtplane_arch_ppc64 import Ppc64
    from virtplane_arch_x86_64 import X86_64

    x86 = model.Cluster(name="c", datacenter_id="dc", cpu_model="EPYC")
    dom = domxml.build_domain(rich_spec(), "u", SOURCES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drivers.apply_architecture(X86_64(), rich_spec(), x86, dom)
    assert (dom.os.arch, dom.os.machine, dom.cpu.model) == ("x86_64", "q35", "EPYC")
    assert dom.features.acpi and dom.features.apic
    assert dom.devices.cdroms[0].target_bus == "sata"
    assert [c.model for c in dom.devices.controllers][:2] == ["pcie-root", "pcie-root-port"]
    assert isinstance(dom.devices.controllers[0], Controller)

    ppc = model.Cluster(name="p", datacenter_id="dc", architecture="ppc64")
    spec = rich_spec(memory_mib=1024, disks=[
        model.DiskSpec(name="data", path="/i/d", interface="spapr-vscsi"),
        model.DiskSpec(name="root", path="/i/r", interface="virtio-scsi")],
        nics=[model.NicSpec(name="n0", model="spapr-vlan", network="user")])
    dom = domxml.build_domain(spec, "u", SOURCES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drivers.apply_architecture(Ppc64(), spec, ppc, dom)
    assert not dom.sysinfo.exists and dom.os.smbios_mode is None and not dom.features.exists
    data, root, cd = dom.devices.disks
    assert (data.address.controller, data.address.unit) == (0, 3)
    assert (root.address.controller, root.address.unit) == (1, 0)
    assert (cd.target_dev, cd.address.unit) == ("sdz", 2)
    assert dom.devices.interfaces[0].address.reg == 0x1000


def test_kvm_adapts_the_domain_for_the_test_driver() -> None:
    need(find_spec("libvirt") is not None, "libvirt-python is not installed")
    from virtplane_kvm.driver import KvmConnection
    from virtplane_kvm.settings import KvmSettings

    conn = KvmConnection("test:///default", KvmSettings())
    try:
        dom = domxml.build_domain(rich_spec(cpu_model="EPYC"),
                                  "3c1f6b52-6a38-4bd4-9d1e-0d6c2f0e7a11", SOURCES)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            drivers.apply_hypervisor(conn, dom, "x86_64", None)
        assert dom.type == "test" and dom.os.machine is None
        assert dom.cpu.exists and dom.cpu.model is None and dom.cpu.sockets == 2
        assert dom.cpu.mode is None  # host-model means nothing on the test driver
        assert dom.sysinfo.product != "OS-NAME:" and dom.sysinfo.serial != "HOST-SERIAL:"
        dom.name = "vp-domxml-test"
        live = Domain.from_xml(conn.start("vp-domxml-test", dom.to_xml()))
        assert live.name == "vp-domxml-test" and live.cpu.sockets == 2
        conn.destroy("vp-domxml-test")
    finally:
        conn.close()


@pytest.mark.parametrize(("types", "arch", "cpu_model", "want"), [
    (["qemu", "kvm"], "x86_64", None, ("kvm", "host-model", None)),
    (["qemu", "kvm"], "x86_64", "EPYC", ("kvm", "custom", "EPYC")),
    (["qemu", "kvm"], "x86_64", "host-passthrough", ("kvm", "host-passthrough", None)),
    (["qemu", "kvm"], "aarch64", None, ("kvm", "host-passthrough", None)),
    (["qemu"], "x86_64", None, ("qemu", None, None)),  # TCG: QEMU's own default model
    (["qemu"], "x86_64", "EPYC", ("qemu", None, None)),
])
def test_kvm_cpu_is_host_model_unless_a_model_is_named(
        types: list[str], arch: str, cpu_model: str | None,
        want: tuple[str, str | None, str | None]) -> None:
    """oVirt's default CPU under KVM: ``host-model`` when neither the VM nor its cluster
    names one; no model under TCG (and on the test driver, above)."""
    need(find_spec("libvirt") is not None, "libvirt-python is not installed")
    from virtplane_kvm.driver import KvmConnection
    from virtplane_kvm.settings import KvmSettings

    conn = KvmConnection("test:///default", KvmSettings())
    try:
        # a host offering these domain types (no real qemu:///system needed)
        conn._caps = {"arch": arch, "domain_types": {arch: types}, "guest_arches": [arch]}
        conn._identity = ("OS", "1", "serial")
        conn.uri = "qemu:///fake"
        dom = domxml.build_domain(rich_spec(cpu_model=cpu_model),
                                  "3c1f6b52-6a38-4bd4-9d1e-0d6c2f0e7a11", SOURCES)
        drivers.apply_hypervisor(conn, dom, arch, None)
        assert (dom.type, dom.cpu.mode, dom.cpu.model) == want
        assert dom.cpu.sockets == 2
        assert ('<cpu mode="host-model"' in dom.to_xml()) == (want[1] == "host-model")
        assert "arch-capabilities" not in dom.to_xml()
        if want[1] == "host-model":
            # a nested host (the CPU flag 'hypervisor'): its KVM refuses the MSR
            conn._caps["cpu_features"] = ["hypervisor", "vmx"]
            dom = domxml.build_domain(rich_spec(cpu_model=cpu_model), "u", SOURCES)
            drivers.apply_hypervisor(conn, dom, arch, None)
            assert dom.cpu.mode == "host-model"
            assert "<feature policy=\"disable\" name=\"arch-capabilities\"" in dom.to_xml()
    finally:
        conn.uri = "test:///default"
        conn.close()


@pytest.mark.parametrize("which", ["built", "rich"])
def test_dict_form_is_what_xmltodict_gives_and_round_trips(which: str) -> None:
    import xmltodict

    dom = (domxml.build_domain(rich_spec(), "u", SOURCES) if which == "built"
           else Domain.from_xml(RICH))
    body = dom.to_dict()
    expected = xmltodict.parse(dom.to_xml(), force_list=("disk", "interface", "controller"))
    expected = dict(expected["domain"])
    if isinstance(expected["os"].get("type"), str):
        expected["os"]["type"] = {"#text": expected["os"]["type"]}
    assert body == expected
    assert canon(Domain.from_dict(body).to_xml()) == canon(dom.to_xml())
