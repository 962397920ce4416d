"""Storage domains that cannot be made, through the Python API and the CLI: each
refusal is the core error that says what kind of failure it is (bad input, a
storage that does not answer, a domain taken out of use) and stays the storage
plugin's own ``StorageError``; its message names the domain or path and what to
do, and nothing of the refused domain is left (no record, no folder, no mount
point). Before, a localfs path that was a file was a FileExistsError with a
traceback, and the rest a plain StorageError (a 500 in the REST API)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from virtplane import model
from virtplane.errors import InvalidInput, InvalidState, StorageUnavailable
from virtplane_storage_file import StorageError
from virtplane_storage_file.posixfs import PosixFs

GLUSTER_VOLUME = "vptest"


@pytest.fixture
def m(manager_factory: Any) -> Any:
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    return m


def _domains(m: Any) -> list[str]:
    return [d.name for d in m.store.list(model.StorageDomain)]


# ------------------------------------------------------ localfs: not a folder


@pytest.mark.parametrize("path, says", [
    ("/etc/passwd", "the localfs path /etc/passwd of storage domain 's' is a file, not a "
                    "folder; give the absolute path of a folder, or of one virtplane can make"),
    ("/dev/null", "the localfs path /dev/null of storage domain 's' is a device, not a folder"),
    ("/etc/passwd/sub", "the localfs path /etc/passwd/sub of storage domain 's' cannot be a "
                        "folder: /etc/passwd on its way is a file"),
])
def test_localfs_path_that_is_a_file_is_refused(m: Any, path: str, says: str) -> None:
    """Was FileExistsError / NotADirectoryError with a traceback."""
    before = os.stat(path.removesuffix("/sub"))
    with pytest.raises(InvalidInput) as info:
        m.storage.add("s", "localfs", None, {"path": path})
    assert isinstance(info.value, StorageError)
    assert says in str(info.value)
    assert _domains(m) == []
    after = os.stat(path.removesuffix("/sub"))
    assert (after.st_mode, after.st_size, after.st_mtime_ns) == \
        (before.st_mode, before.st_size, before.st_mtime_ns)


def test_localfs_file_in_the_middle_makes_no_folder(m: Any, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("data")
    path = tmp_path / "a" / "f" / "x" / "y"
    with pytest.raises(InvalidInput, match=f"{tmp_path / 'a' / 'f'} on its way is a file"):
        m.storage.add("s", "localfs", "dc", {"path": str(path)})
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["f"]
    assert (tmp_path / "a" / "f").read_text() == "data"
    assert _domains(m) == []


def test_localfs_unwritable_folder_is_refused(m: Any) -> None:
    """/proc/self: was the plugin's StorageError (a 500 over REST)."""
    with pytest.raises(InvalidInput, match=r"the localfs folder /proc/self of storage domain "
                                           r"'s' is not writable by virtplane") as info:
        m.storage.add("s", "localfs", None, {"path": "/proc/self"})
    assert isinstance(info.value, StorageError)
    assert "give a folder it can write" in str(info.value)
    assert _domains(m) == []


def test_localfs_folder_that_cannot_be_made_is_refused(m: Any) -> None:
    """/proc/self/new: was FileNotFoundError with a traceback."""
    with pytest.raises(InvalidInput, match="cannot make the folder /proc/self/new for the "
                                           "localfs path /proc/self/new of storage domain 's'"):
        m.storage.add("s", "localfs", None, {"path": "/proc/self/new"})
    assert _domains(m) == []


