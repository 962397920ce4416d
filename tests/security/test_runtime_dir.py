"""Runtime files never go to a predictable folder others can write; links are refused."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from virtplane import model, paths
from virtplane.paths import RuntimeDirError, private_subdir, runtime_dir


@pytest.fixture
def root_run(tmp_path, monkeypatch) -> Path:
    """Root's runtime folder, moved into the test's folder (the tests run as root)."""
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    monkeypatch.setattr(paths, "ROOT_RUNTIME_DIR", run / "virtplane")
    monkeypatch.setattr(paths, "_is_root", lambda: True)
    return run / "virtplane"


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_root_gets_a_fresh_folder_only_root_can_write(root_run):
    assert runtime_dir() == root_run
    st = os.lstat(root_run)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
    assert _mode(root_run) == paths.RUNTIME_DIR_MODE and not _mode(root_run) & 0o066


def test_a_symlink_in_place_of_the_runtime_folder_is_refused(root_run, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    root_run.symlink_to(victim)
    with pytest.raises(RuntimeDirError, match="is a symbolic link"):
        runtime_dir()
    with pytest.raises(RuntimeDirError, match="is a symbolic link"):
        private_subdir("hooks-run", "vm")
    assert list(victim.iterdir()) == []


def test_a_runtime_folder_others_can_write_is_refused(root_run):
    root_run.mkdir()
    root_run.chmod(0o777)
    with pytest.raises(RuntimeDirError, match="writable by group or others .* chmod 0700"):
        runtime_dir()


def test_a_runtime_folder_of_another_user_is_refused(root_run):
    root_run.mkdir(mode=0o700)
    os.chown(root_run, 4321, 4321)
    with pytest.raises(RuntimeDirError, match="owned by uid 4321"):
        runtime_dir()


def test_private_subdirs_are_owner_only_and_never_follow_a_planted_link(root_run, tmp_path):
    made = private_subdir("hooks-run", "vm-1")
    assert made == root_run / "hooks-run" / "vm-1"
    assert _mode(root_run / "hooks-run") == 0o700 and _mode(made) == 0o700
    victim = tmp_path / "victim"
    victim.mkdir()
    (root_run / "hooks-run" / "vm-2").symlink_to(victim)
    with pytest.raises(RuntimeDirError, match="vm-2 is a symbolic link"):
        private_subdir("hooks-run", "vm-2")
    assert list(victim.iterdir()) == []
    mnt = private_subdir("mnt", mode=0o711)
    assert _mode(mnt) == 0o711  # QEMU traverses mount points; nobody else writes them
    with pytest.raises(ValueError):
        private_subdir("..", "etc")
    with pytest.raises(ValueError):
        private_subdir("mnt", mode=0o777)


def test_without_xdg_runtime_dir_a_user_gets_a_private_folder_beside_the_state(
        monkeypatch, xdg):
    monkeypatch.setattr(paths, "_is_root", lambda: False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(xdg["XDG_CONFIG_HOME"].parent / "data"))
    got = runtime_dir()
    assert got == xdg["XDG_CONFIG_HOME"].parent / "data" / "virtplane" / "run"
    assert not str(got).startswith(tempfile.gettempdir() + "/virtplane")


def _plant_old_location(tmp_path, monkeypatch) -> Path:
    """The old default: ``<temp dir>/virtplane`` with XDG_RUNTIME_DIR unset. A local user
    makes it a link to a folder of their choice."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp / "virtplane").symlink_to(victim)
    return victim


def test_posixfs_mount_points_ignore_a_link_planted_in_the_old_place(tmp_path, monkeypatch,
                                                                      root_run):
    from virtplane_storage_file.posixfs import PosixFs

    victim = _plant_old_location(tmp_path, monkeypatch)
    dom = model.StorageDomain(name="px", type="posixfs",
                              connection={"spec": "none", "vfs_type": "tmpfs"})
    point = PosixFs().mount_point(dom)
    assert point == root_run / "mnt" / dom.id
    assert list(victim.iterdir()) == []


def test_launch_flags_ignore_a_link_planted_in_the_old_place(tmp_path, monkeypatch, root_run):
    from virtplane_hook_scripts.runner import launch_flags_file

    victim = _plant_old_location(tmp_path, monkeypatch)
    flags = launch_flags_file("0f8fad5b-d9cb-469f-a165-70867728950e")
    assert flags.parent.parent == root_run / "hooks-run"
    assert _mode(flags.parent) == 0o700
    assert list(victim.iterdir()) == []


def test_a_vm_start_writes_no_launch_flags_through_a_planted_link(tmp_path, monkeypatch,
                                                                   root_run, hooks,
                                                                   manager_factory):
    victim = _plant_old_location(tmp_path, monkeypatch)
    hooks.add("before_vm_start", "10_noop", "pass\n")
    m = manager_factory()
    m.add_datacenter("dc1")
    m.add_cluster("cl1", "dc1")
    m.add_host("h1", "cl1", "test:///default")
    m.create_vm(model.VmSpec(name="vm1", memory_mib=256), "cl1")
    m.start_vm("vm1")
    try:
        assert list(victim.iterdir()) == []
    finally:
        m.destroy_vm("vm1")
