"""What a storage operation leaves on the host, when it fails and when it succeeds.

* a localfs attach (or add) that fails removes the folders it made for the path, and
  never a folder that was there before;
* an unmount that fails says whose problem it is, as a failed mount does: a busy mount
  is a state (InvalidState, REST 409), a server that stopped answering is
  StorageUnavailable (503); the deactivation changes nothing then;
* a deactivated (or removed) mounted domain leaves no mount point behind, even when
  its mount vanished first; attaching a mounted domain leaves no probe mount.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from virtplane import model
from virtplane.errors import InvalidState, NotFound, StorageUnavailable
from virtplane_storage_file import StorageError
from virtplane_storage_file.posixfs import PosixFs, is_mounted

MNT = Path("/run/virtplane/mnt")


def _points() -> set[str]:
    return set(os.listdir(MNT)) if MNT.is_dir() else set()


@pytest.fixture
def m(manager_factory: Any) -> Any:
    m = manager_factory()
    m.datacenters.add("dc")
    return m


# ------------------------------------------------------ localfs: made, then refused


@pytest.fixture
def area(tmp_path: Path) -> Path:
    """An empty folder of the test's own (tmp_path holds its home and state too)."""
    (tmp_path / "area").mkdir()
    return tmp_path / "area"


def test_attach_of_a_missing_localfs_path_leaves_no_folder(m: Any, area: Path) -> None:
    """Was: the folder (and its missing parents) made by connect stayed behind."""
    path = area / "new" / "deeper" / "sd"
    with pytest.raises(NotFound, match="no storage domain 'sd' on that localfs storage; "
                                       "found: none"):
        m.storage.attach("sd", "localfs", {"path": str(path)})
    assert list(area.iterdir()) == []
    assert m.store.list(model.StorageDomain) == []


def test_attach_never_removes_a_folder_that_was_there(m: Any, area: Path) -> None:
    (area / "empty").mkdir()
    with pytest.raises(NotFound):
        m.storage.attach("sd", "localfs", {"path": str(area / "empty")})
    with pytest.raises(NotFound):
        m.storage.attach("sd", "localfs", {"path": str(area / "empty" / "sub")})
    assert sorted(p.name for p in area.rglob("*")) == ["empty"]


