"""Storage faults: a process killed mid-create, a full disk, an export that disappears,
and standalone disks (create/list/snapshot/clone/remove) through the API and the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import need
from virtplane import model
from virtplane.errors import AlreadyExists, InvalidInput, InvalidState, NoSpace, StorageUnavailable


@pytest.fixture
def m(manager_factory, tmp_path):
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.storage.add("sd", "localfs", "dc", {"path": str(tmp_path / "sd")})
    return m


# The child opens the same state file, makes qemu-img wait (so the kill lands while
# the volume is being written), says where it is, and is killed with SIGKILL.
CHILD = r"""
import sys, time
from pathlib import Path
from virtplane import Manager, config
import virtplane_storage_file.volumes as fd  # where the volume operations call qemu_img
real = fd.qemu_img
def slow(*args, **kw):
    if args[0] in ("create", "convert"):
        Path(sys.argv[2]).write_text("in qemu-img")
        time.sleep(60)
    return real(*args, **kw)
fd.qemu_img = slow
m = Manager(config.load(), state_path=sys.argv[1])
op = sys.argv[3]
if op == "create":
    m.disks.create("big", "sd", 8 << 20)
elif op == "snapshot":
    m.disks.snapshot("base")
elif op == "clone":
    m.disks.clone("base", "copy")
