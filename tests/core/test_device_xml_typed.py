"""Hotplug device XML built by the typed domain layer (plugin API 2.0) and the
prepared disk paths a migration hands its destination.

libvirt's test driver has neither hotplug nor migration: the running VM's
connection records what the core asks of it instead (the XML is the subject).
"""

from __future__ import annotations

import os
import types
from typing import Any

import pytest

from tests.libvirt_hosts import forget_test_domains
from virtplane import domxml, hookimpl, model
from virtplane.errors import InvalidInput


@pytest.fixture
def m(manager_factory, tmp_path):
    m = manager_factory()
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    m.hosts.add("h1", "cl1", "test:///default")
    m.hosts.add("h2", "cl1", "test:///default")
    m.storage.add("data1", "localfs", "dc1", {"path": str(tmp_path / "sd")})
    yield m
    forget_test_domains(vm.name for vm in m.vms.list())


class Plugged:
    """Stands in for the hypervisor's hotplug: attach/detach edit the live XML."""

    def __init__(self, conn: Any, monkeypatch: pytest.MonkeyPatch,
                 completes: bool = True) -> None:
        self.conn = conn
        self.completes = completes
        self.attached: list[str] = []
        self.detached: list[str] = []
        self.extra: list[str] = []
        real_live = conn.live_xml

        def live_xml(name: str) -> str:
            dom = domxml.Domain.from_xml(real_live(name))
            for dev in self.extra:
                dom.devices.add(domxml.device_view(domxml.Domain.from_xml(
                    f"<domain><devices>{dev}</devices></domain>").devices.element[0]))
            return dom.to_xml()

        monkeypatch.setattr(conn, "live_xml", live_xml)
        monkeypatch.setattr(conn, "attach_device", self.attach)
        monkeypatch.setattr(conn, "detach_device", self.detach)

    def attach(self, name: str, xml: str) -> None:
        self.attached.append(xml)
        self.extra.append(xml)

    def detach(self, name: str, xml: str) -> None:
        self.detached.append(xml)
        if self.completes:
            self.extra = [x for x in self.extra if not _same(x, xml)]


def _same(a: str, b: str) -> bool:
    da, db = _device(a), _device(b)
    return (da.element.tag, da.alias_name) == (db.element.tag, db.alias_name)


def _device(xml: str) -> domxml.Device:
    return domxml.device_view(domxml.parse_element(xml))


def _running(m, name: str, **spec: Any) -> Any:
    m.vms.create(model.VmSpec(name=name, memory_mib=256, **spec), "cl1")
    m.vms.start(name)
    vm = m.vms.get(name)
    _host, conn = m.vms.host_of(vm)
    return conn


@pytest.fixture
def no_xmltodict(monkeypatch):
    """Hotplug must not build device XML through the 1.x dict form any more."""
    import xmltodict

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("device XML built with xmltodict")

    monkeypatch.setattr(xmltodict, "unparse", refuse)


