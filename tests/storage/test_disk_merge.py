"""``disk merge`` and the refusals around it; optional driver members refused clearly."""

from __future__ import annotations

import pytest

from virtplane import model
from virtplane.errors import InvalidInput, InvalidState


@pytest.fixture
def m(manager_factory, tmp_path):
    m = manager_factory()
    m.add_datacenter("dc")
    m.add_cluster("cl", "dc")
    m.add_host("h", "cl", "test:///default")
    m.add_storage_domain("sd", "localfs", "dc", {"path": str(tmp_path / "sd")})
    return m


def test_merge_folds_the_top_layer_back(m, cli):
    m.create_disk("d", "sd", 4 << 20)
    base = m.store.find(model.Image, "d").volumes[0]
    top = m.snapshot_disk("d")
    drv = m.driver("storage", "localfs")
    dom = m.store.find(model.StorageDomain, "sd")
    image = m.store.find(model.Image, "d")
    top_path = drv.volume_path(dom, image, top)
    assert top_path.exists()
    m.close()
    rc, out, err = cli("--state", str(m._state_path), "disk", "merge", "d")
    assert rc == 0, err
    assert f"leaf volume is now {base.id}" in out
    assert not top_path.exists()


def test_merge_refuses_a_single_volume(m):
    m.create_disk("d", "sd", 4 << 20)
    with pytest.raises(InvalidInput, match="single volume; there is no layer to merge"):
        m.merge_disk("d")


def test_merge_refuses_layers_of_vm_snapshots_and_running_users(m):
    dom = m.store.find(model.StorageDomain, "sd")
    m.create_vm(model.VmSpec(name="v", memory_mib=256, disks=[
        model.DiskSpec(name="d0", size_bytes=4 << 20, domain_id=dom.id)]), "cl")
    m.snapshot_vm("v", "s1")
    image = m.store.get(model.Image, m.get_vm("v").spec.disks[0].image_id)
    image.alias = "vmdisk"
    m.store.update(image)
    with pytest.raises(InvalidState, match="layers of VM snapshots of v; delete those"):
        m.merge_disk("vmdisk")
    m.delete_snapshot("v", "s1")
    m.snapshot_disk("vmdisk")
    m.start_vm("v")
    with pytest.raises(InvalidState, match="in use by running VM"):
        m.merge_disk("vmdisk")
    assert len(m.store.find(model.Image, "vmdisk").volumes) == 2


def test_missing_optional_member_is_refused_by_name(m, monkeypatch):
    from virtplane_storage_file.filedomain import FileDomain

    m.create_disk("d", "sd", 4 << 20)
    monkeypatch.delattr(FileDomain, "resize_volume")
    assert not hasattr(m.driver("storage", "localfs"), "resize_volume")
    with pytest.raises(InvalidInput, match=r"storage type 'localfs' cannot resize volumes "
                                           r"\(its driver has no resize_volume\(\)\)"):
        m.extend_disk("d", 8 << 20)
    assert m.store.find(model.Image, "d").volumes[0].size_bytes == 4 << 20
