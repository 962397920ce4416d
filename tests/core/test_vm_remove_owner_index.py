"""Removing a VM finds what it owns through the store's owner index: the images and
snapshots decoded follow the VM's own, not how many the store holds."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.conftest import small_plane
from tests.core.decode_counts import decoded
from virtplane import model


@pytest.fixture
def m(manager_factory, tmp_path):
    return small_plane(manager_factory(), tmp_path / "data")


def _disk(m: Any, name: str) -> model.DiskSpec:
    return model.DiskSpec(name=name, size_bytes=1 << 20, domain_id=m.storage.get("sd").id)


def test_remove_decodes_the_vms_own_images_and_snapshots_not_every_one(m, monkeypatch):
    a = m.vms.create(model.VmSpec(name="a", memory_mib=256,
                                  disks=[_disk(m, "d0"), _disk(m, "d1")]), "cl")
    b = m.vms.create(model.VmSpec(name="b", memory_mib=256, disks=[_disk(m, "d0")]), "cl")
    mine = [m.store.get(model.Image, d.image_id) for d in a.spec.disks]
    files = [m.volumes.disk_source(d)["source"]["@file"] for d in a.spec.disks]
    dom = m.storage.get("sd").id
    with m.store.transaction():  # records only: 2,000 images and snapshots of other VMs
        for i in range(2000):
            m.store.add(model.Image(domain_id=dom, owner=f"vm:{b.id}", alias=f"x{i}"))
            m.store.add(model.Snapshot(name=f"s{i}", vm_id=b.id, created=float(i)))
        for i in range(200):
            m.store.add(model.Vm(spec=model.VmSpec(name=f"other{i}"), cluster_id=a.cluster_id))
        m.store.add(model.Snapshot(name="mine", vm_id=a.id, created=1.0))
    counts = decoded(monkeypatch)
    m.vms.remove("a")
    assert counts["Image"] <= 2 * len(mine), counts
    assert counts["Snapshot"] <= 2, counts
    assert counts["Vm"] <= 3, counts  # a itself: no other VM uses its disks
    monkeypatch.undo()
    assert not m.store.has(model.Vm, a.id)
    assert not any(m.store.has(model.Image, i.id) for i in mine)
    assert not any(os.path.exists(f) for f in files)
    assert [s.name for s in m.store.list(model.Snapshot) if s.vm_id == a.id] == []
    assert len(m.store.list(model.Image)) == 2001 and len(m.store.list(model.Snapshot)) == 2000


def test_a_shared_image_kept_for_another_vm_is_found_among_many_vms(m, monkeypatch):
    """The "used by another VM" check parses only the VMs whose JSON names the image."""
    a = m.vms.create(model.VmSpec(name="a", memory_mib=256, disks=[_disk(m, "d0")]), "cl")
    image = m.store.get(model.Image, a.spec.disks[0].image_id)
    with m.store.transaction():
        for i in range(300):
            m.store.add(model.Vm(spec=model.VmSpec(name=f"other{i}"), cluster_id=a.cluster_id))
    b = m.vms.create(model.VmSpec(name="b", memory_mib=256), "cl")
    b.spec.disks.append(model.DiskSpec(name="d1", size_bytes=1 << 20,
                                       domain_id=image.domain_id, image_id=image.id))
    m.store.update(b)  # as a store written before owners existed may hold it
    counts = decoded(monkeypatch)
    m.vms.remove("a")
    assert counts["Vm"] <= 4, counts
    monkeypatch.undo()
    kept = m.store.get(model.Image, image.id)
    assert kept.owner == "" and m.storage.verify("sd") == []