"""


def _kill_during(tmp_path: Path, op: str) -> None:
    marker = tmp_path / f"marker-{op}"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "state.db"),
                             str(marker), op], env=os.environ.copy())
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, f"child exited early with {proc.returncode}"
        assert time.monotonic() < deadline, "child never reached qemu-img"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("op", ["create", "snapshot", "clone"])
def test_kill_mid_create_leaves_a_recorded_illegal_volume(m, manager_factory, tmp_path, op):
    base = m.disks.create("base", "sd", 4 << 20)
    _kill_during(tmp_path, op)
    m2 = manager_factory()
    problems = m2.storage.verify("sd")
    assert any("is illegal" in p and "storage repair" in p for p in problems), problems
    # nothing on the storage that the store does not know about
    assert not any("unrecorded" in p or "not in the state store" in p for p in problems)
    illegal = [d for d in m2.disks.list() if not d["legal"]]
    assert len(illegal) == 1
    if op == "snapshot":
        vm = m2.vms.create(model.VmSpec(name="v", memory_mib=256, disks=[model.DiskSpec(
            name="d", domain_id=base.domain_id, image_id=base.id)]), "cl")
        m2.hosts.add("h", "cl", "test:///default")
        with pytest.raises(InvalidState, match="illegal .* storage repair sd"):
            m2.vms.start(vm.spec.name)
        m2.vms.remove("v")
    done = m2.storage.repair("sd")
    assert len(done) == 1 and "removed illegal volume" in done[0]
    assert m2.storage.verify("sd") == []
    names = sorted(d["name"] for d in m2.disks.list())
    assert names == ["base"]
    assert len(m2.store.find(model.Image, "base").volumes) == 1


def test_failed_create_removes_file_and_record(m, tmp_path, monkeypatch):
    import virtplane_storage_file.filedomain as fd
    import virtplane_storage_file.volumes as volumes

    def broken(*args, **kw):
        raise fd.StorageError("qemu-img create failed: simulated")

    monkeypatch.setattr(volumes, "qemu_img", broken)  # where create_volume calls it
    with pytest.raises(fd.StorageError, match="simulated"):
        m.disks.create("x", "sd", 1 << 20)
    assert m.disks.list() == []
    assert list((tmp_path / "sd").glob("*/images/*")) == []


@pytest.fixture
def tiny(manager_factory):
    """A posixfs domain on a real 6 MiB tmpfs mount."""
    need(os.geteuid() == 0, "mounting tmpfs needs root")
    m = manager_factory()
    m.datacenters.add("dc")
    dom = m.storage.add("tiny", "posixfs", "dc", {
        "spec": "tmpfs", "vfs_type": "tmpfs", "options": "size=6m"})
    yield m, dom
    for d in m.disks.list():
        m.disks.remove(d["id"])
    m.storage.remove("tiny")


def test_disk_full_is_a_clear_error_and_leaves_nothing(tiny):
    m, dom = tiny
    drv = m.context.drivers.storage("posixfs")
    with pytest.raises(NoSpace, match=r"storage domain 'tiny' has .* MiB free; preallocated "
                                      r"volume .* needs 16.0 MiB"):
        m.disks.create("pre", "tiny", 16 << 20, "raw", "preallocated")
    assert m.disks.list() == [] and m.storage.verify("tiny") == []
    # fill the file system, then a thin disk cannot even record its metadata
    filler = drv.root(dom) / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    with pytest.raises(NoSpace, match="no space left"):
        m.disks.create("thin", "tiny", 64 << 20)
    assert m.disks.list() == []
    md = drv.root(dom) / "dom_md" / "metadata.json"
    from virtplane_storage_file.filedomain import read_json

    assert read_json(md)["name"] == "tiny"  # domain metadata intact
    filler.unlink()
    m.disks.create("thin", "tiny", 64 << 20)
    assert m.storage.verify("tiny") == []


def _bind_domain(manager_factory, tmp_path, name):
    """A posixfs domain on a real bind mount of ``tmp_path/export``."""
    need(os.geteuid() == 0, "bind mounts need root")
    export = tmp_path / "export"
    export.mkdir()
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    dom = m.storage.add(name, "posixfs", "dc", {
        "spec": str(export), "vfs_type": "none", "options": "bind"})
    return m, dom, export


def test_export_that_disappears_makes_the_domain_inactive(manager_factory, tmp_path):
    m, dom, export = _bind_domain(manager_factory, tmp_path, "ex")
    m.disks.create("d", "ex", 1 << 20)
    drv = m.context.drivers.storage("posixfs")
    target = drv.mount_point(dom)
    # the export goes away under the host
    subprocess.run(["umount", str(target)], check=True)
    export.rename(tmp_path / "gone")
    try:
        d = m.storage.refresh("ex")
        assert d.status == model.DomainStatus.INACTIVE
        assert f"{export} is no longer mounted on {target}" in d.status_reason
        assert "reconnecting failed" in d.status_reason
        with pytest.raises(StorageUnavailable, match="'ex' is Inactive"):
            m.disks.create("e", "ex", 1 << 20)
        vm = m.vms.create(model.VmSpec(name="v", memory_mib=256, disks=[model.DiskSpec(
            name="d", domain_id=dom.id, image_id=m.store.find(model.Image, "d").id)]), "cl")
        m.hosts.add("h", "cl", "test:///default")
        with pytest.raises(StorageUnavailable, match="Inactive"):
            m.vms.start(vm.spec.name)
        assert any("Inactive" in e[2] for e in m.store.events(dom.id))
    finally:
        (tmp_path / "gone").rename(export)
    assert m.storage.refresh("ex").status == model.DomainStatus.ACTIVE
    m.vms.remove("v")
    m.disks.remove("d")
    m.storage.remove("ex")


def test_standalone_disks_api(m, tmp_path):
    m.hosts.add("h", "cl", "test:///default")
    m.disks.create("data", "sd", 2 << 20)
    with pytest.raises(AlreadyExists, match="already exists"):
        m.disks.create("data", "sd", 2 << 20)
    with pytest.raises(InvalidInput, match="format must be one of raw, qcow2 .*got .vmdk"):
        m.disks.create("bad", "sd", 2 << 20, "vmdk")
    m.disks.snapshot("data")
    m.disks.snapshot("data")
    m.disks.clone("data", "copy")
    disks = {d["name"]: d for d in m.disks.list()}
    assert disks["data"]["volumes"] == 3 and disks["copy"]["volumes"] == 1
    image = m.store.find(model.Image, "data")
    m.vms.create(model.VmSpec(name="v", memory_mib=256, disks=[model.DiskSpec(
        name="d", domain_id=image.domain_id, image_id=image.id)]), "cl")
    assert {d["name"]: d for d in m.disks.list()}["data"]["used_by"] == ["v"]
    with pytest.raises(InvalidState, match="in use by v"):
        m.disks.remove("data")
    m.vms.start("v")
    with pytest.raises(InvalidState, match="running VM"):
        m.disks.snapshot("data")
    m.vms.destroy("v")
    m.vms.remove("v")  # a named disk outlives the VM
    assert sorted(d["name"] for d in m.disks.list()) == ["copy", "data"]
    m.disks.remove("data")
    m.disks.remove("copy")
    assert m.storage.verify("sd") == []
    assert list((tmp_path / "sd").glob("*/images/*")) == []


def test_disk_cli(cli, tmp_path):
    import libvirt

    keep = libvirt.open("test:///default")
    cli("dc", "add", "dc")
    cli("cluster", "add", "cl", "--dc", "dc")
    cli("host", "add", "h", "test:///default", "--cluster", "cl")
    assert cli("storage", "add", "sd", "--type", "localfs", "--path", str(tmp_path / "sd"),
               "--dc", "dc")[0] == 0
    rc, out, err = cli("disk", "create", "d1", "--domain", "sd", "--size", "8M")
    assert rc == 0 and out.startswith("disk d1 "), err
    rc, out, err = cli("disk", "create", "d2", "--domain", "sd", "--size", "8X")
    assert rc == 1 and "size '8X' is not valid" in err
    assert cli("disk", "snapshot", "d1")[0] == 0
    assert cli("disk", "clone", "d1", "d3")[0] == 0
    rc, out, err = cli("vm", "create", "v", "--cluster", "cl", "--memory", "256",
                       "--disk", "disk=d3")
    assert rc == 0, err
    rc, out, _ = cli("disk", "list", "--json")
    import json

    disks = {d["name"]: d for d in json.loads(out)}
    assert disks["d1"]["volumes"] == 2 and disks["d3"]["used_by"] == ["v"]
    rc, out, err = cli("disk", "remove", "d3")
    assert rc == 1 and "in use by v" in err
    rc, out, _ = cli("storage", "refresh", "sd")
    assert rc == 0 and "Active" in out
    rc, out, _ = cli("storage", "repair", "sd")
    assert rc == 0 and "nothing to repair" in out
    keep.close()


def test_iso_domain_upload_list_and_cd(m, cli, tmp_path):
    m.hosts.add("h", "cl", "test:///default")
    m.storage.add("isos", "localfs", "dc", {"path": str(tmp_path / "isos")},
                  domain_class="iso")
    iso = tmp_path / "boot.iso"
    iso.write_bytes(b"\0" * 4096)
    with pytest.raises(InvalidInput, match="'sd' is a data domain; ISOs go to iso domains"):
        m.isos.upload("sd", str(iso))
    assert m.isos.upload("isos", str(iso)) == "boot.iso"
    assert m.isos.list("isos") == ["boot.iso"]
    with pytest.raises(Exception, match="already has 'boot.iso'"):
        m.isos.upload("isos", str(iso))
    vm = m.vms.create(model.VmSpec(name="c", memory_mib=256,
                                   cd=model.CdSpec(path="iso:isos/boot.iso")), "cl")
    assert vm.spec.cd.path.endswith("/11111111-1111-1111-1111-111111111111/boot.iso")
    with pytest.raises(Exception, match="has no 'nope.iso' .has: boot.iso"):
        m.devices.change_cd("c", "iso:isos/nope.iso")
    rc, out, err = cli("--state", str(tmp_path / "state.db"), "iso", "list", "isos", "--json")
    assert rc == 0 and '"boot.iso"' in out, err


def test_deactivate_and_activate_a_mounted_domain(manager_factory, tmp_path):
    m, dom, _export = _bind_domain(manager_factory, tmp_path, "px")
    m.hosts.add("h", "cl", "test:///default")
    image = m.disks.create("d", "px", 1 << 20)
    m.vms.create(model.VmSpec(name="v", memory_mib=256, disks=[model.DiskSpec(
        name="d", domain_id=dom.id, image_id=image.id)]), "cl")
    m.vms.start("v")
    with pytest.raises(InvalidState, match="in use by running VMs v"):
        m.storage.deactivate("px")
    m.vms.destroy("v")
    from virtplane_storage_file.posixfs import is_mounted

    drv = m.context.drivers.storage("posixfs")
    d = m.storage.deactivate("px")
    assert d.status == model.DomainStatus.INACTIVE and "administrator" in d.status_reason
    assert not is_mounted(drv.mount_point(dom))
    with pytest.raises(InvalidState, match="'px' is Inactive: deactivated by the administrator"):
        m.vms.start("v")
    assert m.storage.activate("px").status == model.DomainStatus.ACTIVE
    assert is_mounted(drv.mount_point(dom))
    m.vms.start("v")
    m.vms.destroy("v")
    m.vms.remove("v")
    m.disks.remove("d")
    m.storage.remove("px")


def test_import_a_disk_file(m, tmp_path, cli):
    src = tmp_path / "appliance.raw"
    with open(src, "wb") as f:
        f.truncate(4 << 20)
        f.seek(1 << 20)
        f.write(b"virtplane-import-marker")
    image = m.disks.import_file("app", "sd", str(src))
    vol = image.volumes[0]
    assert vol.size_bytes == 4 << 20 and vol.format == model.VolumeFormat.QCOW2 and vol.legal
    path = m.context.drivers.storage("localfs").volume_path(
        m.store.find(model.StorageDomain, "sd"), image, vol)
    back = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(path), str(back)], check=True)
    assert b"virtplane-import-marker" in back.read_bytes()
    with pytest.raises(InvalidInput, match="cannot import '/nonexistent.img'"):
        m.disks.import_file("bad", "sd", "/nonexistent.img")
    assert [d["name"] for d in m.disks.list()] == ["app"]
    assert m.storage.verify("sd") == []
