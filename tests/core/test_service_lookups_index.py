"""Questions about one image, template or snapshot parse the objects that name it, not
every VM, image and snapshot in the store (the store's owner index and
:meth:`~virtplane.state.StateStore.mentioning`); the answers are the ones a scan of
every object gives (each test checks against such a scan, done here)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import small_plane
from tests.core.decode_counts import decoded
from virtplane import model
from virtplane.errors import InvalidInput, InvalidState
from virtplane.services.volumes import MENTION_LIMIT

#: how many unrelated records each test adds (as a store grows, the counts must not)
MANY = 2000


@pytest.fixture
def m(manager_factory, tmp_path):
    return small_plane(manager_factory(), tmp_path / "data")


def _disk(m: Any, name: str = "d0") -> model.DiskSpec:
    return model.DiskSpec(name=name, size_bytes=1 << 20, domain_id=m.storage.get("sd").id)


def _vm(m: Any, name: str, *disks: model.DiskSpec) -> model.Vm:
    return m.vms.create(model.VmSpec(name=name, memory_mib=256, disks=list(disks)), "cl")


def _on(image: model.Image, name: str = "d1") -> model.DiskSpec:
    return model.DiskSpec(name=name, size_bytes=1 << 20, domain_id=image.domain_id,
                          image_id=image.id)


def _crowd(m: Any, vms: int = 300, snapshots: bool = True) -> None:
    """Records only: ``MANY`` images of an unrelated VM on another domain (each with a
    volume based on another image, as thin images are), ``vms`` VMs with a disk on one
    of them, and ``MANY`` snapshots freezing their volumes."""
    owner = m.vms.create(model.VmSpec(name="crowd-owner", memory_mib=256), "cl")
    cluster_id = owner.cluster_id
    dom = str(uuid.uuid4())
    with m.store.transaction():
        images = []
        for i in range(MANY):
            image = model.Image(domain_id=dom, owner=f"vm:{owner.id}", alias=f"x{i}")
            image.volumes.append(model.Volume(image_id=image.id, parent_id=str(uuid.uuid4()),
                                              base_image_id=str(uuid.uuid4())))
            image.intent = model.Intent(op="merge", snapshot=str(uuid.uuid4()))
            m.store.add(image)
            images.append(image)
        for i in range(vms):
            m.store.add(model.Vm(spec=model.VmSpec(name=f"other{i}", disks=[
                _on(images[i], "d0")]), cluster_id=cluster_id))
        if snapshots:
            for i in range(MANY):
                m.store.add(model.Snapshot(name=f"s{i}", vm_id=owner.id, created=float(i),
                                           volumes={images[i].id: images[i].volumes[0].id}))


# ------------------------------------------------------------------ templates


def _dependants_by_scan(m: Any, tpl: model.Template) -> list[str]:
    """What templates.remove listed when it read every VM and each of its images."""
    based = set(tpl.image_ids)
    return sorted(v.name for v in m.store.list(model.Vm)
                  if any(vol.base_image_id in based for d in v.spec.disks if d.image_id
                         for vol in m.store.get(model.Image, d.image_id).volumes))


def test_template_remove_reads_the_images_on_it_not_every_vm_and_image(m, monkeypatch):
    _vm(m, "src", _disk(m), _disk(m, "d1"))
    tpl = m.templates.create("src", "t")
    thin = m.templates.create_vm("t", "thin", "cl")
    m.templates.create_vm("t", "full", "cl", clone=True)
    _crowd(m, snapshots=False)
    counts = decoded(monkeypatch)
    with pytest.raises(InvalidState, match="in use by thin; "):
        m.templates.remove("t")
    assert counts["Vm"] <= 2 and counts["Image"] <= 2 * len(tpl.image_ids), counts
    monkeypatch.undo()
    assert _dependants_by_scan(m, tpl) == ["thin"]

    m.vms.remove("thin")
    assert not m.store.has(model.Image, thin.spec.disks[0].image_id)
    counts = decoded(monkeypatch)
    m.templates.remove("t")
    assert counts["Vm"] <= 1 and counts["Image"] <= 4 * len(tpl.image_ids), counts
    monkeypatch.undo()
    assert not m.store.exists(model.Template, "t")
    assert not any(m.store.has(model.Image, i) for i in tpl.image_ids)
    assert m.storage.verify("sd") == []


def test_template_remove_lists_every_thin_vm_beyond_the_mention_limit(m):
    """More thin images than one statement asks about: every VM is read, same answer."""
    _vm(m, "src", _disk(m))
    tpl = m.templates.create("src", "t")
    names = sorted(f"thin{i:02}" for i in range(MENTION_LIMIT + 2))
    for name in names:
        m.templates.create_vm("t", name, "cl")
    _vm(m, "unrelated", _disk(m))
    assert _dependants_by_scan(m, tpl) == names
    with pytest.raises(InvalidState, match=f"in use by {', '.join(names)}; "):
        m.templates.remove("t")


# ------------------------------------------------------------- who uses a disk


def test_users_and_attach_checks_read_the_vms_naming_the_disk(m, monkeypatch):
    floating = m.disks.create("fl", "sd", 1 << 20)
    shared = m.disks.create("sh", "sd", 1 << 20, format="raw", shareable=True)
    a = _vm(m, "a", _on(floating), _on(shared, "d2"))
    _vm(m, "b", _on(shared))
    _crowd(m, snapshots=False)
    counts = decoded(monkeypatch)
    assert m.volumes.users({floating.id}) == ["a"]
    assert m.volumes.users({shared.id}) == ["a", "b"]
    assert m.volumes.running_users({floating.id, shared.id}) == []
    assert m.volumes.users({str(uuid.uuid4())}) == []
    assert counts["Vm"] <= 5, counts
    counts.clear()
    with pytest.raises(InvalidInput, match="'fl' is attached to VM a; "):
        m.volumes.check_attach(str(uuid.uuid4()), _on(floating))
    m.volumes.check_attach(a.id, _on(floating))  # its own disk
    m.volumes.check_attach(str(uuid.uuid4()), _on(shared))  # shareable: any VM
    assert counts["Vm"] <= 1 and counts["Image"] <= 3, counts
    monkeypatch.undo()
    by_scan = sorted(v.name for v in m.store.list(model.Vm)
                     if any(d.image_id == shared.id for d in v.spec.disks))
    assert by_scan == ["a", "b"]


def test_a_template_image_of_unknown_owner_is_found_among_many_templates(m, monkeypatch):
    _vm(m, "src", _disk(m))
    tpl = m.templates.create("src", "t")
    base = m.store.get(model.Image, tpl.image_ids[0])
    base.owner = model.TEMPLATE_OWNER_UNKNOWN  # as virtplane 0.1 stored template images
    m.store.update(base)
    with m.store.transaction():
        for i in range(300):
            m.store.add(model.Template(name=f"t{i}", spec=model.VmSpec(name=f"t{i}")))
    counts = decoded(monkeypatch)
    assert m.volumes.owner_of(base) == ("template", tpl.id)
    with pytest.raises(InvalidInput, match="base image of template 't'"):
        m.volumes.check_attach(str(uuid.uuid4()), _on(base))
    assert counts["Template"] <= 5 and counts["Vm"] == 0, counts
    monkeypatch.undo()
    assert [t.id for t in m.store.list(model.Template) if base.id in t.image_ids] == [tpl.id]


def _in_use_by_scan(m: Any, image: model.Image) -> list[str]:
    """What in_use answered when it read every VM, template and image."""
    users = sorted(v.name for v in m.store.list(model.Vm)
                   if any(d.image_id == image.id for d in v.spec.disks))
    users += [f"template {t.name}" for t in m.store.list(model.Template)
              if image.id in t.image_ids]
    users += [f"image {o.alias or o.id}" for o in m.store.list(model.Image)
              if o.id != image.id and any(v.base_image_id == image.id for v in o.volumes)]
    return users


def test_in_use_and_disk_remove_read_what_names_the_disk(m, monkeypatch):
    _vm(m, "src", _disk(m))
    tpl = m.templates.create("src", "t")
    thin = m.templates.create_vm("t", "thin", "cl")
    base = m.store.get(model.Image, tpl.image_ids[0])
    floating = m.disks.create("fl", "sd", 1 << 20)
    unused = m.disks.create("unused", "sd", 1 << 20)
    _vm(m, "a", _on(floating))
    _crowd(m, snapshots=False)
    counts = decoded(monkeypatch)
    found = {i.id: m.volumes.in_use(i) for i in (base, floating, unused)}
    assert counts["Vm"] <= 3 and counts["Image"] <= 3 and counts["Template"] <= 3, counts
    counts.clear()
    m.disks.remove("unused")
    assert counts["Image"] <= 4 and counts["Vm"] == 0, counts
    monkeypatch.undo()
    assert found[base.id] == ["template t", f"image {thin.spec.disks[0].image_id}"]
    assert found[floating.id] == ["a"] and found[unused.id] == []
    assert found == {i.id: _in_use_by_scan(m, i) for i in (base, floating, unused)}
    assert not m.store.has(model.Image, unused.id)
    with pytest.raises(InvalidState, match="in use by a; "):
        m.disks.remove("fl")


def test_images_of_a_domain_reads_that_domains_images(m, monkeypatch):
    _vm(m, "a", _disk(m), _disk(m, "d1"))
    m.disks.create("fl", "sd", 1 << 20)
    _crowd(m, vms=0, snapshots=False)
    dom = m.storage.get("sd")
    counts = decoded(monkeypatch)
    mine = m.volumes.images_of(dom)
    assert m.volumes.pending(dom) == []
    assert counts["Image"] <= 6, counts
    monkeypatch.undo()
    assert mine == [i for i in m.store.list(model.Image) if i.domain_id == dom.id]
    assert len(mine) == 3


# ------------------------------------------------------------------ snapshots


def test_snapshot_delete_and_revert_read_the_snapshots_and_images_naming_them(
        m, monkeypatch):
    a = _vm(m, "a", _disk(m), _disk(m, "d1"))
    for name in ("s1", "s2", "s3"):
        m.snapshots.take("a", name)
    images = [d.image_id for d in a.spec.disks]
    s1 = m.snapshots.get(a, "s1")
    _crowd(m)
    counts = decoded(monkeypatch)
    m.snapshots.delete("a", "s1")  # s2's frozen layers merge into s1's
    assert counts["Snapshot"] <= 12 and counts["Image"] <= 16, counts
    monkeypatch.undo()
    s2 = m.snapshots.get(a, "s2")
    assert s2.volumes == s1.volumes  # pointed at the parents the layers were merged into
    assert [s.name for s in m.snapshots.list("a")] == ["s2", "s3"]
    assert all(m.store.get(model.Image, i).intent is None for i in images)

    counts = decoded(monkeypatch)
    m.snapshots.revert("a", "s2")  # s3 is dropped once both disks are reverted
    assert counts["Snapshot"] <= 8 and counts["Image"] <= 16, counts
    monkeypatch.undo()
    assert [s.name for s in m.snapshots.list("a")] == ["s2"]
    assert len(m.store.list(model.Snapshot)) == MANY + 1
    assert m.storage.verify("sd") == []


def test_disk_merge_reads_the_snapshots_naming_the_disk(m, monkeypatch):
    a = _vm(m, "a", _disk(m))
    image_id = a.spec.disks[0].image_id
    m.snapshots.take("a", "s1")
    floating = m.disks.create("fl", "sd", 1 << 20)
    _vm(m, "b", _on(floating))
    m.disks.snapshot("fl")
    _crowd(m)
    counts = decoded(monkeypatch)
    with pytest.raises(InvalidState, match="layers of VM snapshots of a; "):
        m.disks.merge(image_id)
    assert counts["Snapshot"] <= 2, counts
    counts.clear()
    m.disks.merge("fl")  # a disk snapshot's layer: no VM snapshot holds it
    assert counts["Snapshot"] == 0 and counts["Image"] <= 8, counts
    monkeypatch.undo()
    assert len(m.store.get(model.Image, floating.id).volumes) == 1
    assert [s.name for s in m.store.list(model.Snapshot) if image_id in s.volumes] == ["s1"]
