"""What every file-based domain type shares: layout, metadata on storage, qemu-img.

Layout (VDSM's file domains)::

    <mount point>/<domain uuid>/dom_md/metadata.json       the domain
    <mount point>/<domain uuid>/images/<image uuid>/image.json   an image and its chain
    <mount point>/<domain uuid>/images/<image uuid>/<volume uuid>

The metadata lives on the storage, so another engine can attach the domain and
find its images; the state store is a cache of it. Every metadata file is a
JSON document ``{"data": ..., "sha256": ...}`` written to a temporary file,
flushed and renamed into place: a crash leaves the old or the new file, never a
mix, and ``verify`` finds a file whose checksum does not match.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtplane.errors import InvalidInput, NoSpace, NotFound, VirtplaneError

if TYPE_CHECKING:
    from virtplane.model import Image, StorageDomain, Volume

METADATA_VERSION = 1
#: the image folder of an ISO domain (VDSM's well-known "blank" image id)
ISO_IMAGE_ID = "11111111-1111-1111-1111-111111111111"


class StorageError(VirtplaneError):
    """A storage operation failed (the message says which and why)."""


def write_json(path: Path, data: Any) -> None:
    """Write ``{"data", "sha256"}`` atomically (temp file, fsync, rename)."""
    import hashlib

    text = json.dumps(data, sort_keys=True)
    # the same document json.dump({"data", "sha256"}) gives, serialised once
    doc = f'{{"data": {text}, "sha256": "{hashlib.sha256(text.encode()).hexdigest()}"}}'
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(doc)
            f.flush()
            os.fdatasync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise NoSpace(f"no space left to write {path} (the previous metadata is "
                          "unchanged)") from None
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_json(path: Path) -> Any:
    """Read a metadata file; StorageError if it is unreadable or its checksum is wrong."""
    import hashlib

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        data = doc["data"]
        want = doc["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"{path}: unreadable metadata ({exc})") from None
    got = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    if got != want:
        raise StorageError(f"{path}: metadata checksum mismatch (stored {want[:12]}..., "
                           f"content {got[:12]}...)")
    return data


def qemu_img(*args: str, timeout: float = 600) -> str:
    import shutil
    import subprocess

    exe = shutil.which("qemu-img")
    if exe is None:
        raise StorageError("qemu-img is not installed (Debian package qemu-utils)")
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StorageError(f"qemu-img {args[0]} timed out after {timeout:g} s") from None
    if proc.returncode != 0:
        message = proc.stderr.strip()
        if "No space left on device" in message:
            raise NoSpace(f"qemu-img {args[0]}: no space left on the storage ({message})")
        raise StorageError(f"qemu-img {' '.join(args[:2])} failed: {message}")
    return proc.stdout


class FileDomain:
    """Base of the file-based drivers; subclasses say where the domain's folder is."""

    VIRTPLANE_PLUGIN_API = ">=1.0,<2"
    name = "file"

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings

    # ------------------------------------------------------- to override

    def mount_point(self, domain: StorageDomain) -> Path:
        """The folder holding ``<domain uuid>/`` on this host."""
        raise NotImplementedError

    def connect(self, domain: StorageDomain) -> None:
        raise NotImplementedError

    def disconnect(self, domain: StorageDomain) -> None:
        """Release the host's connection (unmount); a no-op for local folders."""

    # ------------------------------------------------------------ layout

    def root(self, domain: StorageDomain) -> Path:
        return self.mount_point(domain) / domain.id

    def image_dir(self, domain: StorageDomain, image_id: str) -> Path:
        return self.root(domain) / "images" / image_id

    def volume_path(self, domain: StorageDomain, image: Image, volume: Volume | str) -> Path:
        vol_id = volume if isinstance(volume, str) else volume.id
        return self.image_dir(domain, image.id) / vol_id

    def _parent_path(self, domain: StorageDomain, image: Image, volume: Volume) -> Path:
        """A volume's backing file: in its own image, or a template's image (base_image_id)."""
        assert volume.parent_id is not None
        image_id = volume.base_image_id or image.id
        return self.image_dir(domain, image_id) / volume.parent_id

    @staticmethod
    def backing_name(image: Image, volume: Volume) -> str:
        """The backing file name written into a qcow2 layer: relative to the layer's
        folder (as VDSM does), so it resolves the same through a local path, a mount
        or a network URL."""
        assert volume.parent_id is not None
        if volume.base_image_id and volume.base_image_id != image.id:
            return f"../{volume.base_image_id}/{volume.parent_id}"
        return volume.parent_id

    def create_target(self, domain: StorageDomain, image: Image, volume: Volume) -> str:
        """Where qemu-img writes a new volume (a path; network drivers give a URL)."""
        return str(self.volume_path(domain, image, volume))

    def free_bytes(self, domain: StorageDomain) -> int:
        import shutil

        return shutil.disk_usage(self.root(domain)).free

    def require_space(self, domain: StorageDomain, needed: int, what: str) -> None:
        """NoSpace naming what needed how much, unless the domain has room for it."""
        free = self.free_bytes(domain)
        if needed > free:
            raise NoSpace(f"storage domain {domain.name!r} has {_mib(free)} free; "
                          f"{what} needs {_mib(needed)}")

    def health(self, domain: StorageDomain) -> str | None:
        """Why the domain is unusable right now, or None. Reads the domain metadata in
        a child process with a timeout (``connection.probe_timeout_seconds``, default
        10), so storage that stopped answering is reported instead of hanging the
        caller, as VDSM's domain monitor does."""
        import subprocess

        md = self.root(domain) / "dom_md" / "metadata.json"
        timeout = float(domain.connection.get("probe_timeout_seconds") or 10)
        try:
            proc = subprocess.run(["cat", str(md)], capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"reading {md} did not finish within {timeout:g} s"
        if proc.returncode != 0:
            return f"cannot read {md}: {proc.stderr.decode(errors='replace').strip()}"
        return None

    # ------------------------------------------------------------ domains

    def domain_metadata(self, domain: StorageDomain) -> dict[str, Any]:
        return {"version": METADATA_VERSION, "uuid": domain.id, "name": domain.name,
                "class": domain.domain_class.value, "type": domain.type}

    def create_domain(self, domain: StorageDomain) -> None:
        root = self.root(domain)
        if root.exists():
            raise StorageError(f"{root} already exists; refusing to overwrite another domain")
        (root / "images").mkdir(parents=True)
        (root / "dom_md").mkdir()
        write_json(root / "dom_md" / "metadata.json", self.domain_metadata(domain))

    def remove_domain(self, domain: StorageDomain) -> None:
        import shutil

        root = self.root(domain)
        images = root / "images"
        if images.exists() and any(images.iterdir()):
            held = ", ".join(sorted(p.name for p in images.iterdir()))
            raise StorageError(f"storage domain {domain.name!r} still holds images: {held}")
        shutil.rmtree(root)

    def find_domains(self, domain: StorageDomain) -> list[dict[str, Any]]:
        """Metadata of every domain under this connection's folder (for attaching)."""
        base = self.mount_point(domain)
        out = []
        for md in sorted(base.glob("*/dom_md/metadata.json")):
            out.append(read_json(md))
        return out

    def read_images(self, domain: StorageDomain) -> list[dict[str, Any]]:
        """The images recorded on the storage (unstructured model data)."""
        images = self.root(domain) / "images"
        return [read_json(p) for p in sorted(images.glob("*/image.json"))]

    def write_image_metadata(self, domain: StorageDomain, image: Image) -> None:
        from virtplane import model

        folder = self.image_dir(domain, image.id)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "image.json", model.unstructure(image))

    def verify(self, domain: StorageDomain, images: list[Image]) -> list[str]:
        """Mismatches between the storage, its metadata and the state store's view."""
        from virtplane import model

        problems: list[str] = []
        root = self.root(domain)
        try:
            md = read_json(root / "dom_md" / "metadata.json")
            if md.get("uuid") != domain.id:
                problems.append(f"{root}: domain metadata names {md.get('uuid')}, "
                                f"not {domain.id}")
        except StorageError as exc:
            problems.append(str(exc))
        known = {i.id: i for i in images}
        on_storage: dict[str, Image] = {}
        for meta in sorted((root / "images").glob("*/image.json")):
            try:
                image = model.structure(read_json(meta), model.Image)
            except (StorageError, VirtplaneError) as exc:
                problems.append(str(exc))
                continue
            on_storage[image.id] = image
        for image_id in sorted(set(known) - set(on_storage)):
            problems.append(f"image {image_id} is in the state store but not on the storage")
        for image_id in sorted(set(on_storage) - set(known)):
            problems.append(f"image {image_id} is on the storage but not in the state store")
        for image_id in sorted(set(known) & set(on_storage)):
            if model.to_json(known[image_id]) != model.to_json(on_storage[image_id]):
                problems.append(f"image {image_id}: the state store and the storage disagree "
                                "about its volume chain")
        for image in known.values():
            for vol in image.volumes:
                path = self.volume_path(domain, image, vol)
                if not path.exists():
                    problems.append(f"image {image.id}: volume file {path} is missing")
            folder = self.image_dir(domain, image.id)
            if folder.is_dir():
                extra = {p.name for p in folder.iterdir()} - {v.id for v in image.volumes} - {
                    "image.json"}
                for name in sorted(extra):
                    if not name.endswith(".tmp"):
                        problems.append(f"image {image.id}: unrecorded file {folder / name}")
        return problems

    # --------------------------------------------------------------- ISOs

    def iso_dir(self, domain: StorageDomain) -> Path:
        """An ISO domain keeps its images in VDSM's fixed folder."""
        return self.root(domain) / "images" / ISO_IMAGE_ID

    def import_iso(self, domain: StorageDomain, src: Path, name: str) -> Path:
        """Copy ``src`` in as ``name`` (temp file, then rename: never a half ISO)."""
        import shutil

        folder = self.iso_dir(domain)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        if target.exists():
            raise StorageError(f"ISO domain {domain.name!r} already has {name!r}")
        self.require_space(domain, src.stat().st_size, f"ISO {name}")
        tmp = folder / f".{name}.tmp"
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise NoSpace(f"no space left on {domain.name!r} for ISO {name}") from None
            raise StorageError(f"cannot copy {src} to {target}: {exc.strerror}") from None
        return target

    def list_isos(self, domain: StorageDomain) -> list[str]:
        folder = self.iso_dir(domain)
        return sorted(p.name for p in folder.iterdir()
                      if not p.name.startswith(".")) if folder.is_dir() else []

    def iso_path(self, domain: StorageDomain, name: str) -> Path:
        path = self.iso_dir(domain) / name
        if not path.is_file():
            raise NotFound(f"ISO domain {domain.name!r} has no {name!r} (has: "
                           f"{', '.join(self.list_isos(domain)) or 'nothing'})")
        return path

    def delete_iso(self, domain: StorageDomain, name: str) -> None:
        self.iso_path(domain, name).unlink()

    # ------------------------------------------------------------ volumes

    def create_volume(self, domain: StorageDomain, image: Image, volume: Volume) -> None:
        path = self.volume_path(domain, image, volume)
        path.parent.mkdir(parents=True, exist_ok=True)
        args = ["create", "-q", "-f", volume.format.value]
        if volume.parent_id is not None:
            parent = self._parent_path(domain, image, volume)
            if not parent.exists():
                raise NotFound(f"backing volume {parent} does not exist")
            # the parent's format is in the model when it is in this image; a template's
            # volume (another image) is asked of qemu-img
            known = next((v.format.value for v in image.volumes if v.id == volume.parent_id
                          and not volume.base_image_id), None)
            args += ["-b", self.backing_name(image, volume), "-F", known or _format_of(parent)]
        elif volume.allocation.value == "preallocated":
            self.require_space(domain, volume.size_bytes, f"preallocated volume {volume.id}")
            args += ["-o", "preallocation=falloc"]
        args.append(self.create_target(domain, image, volume))
        if volume.parent_id is None:
            args.append(str(volume.size_bytes))
        try:
            qemu_img(*args)
        except StorageError:
            path.unlink(missing_ok=True)
            raise

    def copy_volume(self, domain: StorageDomain, src_image: Image, src: Volume,
                    dst_image: Image, dst: Volume) -> None:
        """Copy ``src`` (with everything under it) into a new, standalone ``dst``."""
        target = self.volume_path(domain, dst_image, dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            qemu_img("convert", "-q", "-O", dst.format.value,
                     str(self.volume_path(domain, src_image, src)), str(target))
        except StorageError:
            target.unlink(missing_ok=True)
            raise

    @staticmethod
    def image_file_size(src: str) -> int:
        """The virtual size of an image file (any format qemu-img reads)."""
        size: int = json.loads(qemu_img("info", "--output=json", src))["virtual-size"]
        return size

    def import_volume(self, domain: StorageDomain, image: Image, volume: Volume,
                      src: str) -> None:
        """Fill a new volume from an image file (any format qemu-img reads)."""
        target = self.volume_path(domain, image, volume)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.require_space(domain, 0, f"importing {src}")
        try:
            qemu_img("convert", "-q", "-O", volume.format.value, src, str(target))
        except VirtplaneError:
            target.unlink(missing_ok=True)
            raise

    def resize_volume(self, domain: StorageDomain, image: Image, volume: Volume,
                      size: int) -> None:
        qemu_img("resize", "-q", "-f", volume.format.value,
                 str(self.volume_path(domain, image, volume)), str(size))

    def delete_volume(self, domain: StorageDomain, image: Image, volume: Volume) -> None:
        self.volume_path(domain, image, volume).unlink(missing_ok=True)

    def delete_image(self, domain: StorageDomain, image: Image) -> None:
        import shutil

        folder = self.image_dir(domain, image.id)
        if folder.exists():
            shutil.rmtree(folder)

    def merge_volume(self, domain: StorageDomain, image: Image, child: Volume,
                     parent: Volume) -> None:
        """Commit ``child`` into ``parent`` (same image) and rebase the layer above it."""
        qemu_img("commit", "-q", "-d", str(self.volume_path(domain, image, child)))
        for v in image.volumes:
            if v.parent_id == child.id:
                # relative backing name, as create_volume writes it
                qemu_img("rebase", "-q", "-u", "-b", parent.id, "-F", parent.format.value,
                         str(self.volume_path(domain, image, v)))

    def volume_source(self, domain: StorageDomain, image: Image, volume: Volume) -> dict[str, Any]:
        return {"type": "file", "source": {"@file": str(self.volume_path(domain, image, volume))}}


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _format_of(path: Path) -> str:
    # -U: the image may be in use by a running guest (its leaf holds the lock)
    out = qemu_img("info", "-U", "--output=json", str(path))
    fmt: str = json.loads(out)["format"]
    return fmt


def require(domain: StorageDomain, key: str, what: str) -> str:
    value = domain.connection.get(key)
    if not value:
        raise InvalidInput(f"{domain.type} domain {domain.name!r} needs connection.{key} "
                           f"({what}); got: {', '.join(sorted(domain.connection)) or 'nothing'}")
    return str(value)
