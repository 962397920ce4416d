"""Snapshots as qcow2 volume chains: take, revert, delete (real qemu-img files)."""

from __future__ import annotations

import json
import subprocess

import pytest

from virtplane import model
from virtplane.errors import AlreadyExists, InvalidInput, InvalidState, NotFound


def _chain(path: str) -> list[str]:
    out = subprocess.run(["qemu-img", "info", "-U", "--backing-chain", "--output=json", path],
                         capture_output=True, text=True, check=True).stdout
    return [i["filename"] for i in json.loads(out)]


def _write(path: str, offset: int, byte: str) -> None:
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {byte} {offset} 64k", path],
                   capture_output=True, check=True)


def _read_ok(path: str, offset: int, byte: str) -> bool:
    proc = subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"read -P {byte} {offset} 64k", path],
                          capture_output=True, text=True)
    return proc.returncode == 0 and "Pattern verification failed" not in proc.stdout


@pytest.fixture
def vm_with_disk(env, tmp_path):
    dom = env.store.find(model.StorageDomain, "data1")
    spec = model.VmSpec(name="snapvm", memory_mib=256,
                        disks=[model.DiskSpec(name="d0", size_bytes=1 << 20, domain_id=dom.id)])
    env.vms.create(spec, "cl1")
    return env, dom


def _leaf_path(env, dom, vm):
    image = env.store.get(model.Image, vm.spec.disks[0].image_id)
    drv = env.context.drivers.storage("localfs")
    return image, drv.volume_source(dom, image, image.volumes[-1])["source"]["@file"]


def test_take_revert_delete_keep_the_data_right(vm_with_disk):
    env, dom = vm_with_disk
    vm = env.vms.get("snapvm")
    image, base = _leaf_path(env, dom, vm)
    _write(base, 0, "0x11")
    env.snapshots.take("snapvm", "s1")
    image, leaf1 = _leaf_path(env, dom, vm)
    assert _chain(leaf1) == [leaf1, base]
    _write(leaf1, 0, "0x22")
    env.snapshots.take("snapvm", "s2")
    image, leaf2 = _leaf_path(env, dom, vm)
    assert len(_chain(leaf2)) == 3
    _write(leaf2, 0, "0x33")

    with pytest.raises(AlreadyExists):
        env.snapshots.take("snapvm", "s1")
    with pytest.raises(InvalidInput, match="memory can only be saved from a running VM"):
        env.snapshots.take("snapvm", "m", with_memory=True)

    env.snapshots.revert("snapvm", "s2")  # back to the data at s2: 0x22
    image, leaf = _leaf_path(env, dom, vm)
    assert _read_ok(leaf, 0, "0x22") and len(image.volumes) == 3
    env.snapshots.revert("snapvm", "s1")  # back to 0x11; s2 was taken later and is dropped
    image, leaf = _leaf_path(env, dom, vm)
    assert _read_ok(leaf, 0, "0x11") and len(image.volumes) == 2
    assert [s.name for s in env.snapshots.list("snapvm")] == ["s1"]

    _write(leaf, 65536, "0x44")
    env.snapshots.delete("snapvm", "s1")  # merges the leaf into the base
    image, leaf = _leaf_path(env, dom, vm)
    assert len(image.volumes) == 1 and _chain(leaf) == [leaf]
    assert _read_ok(leaf, 0, "0x11") and _read_ok(leaf, 65536, "0x44")
    assert env.snapshots.list("snapvm") == []
    with pytest.raises(NotFound, match="no snapshot named 's1'"):
        env.snapshots.revert("snapvm", "s1")


def test_delete_of_a_middle_snapshot_keeps_the_later_one(vm_with_disk):
    env, dom = vm_with_disk
    vm = env.vms.get("snapvm")
    image, base = _leaf_path(env, dom, vm)
    _write(base, 0, "0x11")
    env.snapshots.take("snapvm", "s1")
    _write(_leaf_path(env, dom, vm)[1], 0, "0x22")
    env.snapshots.take("snapvm", "s2")
    _write(_leaf_path(env, dom, vm)[1], 0, "0x33")
    env.snapshots.delete("snapvm", "s1")
    image, leaf = _leaf_path(env, dom, vm)
    assert len(image.volumes) == 2 and _read_ok(leaf, 0, "0x33")
    env.snapshots.revert("snapvm", "s2")  # still possible after s1 is gone
    image, leaf = _leaf_path(env, dom, vm)
    assert _read_ok(leaf, 0, "0x22")


def test_revert_and_delete_need_a_down_vm(vm_with_disk):
    env, dom = vm_with_disk
    env.vms.start("snapvm")
    env.snapshots.take("snapvm", "live")
    with pytest.raises(InvalidState, match="revert needs Down"):
        env.snapshots.revert("snapvm", "live")
    with pytest.raises(InvalidState, match="live merge is not implemented yet"):
        env.snapshots.delete("snapvm", "live")


def test_failed_snapshot_leaves_no_layer(vm_with_disk, monkeypatch):
    env, dom = vm_with_disk
    env.vms.start("snapvm")
    conn = env.hosts.connection(env.store.find(model.Host, "h1"))
    from virtplane.errors import HypervisorError

    def refuse(*a, **k):
        raise HypervisorError("snapshot refused by the hypervisor")

    monkeypatch.setattr(conn, "snapshot_disks", refuse)
    vm = env.vms.get("snapvm")
    image, leaf = _leaf_path(env, dom, vm)
    folder = __import__("pathlib").Path(leaf).parent
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(HypervisorError, match="refused"):
        env.snapshots.take("snapvm", "bad")
    assert sorted(p.name for p in folder.iterdir()) == before
    assert len(env.store.get(model.Image, image.id).volumes) == 1
    assert env.snapshots.list("snapvm") == []
