"""Storage refusals through the REST API: bad input is a 400, storage that does not
answer a 503, a domain in maintenance a 409; each detail names the domain or path
and what to do, nothing is logged with a traceback, and nothing of a refused domain
is left. Before: a localfs path that is a file was a 500 FileExistsError with a
traceback, and an unwritable folder, a failed mount or an unreadable Gluster volume
a 500 (the storage plugin's own error); a deactivated domain was a 503."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from tests.api.raw_http import JSON, XML, Client
from tests.api.raw_http import fault as _fault
from tests.conftest import need
from virtplane import model


def _add(client: Client, storage: dict[str, str]) -> tuple[int, str]:
    body = {"name": "s", "type": "data", "host": {"name": "h1"}, "storage": storage}
    return _fault(client.api("POST", "/storagedomains", json.dumps(body).encode(), JSON))


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("path, says", [
    ("/dev/null", "the localfs path /dev/null of storage domain 's' is a device, not a folder"),
    ("/etc/passwd", "the localfs path /etc/passwd of storage domain 's' is a file, not a "
                    "folder"),
    ("/etc/passwd/x", "/etc/passwd on its way is a file"),
])
def test_localfs_path_that_is_a_file_is_a_400(client: Client, world: Any, path: str, says: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """The fuzzer's finding: was a 500 FileExistsError with a traceback."""
    status, detail = _add(client, {"type": "localfs", "path": path})
    assert status == 400
    assert says in detail and "give the absolute path of a folder, or of one virtplane can " \
                              "make" in detail
    assert [d.name for d in world.store.list(model.StorageDomain)] == ["data1"]
    _no_traceback(caplog)


def test_localfs_path_that_is_a_file_is_a_400_in_xml(client: Client, world: Any,
                                                     tmp_path: Any) -> None:
    target = tmp_path / "plain-file"
    target.write_text("keep me")
    body = (f"<storage_domain><name>s</name><type>data</type><host><name>h1</name></host>"
            f"<storage><type>localfs</type><path>{target}</path></storage></storage_domain>")
    status, detail = _fault(client.api("POST", "/storagedomains", body.encode(), XML))
    assert (status, detail) == (400, f"[the localfs path {target} of storage domain 's' is a "
                                     "file, not a folder; give the absolute path of a folder, "
                                     "or of one virtplane can make]")
    assert target.read_text() == "keep me"
    assert [d.name for d in world.store.list(model.StorageDomain)] == ["data1"]


def test_unwritable_localfs_folder_is_a_400(client: Client, world: Any,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """/proc/self: was a 500 (the plugin's StorageError)."""
    status, detail = _add(client, {"type": "localfs", "path": "/proc/self"})
    assert status == 400
    assert detail.startswith("[the localfs folder /proc/self of storage domain 's' is not "
                             "writable by virtplane")
    assert [d.name for d in world.store.list(model.StorageDomain)] == ["data1"]
    _no_traceback(caplog)


def test_mount_of_an_unreachable_server_is_a_503(client: Client, world: Any,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A posixfs (Gluster FUSE) mount from a loopback port nobody listens on: was a 500."""
    need(os.geteuid() == 0, "mounting needs root")
    need(shutil.which("mount.glusterfs") is not None, "mount.glusterfs is not installed")
    status, detail = _add(client, {"type": "posixfs", "address": "127.0.0.1",
                                   "path": "/vptest", "vfs_type": "glusterfs",
                                   "mount_options": "server-port=1"})
    assert status == 503
    assert detail.startswith("[storage domain 's': cannot mount 127.0.0.1:/vptest on ")
    assert "check that the server is up" in detail
    assert [d.name for d in world.store.list(model.StorageDomain)] == ["data1"]
    _no_traceback(caplog)


def test_mount_of_an_unknown_file_system_type_is_a_400(client: Client, world: Any) -> None:
    need(os.geteuid() == 0, "mounting needs root")
    status, detail = _add(client, {"type": "posixfs", "path": "/tmp", "vfs_type": "bogusfs"})
    assert status == 400
    assert "this host cannot mount file systems of type 'bogusfs'" in detail
    assert [d.name for d in world.store.list(model.StorageDomain)] == ["data1"]


def _glusterd_up() -> bool:
    if shutil.which("gluster") is None:
        return False
    return subprocess.run(["gluster", "--mode=script", "volume", "info", "vptest"],
                          capture_output=True).returncode == 0


def test_gluster_server_that_does_not_answer_is_a_503(client: Client, world: Any,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """::1 (loopback; glusterd listens on IPv4 only): was a 500."""
    need(_glusterd_up(), "the Gluster volume vptest is not there")
    status, detail = _add(client, {"type": "glusterfs", "address": "::1", "path": "vptest"})
    assert status == 503
    assert detail.startswith("[storage domain 's': cannot read Gluster volume 'vptest': ::1: ")
    assert [d.name for d in world.store.list(model.StorageDomain)] == ["data1"]
    _no_traceback(caplog)


def test_gluster_volume_that_does_not_exist_is_a_400(client: Client, world: Any) -> None:
    need(_glusterd_up(), "the Gluster volume vptest is not there")
    status, detail = _add(client, {"type": "glusterfs", "address": "127.0.0.1",
                                   "path": "no-such-vol"})
    assert (status, detail) == (400, "[storage domain 's': cannot read Gluster volume "
                                     "'no-such-vol': 127.0.0.1: Volume does not exist; give the "
                                     "name of a volume that exists (gluster volume list, on "
                                     "127.0.0.1)]")
    assert [d.name for d in world.store.list(model.StorageDomain)] == ["data1"]


def test_disk_on_a_deactivated_domain_is_a_409(client: Client, world: Any) -> None:
    """Maintenance is a state (oVirt: 409 'Storage Domain ... is not active'): was a
    503 as if the storage were unreachable."""
    world.storage.deactivate("data1")
    body = {"name": "d", "format": "raw", "provisioned_size": str(1 << 20),
            "storage_domains": {"storage_domain": [{"name": "data1"}]}}
    status, detail = _fault(client.api("POST", "/disks", json.dumps(body).encode(), JSON))
    assert (status, detail) == (409, "[storage domain 'data1' is Inactive: deactivated by the "
                                     "administrator]")
    assert world.store.list(model.Image) == []