def test_hotplug_device_xml_is_built_by_the_typed_layer(m, monkeypatch, no_xmltodict):
    name = f"vp-typed-{os.getpid()}"
    conn = _running(m, name, max_memory_mib=1024,
                    nics=[model.NicSpec(name="nic1", network="user")])
    plug = Plugged(conn, monkeypatch)
    seen: list[tuple[str, str]] = []
    mod = types.ModuleType("devrec")
    for point in ("before_nic_hotplug", "before_disk_hotplug", "before_memory_hotplug",
                  "before_nic_hotunplug", "before_disk_hotunplug"):
        def fn(vm, devxml, point=point):
            seen.append((point, devxml.xml))
        setattr(mod, point, hookimpl(specname=point)(fn))
    m.plugins.pm.register(mod, name="devrec")

    m.devices.hotplug_nic(name, model.NicSpec(name="nic10", network="br0", model="e1000",
                                              mac="52:54:00:00:00:10"))
    nic = _device(plug.attached[-1])
    assert isinstance(nic, domxml.Interface)
    assert (nic.alias_name, nic.type, nic.source_bridge, nic.model, nic.mac) == (
        "ua-nic10", "bridge", "br0", "e1000", "52:54:00:00:00:10")

    dom = m.storage.get("data1")
    m.devices.hotplug_disk(name, model.DiskSpec(name="d1", size_bytes=1 << 20,
                                                domain_id=dom.id))
    disk = _device(plug.attached[-1])
    assert isinstance(disk, domxml.Disk)
    assert disk.alias_name == "ua-d1" and disk.device == "disk"
    assert disk.target_dev == "vda" and disk.target_bus == "virtio"
    assert disk.driver_type == "qcow2" and disk.source_file
    assert os.path.exists(disk.source_file)

    m.devices.hotplug_memory(name, 256, node=0)
    dimm = _device(plug.attached[-1])
    assert isinstance(dimm, domxml.Memory)
    assert (dimm.model, dimm.size, dimm.size_unit, dimm.node, dimm.size_mib) == (
        "dimm", 256, "MiB", 0, 256)
    # hooks got exactly what the hypervisor got
    assert [x for p, x in seen if p.endswith("_hotplug")] == plug.attached

    # unplug finds the device by its alias exactly: nic1 is not nic10
    m.devices.hotunplug_nic(name, "nic10")
    assert _device(plug.detached[-1]).alias_name == "ua-nic10"
    m.devices.hotunplug_disk(name, "d1")
    assert _device(plug.detached[-1]).alias_name == "ua-d1"
    with pytest.raises(InvalidInput, match="no disk named 'd'"):
        m.devices.hotunplug_disk(name, "d")
    assert [n.name for n in m.vms.get(name).spec.nics] == ["nic1"]
    assert [p for p, _x in seen] == ["before_nic_hotplug", "before_disk_hotplug",
                                     "before_memory_hotplug", "before_nic_hotunplug",
                                     "before_disk_hotunplug"]


def test_memory_unplug_reads_the_live_unit(m, monkeypatch):
    """Live XML gives a DIMM's size in KiB; other units are converted, not misread."""
    name = f"vp-dimm-{os.getpid()}"
    conn = _running(m, name, max_memory_mib=2048)
    plug = Plugged(conn, monkeypatch)
    plug.extra.append("<memory model='dimm'><target><size unit='GiB'>1</size><node>0</node>"
                      "</target><alias name='dimm0'/></memory>")
    vm = m.vms.get(name)
    vm.spec.memory_mib = 1280
    m.store.update(vm)
    with pytest.raises(InvalidInput, match="no plugged memory module of 1 MiB"):
        m.devices.hotunplug_memory(name, 1)
    m.devices.hotunplug_memory(name, 1024)
    assert _device(plug.detached[-1]).alias_name == "dimm0"
    assert m.vms.get(name).spec.memory_mib == 256


def test_memory_unplug_the_guest_has_not_completed_keeps_the_memory(m, monkeypatch):
    """libvirt accepts a DIMM unplug the guest has not acted on (no guest OS, or a slow
    one): the VM keeps its memory, the event says the unplug is only requested."""
    name = f"vp-dimmwait-{os.getpid()}"
    conn = _running(m, name, max_memory_mib=1024)
    plug = Plugged(conn, monkeypatch, completes=False)
    seen: list[str] = []
    mod = types.ModuleType("unplugrec")
    for point in ("before_memory_hotunplug", "after_memory_hotunplug"):
        def fn(vm, devxml, point=point):
            seen.append(point)
        setattr(mod, point, hookimpl(specname=point)(fn))

    def fail(vm, devxml, error):
        seen.append("after_memory_hotunplug_fail")

    mod.after_memory_hotunplug_fail = hookimpl(specname="after_memory_hotunplug_fail")(fail)
    m.plugins.pm.register(mod, name="unplugrec")
    m.devices.hotplug_memory(name, 256)
    m.devices.hotunplug_memory(name, 256)
    assert len(plug.detached) == 1
    assert m.vms.get(name).spec.memory_mib == 512
    assert seen == ["before_memory_hotunplug", "after_memory_hotunplug"]
    last = [msg for _t, _l, msg in m.vms.events(name)][-1]
    assert "requested" in last and "has not released it yet" in last
    # once the guest lets go, the next look finds nothing left to unplug
    plug.extra.clear()
    with pytest.raises(InvalidInput, match="no plugged memory module of 256 MiB"):
        m.devices.hotunplug_memory(name, 256)