def test_add_whose_domain_cannot_be_written_leaves_no_folder(
        m: Any, area: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from virtplane_storage_file.domains import DomainsMixin

    def broken(self: Any, domain: Any) -> None:
        raise StorageError("cannot write the storage domain: simulated")

    monkeypatch.setattr(DomainsMixin, "create_domain", broken)
    (area / "kept").mkdir()
    with pytest.raises(StorageError, match="simulated"):
        m.storage.add("sd", "localfs", "dc", {"path": str(area / "kept" / "a" / "sd")})
    assert sorted(p.name for p in area.rglob("*")) == ["kept"]
    assert m.store.list(model.StorageDomain) == []


def test_a_localfs_domain_added_and_removed_keeps_its_folder(m: Any, tmp_path: Path) -> None:
    """The folders made for a domain that was created are the administrator's: removing
    the domain (in the same process) removes the domain, not them."""
    m.storage.add("sd", "localfs", "dc", {"path": str(tmp_path / "a" / "sd")})
    m.storage.deactivate("sd")
    m.storage.activate("sd")
    m.storage.remove("sd")
    assert (tmp_path / "a" / "sd").is_dir() and list((tmp_path / "a" / "sd").iterdir()) == []


# ----------------------------------------------------------- mounted domains


@pytest.fixture
def bind(m: Any, tmp_path: Path) -> Iterator[tuple[Any, model.StorageDomain, Path]]:
    """A posixfs domain on a real bind mount of ``tmp_path/export``; removed afterwards."""
    need(os.geteuid() == 0, "bind mounts need root")
    export = tmp_path / "export"
    export.mkdir()
    dom = m.storage.add("px", "posixfs", "dc", {
        "spec": str(export), "vfs_type": "none", "options": "bind"})
    yield m, dom, export
    if any(d.name == "px" for d in m.storage.list()):
        m.storage.remove("px")
    assert not is_mounted(PosixFs().mount_point(dom))


def test_unmount_of_a_busy_mount_is_a_state_and_changes_nothing(bind: Any) -> None:
    """A real busy mount (a file open on it): was a plain StorageError (REST 500), and
    the domain was recorded Inactive although it stayed mounted."""
    m, dom, _export = bind
    target = PosixFs().mount_point(dom)
    with open(target / dom.id / "dom_md" / "metadata.json", "rb"):
        with pytest.raises(InvalidState) as info:
            m.storage.deactivate("px")
        assert isinstance(info.value, StorageError)
        text = str(info.value)
        assert text.startswith(f"storage domain 'px': cannot unmount {target}: ")
        assert "busy" in text and f"fuser -vm {target}" in text
        assert is_mounted(target)
        assert m.storage.get("px").status == model.DomainStatus.ACTIVE
        assert m.storage.get("px").status_reason == ""
    d = m.storage.deactivate("px")
    assert d.status == model.DomainStatus.INACTIVE
    assert not os.path.lexists(target)


@pytest.mark.parametrize("reason, kind", [
    ("umount.nfs4: /m: Stale file handle", StorageUnavailable),
    ("umount: /m: Transport endpoint is not connected", StorageUnavailable),
    ("umount.nfs: /m: Connection timed out", StorageUnavailable),
    ("umount: /m: target is busy.", InvalidState),
    ("umount.nfs: /m: device is busy", InvalidState),
])
def test_unmount_failures_are_classified(bind: Any, monkeypatch: pytest.MonkeyPatch,
                                         reason: str, kind: type) -> None:
    m, dom, _export = bind
    real = subprocess.run

    def umount_fails(cmd: Any, *args: Any, **kw: Any) -> Any:
        if cmd[0] == "umount":
            return subprocess.CompletedProcess(cmd, 32, "", reason + "\n")
        return real(cmd, *args, **kw)

    monkeypatch.setattr(subprocess, "run", umount_fails)
    with pytest.raises(kind) as info:
        m.storage.deactivate("px")
    assert isinstance(info.value, StorageError)
    assert reason in str(info.value)
    assert m.storage.get("px").status == model.DomainStatus.ACTIVE
    monkeypatch.setattr(subprocess, "run", real)


def test_unmount_that_does_not_finish_is_storage_unavailable(
        bind: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Was subprocess.TimeoutExpired, with a traceback."""
    m, dom, _export = bind
    real = subprocess.run

    def hangs(cmd: Any, *args: Any, **kw: Any) -> Any:
        if cmd[0] == "umount":
            raise subprocess.TimeoutExpired(cmd, kw.get("timeout") or 0)
        return real(cmd, *args, **kw)

    monkeypatch.setattr(subprocess, "run", hangs)
    with pytest.raises(StorageUnavailable, match="did not finish within 30 s"):
        m.storage.deactivate("px")
    monkeypatch.setattr(subprocess, "run", real)


def test_unmount_failure_of_an_unknown_cause_stays_a_storage_error() -> None:
    from virtplane_storage_file.posixfs import unmount_failure

    dom = model.StorageDomain(name="s", type="posixfs")
    err = unmount_failure(dom, Path("/m"), "umount: /m: something else")
    assert type(err) is StorageError
    assert str(err) == "storage domain 's': cannot unmount /m: umount: /m: something else"


def test_deactivate_after_the_mount_vanished_removes_the_mount_point(bind: Any) -> None:
    """Was: disconnect saw nothing mounted and left the empty mount point (one per
    such domain in /run/virtplane/mnt)."""
    m, dom, _export = bind
    target = PosixFs().mount_point(dom)
    subprocess.run(["umount", str(target)], check=True)  # gone under the host
    assert target.is_dir()
    m.storage.deactivate("px")
    assert not os.path.lexists(target)


def test_a_mount_point_with_something_in_it_is_never_removed(bind: Any) -> None:
    m, dom, _export = bind
    target = PosixFs().mount_point(dom)
    subprocess.run(["umount", str(target)], check=True)
    (target / "not-ours").write_text("x")
    try:
        m.storage.deactivate("px")
        assert (target / "not-ours").read_text() == "x"
    finally:
        (target / "not-ours").unlink()
        target.rmdir()


def test_attach_of_a_mounted_domain_leaves_no_probe_mount_and_finds_the_images(
        bind: Any, manager_factory: Any, tmp_path: Path) -> None:
    """Was: the probe's mount (mnt/<random id>) stayed mounted after every attach, and
    on a host where the domain was not mounted the images were read from its empty
    mount point (none found)."""
    m, dom, export = bind
    m.disks.create("d", "px", 1 << 20)
    m.storage.deactivate("px")  # this host lets go of the domain
    before = _points()
    other = manager_factory(state_path=tmp_path / "other.db")
    conn = {"spec": str(export), "vfs_type": "none", "options": "bind"}
    got = other.storage.attach("px", "posixfs", conn)
    assert [i.alias for i in other.volumes.images_of(got)] == ["d"]
    assert _points() - before == {dom.id}  # the domain's own mount, no probe's
    other.storage.deactivate("px")
    assert _points() == before
    with pytest.raises(NotFound):
        other.storage.attach("nope", "posixfs", conn)
    assert _points() == before
    m.storage.activate("px")
    m.disks.remove("d")
