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

Metadata on shared storage is **untrusted input**: anyone who can write the
export can rewrite it and recompute the checksum (which guards against
corruption, not against a writer). So:

* every id read from storage must be a canonical UUID, and an image's id must
  match its folder and its volumes' ``image_id`` (:func:`checked_image`,
  :func:`require_uuid`); otherwise the metadata is refused with an error naming
  the file and the field;
* every path made from ids goes through :func:`confined`: one plain name per
  component, no symlink on the way (virtplane never makes one inside a domain),
  and the resolved result inside the domain's folder;
* temporary files are created ``O_EXCL | O_NOFOLLOW`` (a planted symlink is
  never written through) and metadata is read ``O_NOFOLLOW``;
* metadata writes hold ``dom_md/metadata.lock`` (``flock``) for a bounded time
  (:meth:`FileDomain.metadata_lock`), so two engines on one domain take turns.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import json
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtplane.errors import InvalidInput, NoSpace, NotFound, VirtplaneError

if TYPE_CHECKING:
    from virtplane.model import Image, StorageDomain, Volume

METADATA_VERSION = 1
#: the image folder of an ISO domain (VDSM's well-known "blank" image id)
ISO_IMAGE_ID = "11111111-1111-1111-1111-111111111111"
#: how long a metadata write waits for another holder of the domain's lock (seconds;
#: ``connection.lock_timeout_seconds`` overrides it per domain)
LOCK_TIMEOUT = 30.0
#: the lock file, in ``dom_md/``
LOCK_NAME = "metadata.lock"

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class StorageError(VirtplaneError):
    """A storage operation failed (the message says which and why)."""