def test_migration_sends_the_prepared_disk_paths(m, monkeypatch, tmp_path):
    """after_disk_prepare may move a volume for the destination: the destination XML
    the driver gets says so (and only that disk's source changes)."""
    name = f"vp-migprep-{os.getpid()}"
    moved: dict[str, str] = {}

    def after_disk_prepare(payload):
        if moved.get("on"):
            alt = str(tmp_path / f"moved-{payload.data['disk']}.qcow2")
            moved[payload.data["path"]] = alt
            payload.data = {**payload.data, "path": alt}

    mod = types.ModuleType("mover")
    mod.after_disk_prepare = hookimpl(after_disk_prepare)
    m.plugins.pm.register(mod, name="mover")
    dom = m.storage.get("data1")
    conn = _running(m, name, disks=[
        model.DiskSpec(name="d", size_bytes=1 << 20, domain_id=dom.id),
        model.DiskSpec(name="d1", size_bytes=1 << 20, domain_id=dom.id)])
    sent: list[dict[str, Any]] = []

    def migrate(vm_name: str, dest_uri: str, *, dest_xml: str | None = None,
                **options: Any) -> None:
        sent.append({"name": vm_name, "dest_xml": dest_xml, **options})

    monkeypatch.setattr(conn, "migrate", migrate)
    # what libvirt checks a destination XML against (here: the live XML, marked)
    migratable = conn.live_xml(name).replace("<domain ", "<domain migratable='yes' ", 1)
    monkeypatch.setattr(conn, "migratable_xml", lambda n: migratable, raising=False)
    before = {d.alias_name: d.source_file
              for d in domxml.Domain.from_xml(conn.live_xml(name)).devices.disks}
    moved["on"] = "1"
    m.migrations.migrate(name, "h2")
    assert len(sent) == 1 and sent[0]["dest_xml"]
    assert "migratable=" in sent[0]["dest_xml"]  # the migratable form, edited
    after = {d.alias_name: d.source_file
             for d in domxml.Domain.from_xml(sent[0]["dest_xml"]).devices.disks}
    assert set(after) == {"ua-d", "ua-d1"}
    for alias in after:
        assert after[alias] == moved[before[alias]] != before[alias]


def test_migration_without_moved_paths_sends_no_destination_xml(m, monkeypatch):
    name = f"vp-migsame-{os.getpid()}"
    dom = m.storage.get("data1")
    conn = _running(m, name, disks=[model.DiskSpec(name="d", size_bytes=1 << 20,
                                                   domain_id=dom.id)])
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(conn, "migrate", lambda n, uri, **o: sent.append(o))
    monkeypatch.setattr(conn, "migratable_xml", lambda n: conn.live_xml(n), raising=False)
    m.migrations.migrate(name, "h2")
    assert len(sent) == 1 and "dest_xml" not in sent[0]


def test_migration_refuses_moved_paths_a_driver_cannot_send(m, monkeypatch, tmp_path):
    """Never silently migrate onto the old path: refuse before anything moves."""
    name = f"vp-migold-{os.getpid()}"

    def after_disk_prepare(payload):
        if m.vms.get(name).status == model.VmStatus.UP:
            payload.data = {**payload.data, "path": str(tmp_path / "elsewhere.qcow2")}

    mod = types.ModuleType("mover2")
    mod.after_disk_prepare = hookimpl(after_disk_prepare)
    m.plugins.pm.register(mod, name="mover2")
    dom = m.storage.get("data1")
    conn = _running(m, name, disks=[model.DiskSpec(name="d", size_bytes=1 << 20,
                                                   domain_id=dom.id)])
    calls: list[str] = []

    def old_migrate(vm_name: str, dest_uri: str, *, migration_uri: str | None = None,
                    bandwidth_mib: int | None = None, max_downtime_ms: int | None = None,
                    unsafe: bool = False, progress: Any = None, cancel: Any = None) -> None:
        calls.append(vm_name)

    monkeypatch.setattr(conn, "migrate", old_migrate)
    # a driver of before the destination XML: no migratable_xml (a fresh class: protocol
    # checks remember classes that had it)
    old_driver = type("OldDriver", (type(conn),), {"migratable_xml": None})
    monkeypatch.setattr(conn, "__class__", old_driver)
    with pytest.raises(InvalidInput, match="cannot migrate with a destination domain XML"):
        m.migrations.migrate(name, "h2")
    assert calls == []
    vm = m.vms.get(name)
    assert vm.status == model.VmStatus.UP and vm.host_id == m.store.find(model.Host, "h1").id
