"""Disks have owners: removal deletes only what is owned; sharing and templates are explicit.

Before: ``vm create b --disk disk=<A's image id>`` then ``vm remove A`` deleted the
disk b still used; a VM could attach a template's base image writable; template
images could be extended and snapshotted; two VMs could share one writable disk.
"""

from __future__ import annotations

import pytest

from tests.conftest import small_plane
from virtplane import model
from virtplane.errors import InvalidInput, InvalidState


@pytest.fixture
def m(manager_factory, tmp_path):
    m = small_plane(manager_factory(), tmp_path / "data")
    return m


def _vm(m, name: str, *disks: model.DiskSpec) -> model.Vm:
    return m.vms.create(model.VmSpec(name=name, memory_mib=256, disks=list(disks)), "cl")


def _new(m, name: str = "d0") -> model.DiskSpec:
    return model.DiskSpec(name=name, size_bytes=1 << 20, domain_id=m.storage.get("sd").id)


def _existing(m, image: model.Image, name: str = "d1") -> model.DiskSpec:
    return model.DiskSpec(name=name, size_bytes=image.volumes[-1].size_bytes,
                          domain_id=image.domain_id, image_id=image.id)


def _files(m, image: model.Image) -> list[str]:
    drv = m.context.drivers.storage("localfs")
    dom = m.storage.get("sd")
    return [str(drv.volume_source(dom, image, v)["source"]["@file"]) for v in image.volumes]


def test_another_vms_disk_cannot_be_attached(m, cli, tmp_path):
    a = _vm(m, "a", _new(m))
    image = m.store.get(model.Image, a.spec.disks[0].image_id)
    assert image.owner == f"vm:{a.id}"
    rc, _out, err = cli("--state", str(tmp_path / "state.db"), "vm", "create", "b",
                        "--cluster", "cl", "--memory", "256", "--disk", f"disk={image.id}")
    assert rc != 0 and "belongs to VM 'a'" in err and "shareable" in err
    assert "Traceback" not in err
    with pytest.raises(InvalidInput, match="belongs to VM 'a'"):
        _vm(m, "b", _existing(m, image))
    assert [v.name for v in m.vms.list()] == ["a"]


def test_removing_a_vm_keeps_a_disk_another_vm_uses(m):
    """A store written before owners existed may already have b on a's disk."""
    a = _vm(m, "a", _new(m))
    image = m.store.get(model.Image, a.spec.disks[0].image_id)
    b = _vm(m, "b")
    b.spec.disks.append(_existing(m, image))
    m.store.update(b)  # what the old code let `vm create b --disk disk=<id>` do
    files = _files(m, image)
    m.vms.remove("a")
    kept = m.store.get(model.Image, image.id)
    assert kept.owner == "" and m.volumes.owner_of(kept) == ("standalone", None)
    assert all(__import__("os").path.exists(f) for f in files)
    assert m.storage.verify("sd") == []


def test_removing_a_vm_deletes_what_it_owns_even_unplugged(m):
    a = _vm(m, "a", _new(m), _new(m, "d1"))
    gone = [m.store.get(model.Image, d.image_id) for d in a.spec.disks]
    a.spec.disks = a.spec.disks[:1]  # as a hot-unplug leaves it: the image stays the VM's
    m.store.update(a)
    m.vms.remove("a")
    assert not any(m.store.has(model.Image, i.id) for i in gone)
    assert m.storage.verify("sd") == []


def test_a_standalone_disk_joins_one_vm_at_a_time(m):
    disk = m.disks.create("data", "sd", 1 << 20)
    _vm(m, "a", _existing(m, disk))
    with pytest.raises(InvalidInput, match="'data' is attached to VM a"):
        _vm(m, "b", _existing(m, disk))
    m.vms.remove("a")
    assert m.store.has(model.Image, disk.id)  # a standalone disk outlives its VM
    _vm(m, "b", _existing(m, disk))


def test_shareable_disks_are_raw_shared_and_never_snapshotted(m):
    with pytest.raises(InvalidInput, match="shareable disk must be raw"):
        m.disks.create("q", "sd", 1 << 20, "qcow2", shareable=True)
    shared = m.disks.create("shared", "sd", 1 << 20, "raw", shareable=True)
    _vm(m, "a", _new(m), _existing(m, shared))
    _vm(m, "b", _existing(m, shared))
    with pytest.raises(InvalidState, match="shareable disks have no snapshots"):
        m.disks.snapshot("shared")
    snap = m.snapshots.take("a", "s1")
    assert shared.id not in snap.volumes and len(snap.volumes) == 1
    assert len(m.store.get(model.Image, shared.id).volumes) == 1
    m.vms.remove("a")
    m.vms.remove("b")
    assert m.store.has(model.Image, shared.id)
    assert m.disks.describe(m.store.get(model.Image, shared.id))["shareable"] is True


def test_template_images_are_read_only_and_not_attachable(m):
    _vm(m, "a", _new(m))
    tpl = m.templates.create("a", "tpl")
    base = m.store.get(model.Image, tpl.image_ids[0])
    assert m.volumes.owner_of(base) == ("template", tpl.id)
    with pytest.raises(InvalidInput, match="base image of template 'tpl'.*read-only"):
        _vm(m, "b", _existing(m, base))
    for what, call in [("extend", lambda: m.disks.extend(base.id, 4 << 20)),
                       ("snapshot", lambda: m.disks.snapshot(base.id))]:
        with pytest.raises(InvalidState, match=f"cannot {what} disk .*template images are "
                                               "read-only"):
            call()
    assert len(m.store.get(model.Image, base.id).volumes) == 1
    thin = m.templates.create_vm("tpl", "thin", "cl")
    image = m.store.get(model.Image, thin.spec.disks[0].image_id)
    assert image.owner == f"vm:{thin.id}"
    m.vms.remove("thin")
    assert m.store.has(model.Image, base.id)


def test_hotplug_refuses_another_vms_disk(m):
    a = _vm(m, "a", _new(m))
    image = m.store.get(model.Image, a.spec.disks[0].image_id)
    _vm(m, "b")
    m.vms.start("b")
    try:
        with pytest.raises(InvalidInput, match="belongs to VM 'a'"):
            m.devices.hotplug_disk("b", _existing(m, image))
    finally:
        m.vms.destroy("b")


@pytest.mark.parametrize("description, alias, owner", [
    ("0f8fad5b-d9cb-469f-a165-70867728950e/d0", "", "vm:0f8fad5b-d9cb-469f-a165-70867728950e"),
    ("template tpl/d0", "", model.TEMPLATE_OWNER_UNKNOWN),
    ("disk data", "data", ""),
    ("clone of x", "x2", ""),
    ("imported from /srv/a.img", "a", ""),
    ("", "", ""),
])
def test_old_records_get_their_owner_from_what_was_written(description, alias, owner):
    data = {"domain_id": "d", "description": description, "alias": alias,
            "id": "0f8fad5b-d9cb-469f-a165-70867728950f", "volumes": []}
    image = model.structure(data, model.Image)
    assert image.owner == owner and image.shareable is False
    assert model.from_json(model.to_json(image), model.Image) == image
