"""File-based storage domains for virtplane: driver ``localfs``.

A localfs domain is a folder (``connection = {"path": ...}``) laid out as
VDSM lays out file domains::

    <path>/<domain uuid>/dom_md/metadata.json
    <path>/<domain uuid>/images/<image uuid>/<volume uuid>

Volumes are made with ``qemu-img`` (raw or qcow2; a snapshot layer is a qcow2
overlay on its parent). The domain metadata is written to a temporary file and
renamed into place, so a crash never leaves a half-written file. ``nfs`` and
``posixfs`` (mount handling) come with issue #3.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from virtplane.model import Image, StorageDomain, Volume


def _err(msg: str) -> Exception:
    from virtplane.errors import VirtplaneError

    return VirtplaneError(msg)


class LocalFs:
    """The ``localfs`` storage driver."""

    VIRTPLANE_PLUGIN_API = ">=1.0,<2"
    name = "localfs"

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings

    def _root(self, domain: StorageDomain) -> Path:
        path = domain.connection.get("path")
        if not path:
            from virtplane.errors import InvalidInput

            raise InvalidInput(
                f"localfs domain {domain.name!r} needs connection.path (a folder); got "
                f"{sorted(domain.connection)}"
            )
        return Path(path) / domain.id

    def connect(self, domain: StorageDomain) -> None:
        base = Path(domain.connection.get("path") or "")
        if not domain.connection.get("path"):
            self._root(domain)
        base.mkdir(parents=True, exist_ok=True)
        if not os.access(base, os.W_OK):
            raise _err(f"localfs folder {base} is not writable")

    def create_domain(self, domain: StorageDomain) -> None:
        root = self._root(domain)
        if root.exists():
            raise _err(f"{root} already exists; refusing to overwrite another domain")
        (root / "images").mkdir(parents=True)
        (root / "dom_md").mkdir()
        self._write_metadata(domain)

    def _write_metadata(self, domain: StorageDomain) -> None:
        import hashlib

        root = self._root(domain)
        body = {"uuid": domain.id, "name": domain.name, "class": domain.domain_class.value,
                "type": "localfs", "version": 1}
        text = json.dumps(body, sort_keys=True)
        doc = {"metadata": body, "sha256": hashlib.sha256(text.encode()).hexdigest()}
        tmp = root / "dom_md" / "metadata.json.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, root / "dom_md" / "metadata.json")

    def remove_domain(self, domain: StorageDomain) -> None:
        import shutil

        root = self._root(domain)
        images = root / "images"
        if images.exists() and any(images.iterdir()):
            raise _err(f"storage domain {domain.name!r} still holds images")
        shutil.rmtree(root, ignore_errors=False)

    def _path(self, domain: StorageDomain, image_id: str, volume_id: str) -> Path:
        return self._root(domain) / "images" / image_id / volume_id

    def create_volume(self, domain: StorageDomain, image: Image, volume: Volume) -> None:
        import shutil
        import subprocess

        path = self._path(domain, image.id, volume.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        qemu_img = shutil.which("qemu-img")
        if qemu_img is None:
            raise _err("qemu-img is not installed (Debian package qemu-utils); "
                       "localfs needs it to create volumes")
        cmd = [qemu_img, "create", "-q", "-f", volume.format.value]
        if volume.parent_id is not None:
            parent = self._path(domain, image.id, volume.parent_id)
            known = [v.format.value for v in image.volumes if v.id == volume.parent_id]
            cmd += ["-b", str(parent), "-F", known[0] if known else _fmt(parent)]
        elif volume.allocation.value == "preallocated":
            cmd += ["-o", "preallocation=falloc"]
        cmd += [str(path)]
        if volume.parent_id is None:
            cmd.append(str(volume.size_bytes))
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            path.unlink(missing_ok=True)
            raise _err(f"qemu-img failed for {path}: {proc.stderr.strip()}")

    def delete_image(self, domain: StorageDomain, image: Image) -> None:
        import shutil

        folder = self._root(domain) / "images" / image.id
        if folder.exists():
            shutil.rmtree(folder)

    def delete_volume(self, domain: StorageDomain, image: Image, volume: Volume) -> None:
        self._path(domain, image.id, volume.id).unlink(missing_ok=True)

    def merge_volume(
        self, domain: StorageDomain, image: Image, child: Volume, parent: Volume
    ) -> None:
        import subprocess

        child_path = self._path(domain, image.id, child.id)
        parent_path = self._path(domain, image.id, parent.id)
        above = [v for v in image.volumes if v.parent_id == child.id]
        steps = [["qemu-img", "commit", "-q", "-d", str(child_path)]]
        for v in above:
            steps.append(["qemu-img", "rebase", "-q", "-u", "-b", str(parent_path),
                          "-F", parent.format.value, str(self._path(domain, image.id, v.id))])
        for cmd in steps:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise _err(f"{' '.join(cmd[:2])} failed for {child_path}: {proc.stderr.strip()}")

    def volume_source(self, domain: StorageDomain, image: Image, volume: Volume) -> dict[str, Any]:
        return {"type": "file", "source": {"@file": str(self._path(domain, image.id, volume.id))}}


def _fmt(path: Path) -> str:
    import subprocess

    # -U: the image may be in use by a running guest (its leaf holds the lock)
    proc = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)],
                          capture_output=True, text=True, check=True)
    fmt: str = json.loads(proc.stdout)["format"]
    return fmt