def _fresh(path: Path) -> int:
    """Create ``path`` for writing: a file already there (a leftover, or a symlink someone
    planted to redirect the write) is removed first, never written through; O_EXCL makes
    one planted again in between fail instead of being followed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass  # the usual case: nothing left over
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                   0o644)


def write_json(path: Path, data: Any) -> None:
    """Write ``{"data", "sha256"}`` atomically (temp file, fsync, rename)."""
    import hashlib

    text = json.dumps(data, sort_keys=True)
    # the same document json.dump({"data", "sha256"}) gives, serialised once
    doc = f'{{"data": {text}, "sha256": "{hashlib.sha256(text.encode()).hexdigest()}"}}'
    tmp = path.with_name(path.name + ".tmp")
    try:
        with os.fdopen(_fresh(tmp), "w", encoding="utf-8") as f:
            f.write(doc)
            f.flush()
            os.fdatasync(f.fileno())
        os.replace(tmp, path)  # replaces a symlink at ``path`` itself, never its target
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise NoSpace(f"no space left to write {path} (the previous metadata is "
                          "unchanged)") from None
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_json(path: Path) -> Any:
    """Read a metadata file; StorageError if it is unreadable or its checksum is wrong.

    The file is opened ``O_NOFOLLOW``: metadata virtplane wrote is never a symlink, and
    following one would read whatever file it names, as root.
    """
    import hashlib

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, encoding="utf-8") as f:
            doc = json.loads(f.read())
        data = doc["data"]
        want = doc["sha256"]
    except OSError as exc:
        why = ("it is a symbolic link" if exc.errno == errno.ELOOP
               else exc.strerror or str(exc))
        raise StorageError(f"{path}: unreadable metadata ({why})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"{path}: unreadable metadata ({exc})") from None
    got = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    if got != want:
        raise StorageError(f"{path}: metadata checksum mismatch (stored {str(want)[:12]}..., "
                           f"content {got[:12]}...)")
    return data


# ------------------------------------------------------------ untrusted ids and paths


def require_uuid(value: Any, field: str, source: Any) -> str:
    """``value`` if it is a canonical (lower-case, dashed) UUID, else StorageError naming
    ``source`` (a file, or the object the id belongs to) and ``field``.

    Ids name folders and files; one that is ``../../x`` or ``/etc`` would make a path
    outside the domain.
    """
    if isinstance(value, str) and _UUID_RE.fullmatch(value):
        return value
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    raise StorageError(f"{source}: {field} {shown} is not a canonical UUID; refusing this "
                       "metadata (ids name files on the storage, so only UUIDs are allowed)")


def checked_image(data: Any, source: Any, domain_id: str | None = None,
                  folder: str | None = None) -> dict[str, Any]:
    """Image metadata (``model.unstructure(Image)``) read from storage, its ids checked.

    Every id is a canonical UUID; the image's ``id`` is its folder's name (``folder``),
    its ``domain_id`` the domain it was read from, and each volume's ``image_id`` the
    image's own. Anything else is refused with StorageError naming ``source`` and the
    field.
    """
    if not isinstance(data, dict):
        raise StorageError(f"{source}: image metadata is a {type(data).__name__}, not an "
                           "object; refusing it")
    image_id = require_uuid(data.get("id"), "id", source)
    if folder is not None and image_id != folder:
        raise StorageError(f"{source}: id {image_id} is not its folder's name {folder!r}; "
                           "refusing this metadata")
    dom = require_uuid(data.get("domain_id"), "domain_id", source)
    if domain_id is not None and dom != domain_id:
        raise StorageError(f"{source}: domain_id {dom} is not this domain ({domain_id}); "
                           "refusing this metadata")
    volumes = data.get("volumes")
    if not isinstance(volumes, list):
        raise StorageError(f"{source}: volumes is not a list; refusing this metadata")
    for n, vol in enumerate(volumes):
        if not isinstance(vol, dict):
            raise StorageError(f"{source}: volumes[{n}] is not an object; refusing this "
                               "metadata")
        require_uuid(vol.get("id"), f"volumes[{n}].id", source)
        if require_uuid(vol.get("image_id"), f"volumes[{n}].image_id", source) != image_id:
            raise StorageError(f"{source}: volumes[{n}].image_id is not the image's id "
                               f"{image_id}; refusing this metadata")
        for key in ("parent_id", "base_image_id"):
            if vol.get(key) is not None:
                require_uuid(vol[key], f"volumes[{n}].{key}", source)
    return data


def _plain(part: str) -> str:
    if not part or part in (".", "..") or "/" in part or "\0" in part:
        raise StorageError(f"{part!r} is not a plain file name; refusing a path made from it")
    return part


def confined(base: Path, *parts: str) -> Path:
    """``base/parts...``, refused unless it stays inside ``base``.

    Each part must be one plain name (no ``/``, not ``.`` or ``..``); no component from
    ``base`` down may be a symbolic link (virtplane never makes one inside a domain; one
    there was planted, and following it could reach any file); and the resolved path
    must lie under the resolved ``base`` (``os.path.realpath`` + ``commonpath``).
    Components that do not exist yet are fine (the caller is about to create them).
    ``base`` itself is trusted: it is the administrator's folder or virtplane's mount.
    """
    path = base
    for part in parts:
        path = path / _plain(part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            break  # neither this nor anything below it exists yet
        except OSError as exc:
            raise StorageError(f"cannot check {path}: {exc.strerror or exc}") from None
        if stat.S_ISLNK(st.st_mode):
            raise StorageError(f"{path} is a symbolic link; virtplane never makes links "
                               "inside a storage domain and refuses to follow one (it could "
                               "lead outside the domain)")
    path = base.joinpath(*parts)
    # Every part is one plain name and none of them is a link (checked above), so the
    # path resolves to the resolved base plus the parts: no second realpath() walk of
    # the whole path (this runs several times per volume operation).
    real_base = _real_base(str(base))
    real = os.path.join(real_base, *parts)
    if os.path.commonpath([real_base, real]) != real_base:
        raise StorageError(f"{path} resolves to {real}, outside {real_base}; refusing it")
    return path


@functools.lru_cache(maxsize=256)
def _real_base(base: str) -> str:
    """The resolved domain root (trusted: the administrator's folder or virtplane's own
    mount point), resolved once per process."""
    return os.path.realpath(base)


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

    VIRTPLANE_PLUGIN_API = ">=2.0,<3"
    name = "file"

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings
        # locks this thread holds: lock file -> (fd, depth), so nested writes re-enter
        self._held = threading.local()

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
        """``<mount point>/<domain uuid>``; the id must be a UUID and the folder no link."""
        dom_id = require_uuid(domain.id, "id", f"storage domain {domain.name!r}")
        return confined(self.mount_point(domain), dom_id)

    def image_dir(self, domain: StorageDomain, image_id: str) -> Path:
        require_uuid(image_id, "image id", f"storage domain {domain.name!r}")
        return confined(self.root(domain), "images", image_id)

    def volume_path(self, domain: StorageDomain, image: Image, volume: Volume | str) -> Path:
        vol_id = volume if isinstance(volume, str) else volume.id
        require_uuid(image.id, "image id", f"storage domain {domain.name!r}")
        require_uuid(vol_id, "volume id", f"image {image.id}")
        return confined(self.root(domain), "images", image.id, vol_id)

    def _parent_path(self, domain: StorageDomain, image: Image, volume: Volume) -> Path:
        """A volume's backing file: in its own image, or a template's image (base_image_id)."""
        assert volume.parent_id is not None
        image_id = require_uuid(volume.base_image_id or image.id, "base image id",
                                f"volume {volume.id}")
        parent = require_uuid(volume.parent_id, "parent id", f"volume {volume.id}")
        return confined(self.root(domain), "images", image_id, parent)

    @staticmethod
    def _claim(path: Path) -> None:
        """Create a new volume's file ourselves (``O_EXCL | O_NOFOLLOW``, after removing a
        link planted under its name) before qemu-img, which follows links, writes it:
        the volume's id is in the metadata before the file exists (recorded illegal
        first), so a writer of the export could otherwise plant a link there in time."""
        try:
            os.close(_fresh(path))
        except OSError as exc:
            raise StorageError(f"cannot create {path}: {exc.strerror or exc}") from None

    def _volume_file(self, domain: StorageDomain, image: Image, volume: Volume) -> Path:
        """The path of an existing volume, for commands that follow links (qemu-img): it
        must be a regular file, not a link or a device someone put in its place."""
        path = self.volume_path(domain, image, volume)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise NotFound(f"volume file {path} does not exist") from None
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(f"{path} is not a regular file; refusing to work on it")
        return path

    # ----------------------------------------------------------- locking

    def lock_timeout(self, domain: StorageDomain) -> float:
        """How long a metadata write waits for the domain's lock."""
        return float(domain.connection.get("lock_timeout_seconds") or LOCK_TIMEOUT)

    @contextmanager
    def metadata_lock(self, domain: StorageDomain) -> Iterator[None]:
        """Hold ``dom_md/metadata.lock`` (``flock``, exclusive) around a read-modify-write
        of the domain's metadata.

        Two engines writing one domain's metadata at once forked a volume chain; with
        this they take turns. A second holder waits up to :meth:`lock_timeout` seconds
        (``connection.lock_timeout_seconds``, default :data:`LOCK_TIMEOUT`) and then
        fails with StorageError. Re-entrant within a thread, so a caller may hold it
        around several writes. ``flock`` works across NFS clients (Linux maps it onto
        NFS locks) and GlusterFS FUSE mounts.
        """
        # held already by this thread (a caller holding it around several writes): no
        # path to work out again, the first acquisition checked it
        key = f"{self.mount_point(domain)}\0{domain.id}"
        held: dict[str, list[int]] = getattr(self._held, "locks", None) or {}
        self._held.locks = held
        if key in held:
            held[key][1] += 1
            try:
                yield
            finally:
                held[key][1] -= 1
            return
        path = confined(self.root(domain), "dom_md", LOCK_NAME)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot open the lock file {path}: "
                               f"{exc.strerror or exc}") from None
        try:
            timeout = self.lock_timeout(domain)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StorageError(
                            f"storage domain {domain.name!r}: another engine or process "
                            f"held {path} for {timeout:g} s; metadata writes wait at most "
                            "that long (connection.lock_timeout_seconds); try again when "
                            "it is done") from None
                    time.sleep(0.05)
            held[key] = [fd, 1]
            try:
                yield
            finally:
                del held[key]
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @staticmethod
    def backing_name(image: Image, volume: Volume) -> str:
        """The backing file name written into a qcow2 layer: relative to the layer's
        folder (as VDSM does), so it resolves the same through a local path, a mount
        or a network URL."""
        assert volume.parent_id is not None
        parent = require_uuid(volume.parent_id, "parent id", f"volume {volume.id}")
        if volume.base_image_id and volume.base_image_id != image.id:
            base = require_uuid(volume.base_image_id, "base image id", f"volume {volume.id}")
            return f"../{base}/{parent}"
        return parent

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

        md = confined(self.root(domain), "dom_md", "metadata.json")
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
        if os.path.lexists(root):
            raise StorageError(f"{root} already exists; refusing to overwrite another domain")
        (root / "images").mkdir(parents=True)
        (root / "dom_md").mkdir()
        write_json(root / "dom_md" / "metadata.json", self.domain_metadata(domain))

    def remove_domain(self, domain: StorageDomain) -> None:
        import shutil

        root = self.root(domain)
        images = confined(root, "images")
        with self.metadata_lock(domain):
            if images.exists() and any(images.iterdir()):
                held = ", ".join(sorted(p.name for p in images.iterdir()))
                raise StorageError(f"storage domain {domain.name!r} still holds images: "
                                   f"{held}")
            # rmtree removes links it meets inside, never what they point to; root is
            # no link itself (confined)
            shutil.rmtree(root)

    def _domain_folders(self, base: Path) -> Iterator[str]:
        """Names of the folders under ``base`` that can be domains (UUID names that are
        real folders: anything else in an export is not ours to read)."""
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except OSError as exc:
            raise StorageError(f"cannot list {base}: {exc.strerror or exc}") from None
        for entry in entries:
            if _UUID_RE.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                yield entry.name

    def find_domains(self, domain: StorageDomain) -> list[dict[str, Any]]:
        """Metadata of every domain under this connection's folder (for attaching).

        A domain's ``uuid`` must be its folder's name (a canonical UUID): the engine
        makes every path of the domain from it.
        """
        base = self.mount_point(domain)
        out = []
        for name in self._domain_folders(base):
            md_path = confined(base, name, "dom_md", "metadata.json")
            if not os.path.lexists(md_path):
                continue  # a UUID-named folder that is no domain
            md = read_json(md_path)
            if not isinstance(md, dict):
                raise StorageError(f"{md_path}: domain metadata is not an object; refusing it")
            if require_uuid(md.get("uuid"), "uuid", md_path) != name:
                raise StorageError(f"{md_path}: uuid {md['uuid']} is not its folder's name "
                                   f"{name}; refusing this metadata")
            out.append(md)
        return out

    def _image_folders(self, domain: StorageDomain) -> list[str]:
        images = confined(self.root(domain), "images")
        if not images.is_dir():
            return []
        return sorted(e.name for e in os.scandir(images) if e.name != ISO_IMAGE_ID
                      and not e.name.endswith(".tmp"))

    def read_images(self, domain: StorageDomain) -> list[dict[str, Any]]:
        """The images recorded on the storage (unstructured model data), every id checked
        (:func:`checked_image`); a folder that is not a UUID is refused by name."""
        out = []
        for name in self._image_folders(domain):
            source = confined(self.root(domain), "images", name)
            require_uuid(name, "image folder", source.parent)
            meta = confined(self.root(domain), "images", name, "image.json")
            if os.path.lexists(meta):
                out.append(checked_image(read_json(meta), meta, domain.id, name))
        return out

    def read_image(self, domain: StorageDomain, image_id: str) -> dict[str, Any] | None:
        """One image's metadata as the storage has it now (ids checked), or None when it
        has none: for a caller that holds :meth:`metadata_lock` and wants to compare the
        storage's chain with its own before writing (another engine may have moved it)."""
        meta = confined(self.image_dir(domain, image_id), "image.json")
        if not os.path.lexists(meta):
            return None
        return checked_image(read_json(meta), meta, domain.id, image_id)

    def write_image_metadata(self, domain: StorageDomain, image: Image) -> None:
        from virtplane import model

        folder = self.image_dir(domain, image.id)
        with self.metadata_lock(domain):
            folder.mkdir(parents=True, exist_ok=True)
            write_json(confined(folder, "image.json"), model.unstructure(image))

    def verify(self, domain: StorageDomain, images: list[Image]) -> list[str]:
        """Mismatches between the storage, its metadata and the state store's view,
        including metadata whose ids are refused and links where files should be."""
        from virtplane import model

        problems: list[str] = []
        root = self.root(domain)
        try:
            md = read_json(confined(root, "dom_md", "metadata.json"))
            if not isinstance(md, dict) or md.get("uuid") != domain.id:
                uuid = md.get("uuid") if isinstance(md, dict) else None
                problems.append(f"{root}: domain metadata names {uuid!r}, not {domain.id}")
        except StorageError as exc:
            problems.append(str(exc))
        known = {i.id: i for i in images}
        on_storage: dict[str, Image] = {}
        for name in self._image_folders(domain):
            try:
                folder = confined(root, "images", name)
                require_uuid(name, "image folder", folder.parent)
                meta = confined(folder, "image.json")
                if not os.path.lexists(meta):
                    continue  # reported below when the store knows the image
                data = checked_image(read_json(meta), meta, domain.id, name)
                image = model.structure(data, model.Image)
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
            try:
                folder = self.image_dir(domain, image.id)
            except StorageError as exc:
                problems.append(f"image {image.id}: {exc}")
                continue
            for vol in image.volumes:
                try:
                    path = self.volume_path(domain, image, vol)
                    st = os.lstat(path)
                except FileNotFoundError:
                    problems.append(f"image {image.id}: volume file {path} is missing")
                    continue
                except StorageError as exc:
                    problems.append(f"image {image.id}: {exc}")
                    continue
                if not stat.S_ISREG(st.st_mode):
                    problems.append(f"image {image.id}: volume {path} is not a regular file "
                                    "(virtplane only makes regular files)")
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
        return confined(self.root(domain), "images", ISO_IMAGE_ID)

    def import_iso(self, domain: StorageDomain, src: Path, name: str) -> Path:
        """Copy ``src`` in as ``name`` (temp file, then rename: never a half ISO).

        The temporary file is created ``O_EXCL | O_NOFOLLOW`` after removing any file of
        that name: a link planted there is never written through.
        """
        import shutil

        folder = self.iso_dir(domain)
        folder.mkdir(parents=True, exist_ok=True)
        target = confined(folder, name)
        if os.path.lexists(target):
            raise StorageError(f"ISO domain {domain.name!r} already has {name!r}")
        self.require_space(domain, src.stat().st_size, f"ISO {name}")
        tmp = target.with_name(f".{target.name}.tmp")  # a link there is removed (_fresh)
        try:
            with open(src, "rb") as fin, os.fdopen(_fresh(tmp), "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            os.replace(tmp, target)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
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
        path = confined(self.iso_dir(domain), name)
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
        self._claim(path)
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
        self._claim(target)
        try:
            qemu_img("convert", "-q", "-O", dst.format.value,
                     str(self._volume_file(domain, src_image, src)), str(target))
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
        self._claim(target)
        try:
            qemu_img("convert", "-q", "-O", volume.format.value, src, str(target))
        except VirtplaneError:
            target.unlink(missing_ok=True)
            raise

    def resize_volume(self, domain: StorageDomain, image: Image, volume: Volume,
                      size: int) -> None:
        qemu_img("resize", "-q", "-f", volume.format.value,
                 str(self._volume_file(domain, image, volume)), str(size))

    def delete_volume(self, domain: StorageDomain, image: Image, volume: Volume) -> None:
        # unlink removes a link itself, never its target; volume_path refuses ids that
        # are not UUIDs and folders that are links
        self.volume_path(domain, image, volume).unlink(missing_ok=True)

    def delete_image(self, domain: StorageDomain, image: Image) -> None:
        import shutil

        folder = self.image_dir(domain, image.id)
        with self.metadata_lock(domain):
            if folder.exists():
                # the folder is no link (image_dir); rmtree never follows links inside
                shutil.rmtree(folder)

    def merge_volume(self, domain: StorageDomain, image: Image, child: Volume,
                     parent: Volume) -> None:
        """Commit ``child`` into ``parent`` (same image) and rebase the layer above it."""
        self._volume_file(domain, image, parent)
        qemu_img("commit", "-q", "-d", str(self._volume_file(domain, image, child)))
        for v in image.volumes:
            if v.parent_id == child.id:
                # relative backing name, as create_volume writes it
                base = require_uuid(parent.id, "parent id", f"volume {v.id}")
                qemu_img("rebase", "-q", "-u", "-b", base, "-F", parent.format.value,
                         str(self._volume_file(domain, image, v)))

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
