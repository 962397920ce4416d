"""Every first-party storage driver passes the plugin author kit (virtplane.testing).

``localfs`` on a folder, ``posixfs`` on a real bind mount, ``glusterfs`` on the
real single-node volume (tools/start-gluster.sh), ``libsm`` on the simulated
array (tests/libsm/fakelsm.py). ``nfs`` shares ``posixfs``'s code; this
kernel has no NFS client, so it is not run (docs/storage.md).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from tests.libsm import fakelsm
from virtplane.testing import StorageContract


class TestLocalfs(StorageContract):
    plugin = "localfs"

    @pytest.fixture
    def storage_connection(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "localfs")}


class TestPosixfs(StorageContract):
    plugin = "posixfs"

    @pytest.fixture
    def storage_connection(self, tmp_path: Path) -> dict[str, Any]:
        need(os.geteuid() == 0, "bind mounts need root")
        export = tmp_path / "export"
        export.mkdir()
        return {"spec": str(export), "vfs_type": "none", "options": "bind"}


GLUSTER_VOLUME = "vptest"


@pytest.mark.integration
class TestGlusterfs(StorageContract):
    plugin = "glusterfs"

    @pytest.fixture
    def storage_connection(self) -> dict[str, Any]:
        proc = subprocess.run(["gluster", "--mode=script", "volume", "info", GLUSTER_VOLUME],
                              capture_output=True, text=True)
        need(proc.returncode == 0 and "Status: Started" in proc.stdout,
             f"Gluster volume {GLUSTER_VOLUME} is not started (tools/start-gluster.sh)")
        return {"server": socket.gethostname(), "volume": GLUSTER_VOLUME}

    def volume_exists(self, manager, domain, image, volume):
        # volume_source is a gluster:// network disk; the FUSE mount shows the file
        return self.driver(manager).volume_path(domain, image, volume).exists()


class TestLibsm(StorageContract):
    plugin = "libsm"

    @pytest.fixture
    def storage_connection(self, tmp_path: Path, virtplane_home: Path) -> dict[str, Any]:
        state = tmp_path / "array.json"
        fakelsm.edit(state, jobtime=0.01)
        (virtplane_home / "virtplane.toml").write_text(
            "[plugin.libsm]\nlsm_module = 'tests.libsm.fakelsm'\n"
            f"device_pattern = '{state}.luns/{{vpd83}}'\njob_poll_seconds = 0.01\n")
        self.state = state
        return {"uri": f"sim://?statefile={state}", "pool": "Pool 1",
                "initiator": "iqn.1994-05.com.example:host1"}

    @pytest.fixture
    def manager(self, virtplane_manager, storage_connection):
        # the settings file is written by storage_connection, before the Manager reads it
        return virtplane_manager()

    def volume_exists(self, manager, domain, image, volume):
        # the LUN on the (simulated) array, not just its device node
        luns = json.loads(self.state.read_text())["volumes"]
        return any(volume.id in json.dumps(lun) for lun in luns.values())