def test_folders_made_for_a_refused_domain_are_removed(m: Any, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The missing parents are made first; a refusal after that removes them."""
    import virtplane_storage_file.localfs as localfs

    monkeypatch.setattr(localfs.os, "access", lambda path, mode: False)
    with pytest.raises(InvalidInput, match="is not writable"):
        m.storage.add("s", "localfs", None, {"path": str(tmp_path / "new" / "deeper")})
    assert not (tmp_path / "new").exists()
    assert _domains(m) == []


def test_domain_folder_that_cannot_be_written_is_refused(m: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The base folder is there but the domain's own folder cannot be written: was the
    OSError with a traceback; nothing of the domain stays."""
    import virtplane_storage_file.domains as domains

    real = domains.write_json

    def full(path: Path, data: Any) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(domains, "write_json", full)
    (tmp_path / "sd").mkdir()  # there before: kept (a folder the add made is removed)
    with pytest.raises(InvalidInput, match=r"cannot write the storage domain 's' in .*: "
                                           "Permission denied; give a folder virtplane can "
                                           "write"):
        m.storage.add("s", "localfs", None, {"path": str(tmp_path / "sd")})
    assert list((tmp_path / "sd").iterdir()) == []
    assert _domains(m) == []
    monkeypatch.setattr(domains, "write_json", real)
    m.storage.add("s", "localfs", None, {"path": str(tmp_path / "sd")})
    assert _domains(m) == ["s"]


def test_cli_refuses_a_file_path_without_a_traceback(cli: Any) -> None:
    rc, out, err = cli("storage", "add", "s", "--type", "localfs", "--path", "/etc/passwd")
    assert rc == 1
    assert "the localfs path /etc/passwd of storage domain 's' is a file, not a folder" in err
    assert "Traceback" not in err + out
    rc, out, _ = cli("storage", "list", "--json")
    assert rc == 0 and "\"s\"" not in out


# ------------------------------------------------------------ mounts


def _record_targets(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    targets: list[Path] = []
    real = PosixFs.mount_command

    def recording(self: PosixFs, domain: model.StorageDomain, target: Path) -> list[str]:
        targets.append(target)
        return real(self, domain, target)

    monkeypatch.setattr(PosixFs, "mount_command", recording)
    return targets


def test_mount_of_an_unreachable_server_is_storage_unavailable(
        m: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Gluster FUSE mount (posixfs) from a loopback port nobody listens on: was the
    plugin's StorageError (500); now StorageUnavailable, and no mount point is left."""
    need(os.geteuid() == 0, "mounting needs root")
    need(shutil.which("mount.glusterfs") is not None, "mount.glusterfs is not installed")
    targets = _record_targets(monkeypatch)
    with pytest.raises(StorageUnavailable) as info:
        m.storage.add("px", "posixfs", "dc", {
            "spec": "127.0.0.1:/vptest", "vfs_type": "glusterfs", "options": "server-port=1",
            "mount_timeout_seconds": 30})
    assert isinstance(info.value, StorageError)
    text = str(info.value)
    assert text.startswith("storage domain 'px': cannot mount 127.0.0.1:/vptest on ")
    assert "check that the server is up, answers from this host and exports this path" in text
    assert _domains(m) == []
    assert targets and not targets[0].exists()


@pytest.mark.parametrize("conn, says", [
    ({"spec": "/tmp", "vfs_type": "bogusfs"},
     "this host cannot mount file systems of type 'bogusfs'"),
    ({"spec": "/no/such/device", "vfs_type": "ext4"},
     "give a device or folder of this host that holds a file system of type 'ext4'"),
])
def test_mount_of_bad_input_is_invalid_input(m: Any, monkeypatch: pytest.MonkeyPatch,
                                             conn: dict[str, str], says: str) -> None:
    need(os.geteuid() == 0, "mounting needs root")
    targets = _record_targets(monkeypatch)
    with pytest.raises(InvalidInput, match=says) as info:
        m.storage.add("px", "posixfs", "dc", conn)
    assert isinstance(info.value, StorageError)
    assert str(info.value).startswith(f"storage domain 'px': cannot mount {conn['spec']} on ")
    assert _domains(m) == []
    assert targets and not targets[0].exists()


def _dom(name: str = "px") -> model.StorageDomain:
    return model.StorageDomain(name=name, type="nfs", connection={"spec": "srv:/x"})


@pytest.mark.parametrize("spec, reason, kind", [
    ("127.0.0.1:/x", "mount.nfs: Connection refused", StorageUnavailable),
    ("srv:/x", "mount.nfs: access denied by server while mounting srv:/x",
     StorageUnavailable),
    ("//srv/share", "mount error(113): No route to host", StorageUnavailable),
    ("127.0.0.1:/x", "mount: /m: unknown filesystem type 'nfs'.", InvalidInput),
    ("127.0.0.1:/x", "mount: /m: bad option; for several filesystems (e.g. nfs, cifs) you "
                     "might need a /sbin/mount.<type> helper program.", InvalidInput),
    ("/dev/sdz9", "mount: /m: special device /dev/sdz9 does not exist.", InvalidInput),
])
def test_mount_failures_are_classified(spec: str, reason: str, kind: type) -> None:
    """Which mount failures are the caller's input and which the storage's absence (an
    nfs mount cannot be tried here: loopback servers only, often no NFS client)."""
    from virtplane_storage_file.posixfs import mount_failure

    error = mount_failure(_dom(), ["mount", "-t", "nfs", spec, "/m"], reason)
    assert isinstance(error, kind) and isinstance(error, StorageError)
    assert str(error).startswith(f"storage domain 'px': cannot mount {spec} on /m: {reason}")


# ------------------------------------------------------------ Gluster


def _glusterd_up() -> bool:
    if shutil.which("gluster") is None:
        return False
    proc = subprocess.run(["gluster", "--mode=script", "volume", "info", GLUSTER_VOLUME],
                          capture_output=True, text=True)
    return proc.returncode == 0


def test_gluster_server_that_does_not_answer_is_storage_unavailable(m: Any) -> None:
    """::1 (loopback; glusterd listens on IPv4 only): was StorageError (500)."""
    need(_glusterd_up(), f"Gluster volume {GLUSTER_VOLUME} is not there")
    with pytest.raises(StorageUnavailable) as info:
        m.storage.add("g", "glusterfs", "dc", {"server": "::1", "volume": GLUSTER_VOLUME})
    assert isinstance(info.value, StorageError)
    assert str(info.value).startswith(
        f"storage domain 'g': cannot read Gluster volume {GLUSTER_VOLUME!r}: ::1: ")
    assert "check that glusterd runs on ::1 and answers this host (port 24007)" in \
        str(info.value)
    assert _domains(m) == []


def test_gluster_volume_that_does_not_exist_is_invalid_input(m: Any) -> None:
    need(_glusterd_up(), f"Gluster volume {GLUSTER_VOLUME} is not there")
    with pytest.raises(InvalidInput) as info:
        m.storage.add("g", "glusterfs", "dc", {"server": "127.0.0.1", "volume": "no-such-vol"})
    assert isinstance(info.value, StorageError)
    assert str(info.value) == (
        "storage domain 'g': cannot read Gluster volume 'no-such-vol': 127.0.0.1: Volume "
        "does not exist; give the name of a volume that exists (gluster volume list, on "
        "127.0.0.1)")
    assert _domains(m) == []


# --------------------------------------------- a domain taken out of use


def test_deactivated_domain_is_a_state_not_an_outage(m: Any, tmp_path: Path) -> None:
    """Was StorageUnavailable (503 'unreachable') for an administrator's maintenance."""
    m.storage.add("sd", "localfs", "dc", {"path": str(tmp_path / "sd")})
    m.storage.deactivate("sd")
    with pytest.raises(InvalidState) as info:
        m.disks.create("d", "sd", 1 << 20)
    assert not isinstance(info.value, StorageUnavailable)
    assert str(info.value) == "storage domain 'sd' is Inactive: deactivated by the administrator"
    m.storage.activate("sd")
    m.disks.create("d", "sd", 1 << 20)


def test_domain_whose_storage_went_away_is_still_unavailable(m: Any, tmp_path: Path) -> None:
    m.storage.add("sd", "localfs", "dc", {"path": str(tmp_path / "sd")})
    (tmp_path / "sd").rename(tmp_path / "away")
    try:
        assert m.storage.refresh("sd").status == model.DomainStatus.INACTIVE
        with pytest.raises(StorageUnavailable, match="storage domain 'sd' is Inactive: "
                                                     "cannot read "):
            m.disks.create("d", "sd", 1 << 20)
    finally:
        (tmp_path / "away").rename(tmp_path / "sd")
