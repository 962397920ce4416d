"""File domains: metadata on storage, attach from another engine, verify, templates, mounts."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import small_plane
from virtplane import model
from virtplane.errors import InvalidInput, InvalidState, VirtplaneError


def _chain(path):
    out = subprocess.run(["qemu-img", "info", "-U", "--backing-chain", "--output=json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return [i["filename"] for i in json.loads(out)]


@pytest.fixture
def m(manager_factory, tmp_path):
    m = small_plane(manager_factory(), tmp_path / "sd")
    return m


def _vm(m, name="v1", size=8 << 20):
    dom = m.store.find(model.StorageDomain, "sd")
    return m.vms.create(model.VmSpec(name=name, memory_mib=256, disks=[
        model.DiskSpec(name="d0", size_bytes=size, domain_id=dom.id)]), "cl")


def _leaf(m, vm):
    image = m.store.get(model.Image, m.vms.get(vm.name).spec.disks[0].image_id)
    dom = m.store.get(model.StorageDomain, image.domain_id)
    return image, m.context.drivers.storage("localfs").volume_path(dom, image, image.volumes[-1])


def test_chain_of_five_merge_and_metadata_on_storage(m):
    vm = _vm(m)
    for i in range(5):
        m.snapshots.take("v1", f"s{i}")
    image, leaf = _leaf(m, vm)
    assert len(image.volumes) == 6 and len(_chain(leaf)) == 6
    # backing files are relative names, as VDSM writes them
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(leaf)],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename"] == image.volumes[-2].id
    m.snapshots.delete("v1", "s2")
    image, leaf = _leaf(m, vm)
    assert len(image.volumes) == 5 and len(_chain(leaf)) == 5
    assert m.storage.verify("sd") == []
    # the image's chain is recorded on the storage too
    meta = json.loads((leaf.parent / "image.json").read_text())["data"]
    assert [v["id"] for v in meta["volumes"]] == [v.id for v in image.volumes]


def test_another_engine_attaches_the_domain_and_finds_the_images(m, manager_factory, tmp_path):
    vm = _vm(m)
    m.snapshots.take("v1", "s1")
    image, _leaf_path = _leaf(m, vm)
    other = manager_factory(state_path=tmp_path / "other-engine.db")
    other.datacenters.add("dc2")
    dom = other.storage.attach("sd", "localfs", {"path": str(tmp_path / "sd")}, "dc2")
    assert dom.id == m.store.find(model.StorageDomain, "sd").id
    found = [i for i in other.store.list(model.Image) if i.domain_id == dom.id]
    assert [i.id for i in found] == [image.id]
    assert [v.id for v in found[0].volumes] == [v.id for v in image.volumes]
    assert other.storage.verify("sd") == []
    with pytest.raises(VirtplaneError, match="no storage domain 'nope' on that localfs storage; "
                                             "found: sd"):
        other.storage.attach("nope", "localfs", {"path": str(tmp_path / "sd")})


def test_verify_reports_what_is_wrong(m):
    vm = _vm(m)
    m.snapshots.take("v1", "s1")
    image, leaf = _leaf(m, vm)
    (leaf.parent / "stray.qcow2").write_bytes(b"x")
    meta = leaf.parent / "image.json"
    doc = json.loads(meta.read_text())
    doc["data"]["description"] = "tampered"
    meta.write_text(json.dumps(doc))
    leaf.unlink()
    problems = m.storage.verify("sd")
    text = "\n".join(problems)
    assert "metadata checksum mismatch" in text
    assert f"volume file {leaf} is missing" in text
    assert "unrecorded file" in text and "stray.qcow2" in text


def test_template_thin_vm_and_clone(m):
    vm = _vm(m)
    image, leaf = _leaf(m, vm)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", str(leaf)],
                   check=True, capture_output=True)
    template = m.templates.create("v1", "t1")
    thin = m.templates.create_vm("t1", "thin1", "cl")
    full = m.templates.create_vm("t1", "full1", "cl", clone=True)
    t_image = m.store.get(model.Image, template.image_ids[0])
    thin_image, thin_leaf = _leaf(m, thin)
    full_image, full_leaf = _leaf(m, full)
    assert thin_image.volumes[0].base_image_id == t_image.id
    assert len(_chain(thin_leaf)) == 2 and len(_chain(full_leaf)) == 1
    for path in (thin_leaf, full_leaf):
        proc = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x5a 0 64k", str(path)],
                              capture_output=True, text=True)
        assert "Pattern verification failed" not in proc.stdout and proc.returncode == 0
    m.vms.start("thin1")  # a thin VM runs (test driver here; real QEMU in integration)
    with pytest.raises(InvalidState, match="template 't1' is in use by thin1"):
        m.templates.remove("t1")
    m.vms.destroy("thin1")
    m.vms.remove("thin1")
    m.templates.remove("t1")  # only the full clone is left, and it needs no template
    assert m.storage.verify("sd") == []


def test_remove_and_detach_refuse_while_in_use(m):
    _vm(m)
    with pytest.raises(InvalidState, match="still holds 1 image"):
        m.storage.remove("sd")
    with pytest.raises(InvalidState, match="holds disks of VMs v1"):
        m.storage.detach("sd")
    m.vms.remove("v1")
    m.storage.remove("sd")
    assert m.store.list(model.StorageDomain) == []


def test_posixfs_on_a_real_mount(manager_factory, tmp_path):
    m = manager_factory()
    m.datacenters.add("dc")
    with pytest.raises(VirtplaneError, match="cannot mount /nonexistent/dev on .*mount -t ext4"):
        m.storage.add("bad", "posixfs", "dc", {"spec": "/nonexistent/dev",
                                               "vfs_type": "ext4"})
    assert m.store.list(model.StorageDomain) == []
    dom = m.storage.add("px", "posixfs", "dc", {"spec": "tmpfs", "vfs_type": "tmpfs",
                                                "options": "size=64m"})
    drv = m.context.drivers.storage("posixfs")
    from virtplane_storage_file.posixfs import is_mounted

    assert is_mounted(drv.mount_point(dom))
    m.clusters.add("cl", "dc")
    m.vms.create(model.VmSpec(name="p", memory_mib=256, disks=[
        model.DiskSpec(name="d", size_bytes=4 << 20, domain_id=dom.id)]), "cl")
    m.snapshots.take("p", "s1")
    assert m.storage.verify("px") == []
    m.vms.remove("p")
    m.storage.remove("px")
    assert not is_mounted(drv.mount_point(dom))


def test_storage_and_template_cli(cli, tmp_path):
    import libvirt

    keep = libvirt.open("test:///default")
    assert cli("dc", "add", "dc")[0] == 0
    assert cli("cluster", "add", "cl", "--dc", "dc")[0] == 0
    assert cli("host", "add", "h", "test:///default", "--cluster", "cl")[0] == 0
    rc, out, err = cli("storage", "add", "sd", "--type", "localfs", "--path",
                       str(tmp_path / "sd"), "--dc", "dc")
    assert rc == 0, err
    assert cli("vm", "create", "v", "--cluster", "cl", "--memory", "256", "--disk", "4M@sd")[0] == 0
    rc, out, err = cli("template", "create", "t", "--vm", "v")
    assert rc == 0 and "1 disk(s)" in out, err
    rc, out, err = cli("template", "vm", "t", "thin", "--cluster", "cl")
    assert rc == 0 and "thin" in out, err
    rc, out, _ = cli("template", "remove", "t")
    assert rc == 1
    rc, out, _ = cli("storage", "verify", "sd")
    assert rc == 0 and "storage and state store agree" in out
    rc, out, _ = cli("storage", "show", "sd")
    assert rc == 0 and len(json.loads(out)["images"]) == 3
    rc, out, err = cli("storage", "add", "x", "--type", "posixfs", "-o", "novalue")
    assert rc == 1 and "--option 'novalue' is not KEY=VALUE" in err
    keep.close()


# ---------------------------------------------------------------- disk merge


def test_merge_folds_the_top_layer_back(m, cli):
    m.disks.create("d", "sd", 4 << 20)
    base = m.store.find(model.Image, "d").volumes[0]
    top = m.disks.snapshot("d")
    drv = m.context.drivers.storage("localfs")
    dom = m.store.find(model.StorageDomain, "sd")
    image = m.store.find(model.Image, "d")
    top_path = drv.volume_path(dom, image, top)
    assert top_path.exists()
    m.close()
    rc, out, err = cli("--state", str(m.context.paths.state), "disk", "merge", "d")
    assert rc == 0, err
    assert f"leaf volume is now {base.id}" in out
    assert not top_path.exists()


def test_merge_refuses_a_single_volume(m):
    m.disks.create("d", "sd", 4 << 20)
    with pytest.raises(InvalidInput, match="single volume; there is no layer to merge"):
        m.disks.merge("d")


def test_merge_refuses_layers_of_vm_snapshots_and_running_users(m):
    dom = m.store.find(model.StorageDomain, "sd")
    m.vms.create(model.VmSpec(name="v", memory_mib=256, disks=[
        model.DiskSpec(name="d0", size_bytes=4 << 20, domain_id=dom.id)]), "cl")
    m.snapshots.take("v", "s1")
    image = m.store.get(model.Image, m.vms.get("v").spec.disks[0].image_id)
    image.alias = "vmdisk"
    m.store.update(image)
    with pytest.raises(InvalidState, match="layers of VM snapshots of v; delete those"):
        m.disks.merge("vmdisk")
    m.snapshots.delete("v", "s1")
    m.disks.snapshot("vmdisk")
    m.vms.start("v")
    with pytest.raises(InvalidState, match="in use by running VM"):
        m.disks.merge("vmdisk")
    assert len(m.store.find(model.Image, "vmdisk").volumes) == 2


def test_missing_optional_member_is_refused_by_name(m, monkeypatch):
    m.disks.create("d", "sd", 4 << 20)
    real = m.context.drivers.storage("localfs")

    class NoResize:
        """The localfs driver as one without the optional resize_volume()."""

        def __getattr__(self, name):
            if name == "resize_volume":
                raise AttributeError(name)
            return getattr(real, name)

    monkeypatch.setattr(m.context.drivers, "storage", lambda name: NoResize())
    with pytest.raises(InvalidInput, match=r"storage type 'localfs' cannot resize volumes "
                                           r"\(its driver has no resize_volume\(\)\)"):
        m.disks.extend("d", 8 << 20)
    assert m.store.find(model.Image, "d").volumes[0].size_bytes == 4 << 20
