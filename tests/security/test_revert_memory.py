"""A snapshot revert whose saved memory cannot be read refuses before it changes
anything: later snapshots are not dropped, no volume is touched (issue 15: the revert
used to drop the later snapshots first and fail afterwards)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import small_plane
from virtplane import model
from virtplane.errors import InvalidState


@pytest.fixture
def m(manager_factory, tmp_path):
    m = small_plane(manager_factory(), tmp_path / "sd")
    dom = m.storage.get("sd")
    m.vms.create(model.VmSpec(name="v", memory_mib=256, disks=[
        model.DiskSpec(name="a", size_bytes=1 << 20, domain_id=dom.id)]), "cl")
    return m


def test_a_revert_whose_memory_image_is_gone_changes_nothing(m):
    m.vms.start("v")
    s1 = m.snapshots.take("v", "s1", with_memory=True)
    assert s1.memory_path
    if not os.path.exists(s1.memory_path):
        # libvirt's test driver keeps the memory to itself; a real hypervisor leaves
        # this file (what the revert reads back)
        with open(s1.memory_path, "wb") as f:
            f.write(b"saved memory")
    m.vms.destroy("v")
    m.snapshots.take("v", "s2")
    vm = m.vms.get("v")
    image = m.store.get(model.Image, vm.spec.disks[0].image_id)
    # removed, not chmod'ed: root passes os.access whatever the mode
    os.unlink(s1.memory_path)
    with pytest.raises(InvalidState, match=r"saved memory of this snapshot .* cannot be "
                                           r"read; nothing was reverted"):
        m.snapshots.revert("v", "s1")
    assert [s.name for s in m.snapshots.list("v")] == ["s1", "s2"]
    after = m.store.get(model.Image, image.id)
    assert after.volumes == image.volumes and after.intent is None
    assert m.vms.get("v").status == model.VmStatus.DOWN
    assert m.storage.verify("sd") == []
