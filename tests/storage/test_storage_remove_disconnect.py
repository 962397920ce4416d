"""``storage remove`` whose unmount fails after the domain was removed from its storage.

The domain is deleted through its mount, so the unmount comes last; when it fails
(a busy mount, a server gone) the removal has happened all the same: it is
reported done, with a logged warning and a warning event naming the mount, never
as a failed removal that did nothing (was: the record was gone and the command
failed with 409/503).
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from virtplane import model
from virtplane_storage_file.posixfs import PosixFs, is_mounted


@pytest.fixture
def bind(manager_factory: Any, tmp_path: Path) -> Iterator[tuple[Any, model.StorageDomain]]:
    """A posixfs domain on a real bind mount of ``tmp_path/export``; unmounted afterwards."""
    need(os.geteuid() == 0, "bind mounts need root")
    m = manager_factory()
    m.datacenters.add("dc")
    export = tmp_path / "export"
    export.mkdir()
    (export / "keep").write_text("held open\n")
    dom = m.storage.add("px", "posixfs", "dc", {
        "spec": str(export), "vfs_type": "none", "options": "bind"})
    yield m, dom
    if any(d.name == "px" for d in m.storage.list()):
        m.storage.remove("px")
    drv = PosixFs()
    if is_mounted(drv.mount_point(dom)):
        drv.disconnect(dom)
    assert not os.path.lexists(drv.mount_point(dom))


def _events(m: Any, dom: model.StorageDomain) -> list[str]:
    return [" ".join(str(x) for x in e) for e in m.store.events(dom.id)]


def test_a_busy_unmount_after_the_removal_is_a_warning(bind: Any,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    m, dom = bind
    target = PosixFs().mount_point(dom)
    with open(target / "keep", "rb"), caplog.at_level(logging.WARNING):
        m.storage.remove("px")  # was: InvalidState (409) although the domain was gone
        assert not any(d.name == "px" for d in m.storage.list())
        assert not (target / dom.id).exists()  # deleted from its storage
        assert is_mounted(target)  # the busy mount stays, as the warning says
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'px' was removed, but disconnecting it failed" in w and "busy" in w
               for w in warned), warned
    events = _events(m, dom)
    assert any("warning" in e and "was removed, but the host could not let go" in e
               and str(target) in e for e in events), events


def test_a_stale_unmount_after_the_removal_is_a_warning(
        bind: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    m, dom = bind
    real = subprocess.run

    def umount_fails(cmd: Any, *args: Any, **kw: Any) -> Any:
        if cmd[0] == "umount":
            return subprocess.CompletedProcess(cmd, 32, "",
                                               "umount.nfs4: /m: Stale file handle\n")
        return real(cmd, *args, **kw)

    monkeypatch.setattr(subprocess, "run", umount_fails)
    m.storage.remove("px")  # was: StorageUnavailable (503) for a removal that happened
    monkeypatch.setattr(subprocess, "run", real)
    assert not any(d.name == "px" for d in m.storage.list())
    assert any("Stale file handle" in e for e in _events(m, dom))


def test_a_removal_refused_before_anything_happened_still_fails(bind: Any) -> None:
    """Only the unmount after a completed removal is softened: a domain that still holds
    images is refused, with nothing changed, as before."""
    from virtplane.errors import InvalidState

    m, _dom = bind
    m.disks.create("d", "px", 1 << 20)
    with pytest.raises(InvalidState, match="still holds 1 image"):
        m.storage.remove("px")
    m.disks.remove("d")
