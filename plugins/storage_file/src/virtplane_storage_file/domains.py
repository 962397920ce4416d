"""A file domain's own metadata and its images' metadata: creating and removing the
domain, finding domains under a connection, reading and writing image metadata, and
checking storage, metadata and the state store against each other."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtplane.errors import VirtplaneError
from virtplane_storage_file.confinement import _UUID_RE, checked_image, confined, require_uuid
from virtplane_storage_file.errors import StorageError, from_os_error
from virtplane_storage_file.layout import ISO_IMAGE_ID
from virtplane_storage_file.locking import LockingMixin
from virtplane_storage_file.metadata import (
    METADATA_VERSION,
    check_version,
    read_json,
    write_json,
)

if TYPE_CHECKING:
    from virtplane.model import Image, StorageDomain


class DomainsMixin(LockingMixin):
    """Domain and image metadata on the storage, and the domain's health."""

    def health(self, domain: StorageDomain) -> str | None:
        """Why the domain is unusable right now, or None. Reads the domain metadata in
        a child process with a timeout (``connection.probe_timeout_seconds``, default
        10), so storage that stopped answering is reported instead of hanging the
        caller, as VDSM's domain monitor does."""
        import subprocess

        md = confined(self.root(domain), "dom_md", "metadata.json")
        timeout = float(domain.connection.get("probe_timeout_seconds") or 10)
        # only a regular file is read (a FIFO planted there would block the child for the
        # whole timeout, a device never end); the checks run in the child too, since
        # even a stat can hang on storage that stopped answering
        script = ('if [ -L "$1" ] || { [ -e "$1" ] && [ ! -f "$1" ]; }; then '
                  'echo "$1: not a regular file" >&2; exit 1; fi; '
                  'exec head -c 4194304 -- "$1"')
        try:
            proc = subprocess.run(["sh", "-c", script, "sh", str(md)], capture_output=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"reading {md} did not finish within {timeout:g} s"
        if proc.returncode != 0:
            return f"cannot read {md}: {proc.stderr.decode(errors='replace').strip()}"
        return None

    def domain_metadata(self, domain: StorageDomain) -> dict[str, Any]:
        return {"version": METADATA_VERSION, "uuid": domain.id, "name": domain.name,
                "class": domain.domain_class.value, "type": domain.type}

    def create_domain(self, domain: StorageDomain) -> None:
        """Make the domain's folder, ``images`` and ``dom_md`` with its metadata; on a
        failure nothing of it is left (a folder that cannot be written is a
        :class:`~virtplane_storage_file.errors.StorageInputError` naming it)."""
        import shutil

        root = self.root(domain)
        if os.path.lexists(root):
            raise StorageError(f"{root} already exists; refusing to overwrite another domain")
        try:
            root.mkdir()
        except OSError as exc:
            raise from_os_error(exc, f"cannot make the folder {root} of storage domain "
                                     f"{domain.name!r}",
                                "give a folder virtplane can write") from None
        try:
            (root / "images").mkdir()
            (root / "dom_md").mkdir()
            write_json(root / "dom_md" / "metadata.json", self.domain_metadata(domain))
        except OSError as exc:
            shutil.rmtree(root)
            raise from_os_error(exc, f"cannot write the storage domain {domain.name!r} "
                                     f"in {root}", "give a folder virtplane can write") from None
        except BaseException:
            shutil.rmtree(root)
            raise

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
            check_version(md, md_path)
            _check_domain_fields(md, md_path)
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
                data = checked_image(read_json(meta), meta, domain.id, name)
                if not data["volumes"]:  # virtplane never leaves one: every disk has a leaf
                    raise StorageError(f"{meta}: volumes is empty (an image has at least "
                                       "one volume); refusing this metadata")
                out.append(data)
        _check_bases(out, confined(self.root(domain), "images"))
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
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a file (or anything else) where the folder goes
                raise StorageError(f"cannot make the image folder {folder} of storage "
                                   f"domain {domain.name!r}: {exc.strerror or exc}") from None
            data = model.unstructure(image)
            data["intent"] = None  # the engine's journal never goes to the storage
            write_json(confined(folder, "image.json"), data)

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
            # a pending intent is the store's own (never on the storage): not compared
            mine = dict(model.unstructure(known[image_id]), intent=None)
            if mine != model.unstructure(on_storage[image_id]):
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


#: the fields of a domain's metadata the engine uses, and their JSON types
_DOMAIN_TYPES: dict[str, type] = {"name": str, "class": str, "type": str}


def _check_domain_fields(md: dict[str, Any], source: Path) -> None:
    """A domain's name is text on one line, its class one virtplane knows."""
    from virtplane import model

    for key, want in _DOMAIN_TYPES.items():
        if key == "name" or key in md:
            value = md.get(key)
            if not isinstance(value, str) or type(value) is not want:
                raise StorageError(f"{source}: {key} is a {type(value).__name__}, not a "
                                   f"{want.__name__}; refusing this metadata")
            if not value.isprintable() or len(value) > 255:
                raise StorageError(f"{source}: {key} is not printable text of up to 255 "
                                   "characters; refusing this metadata")
    classes = [c.value for c in model.DomainClass]
    if md.get("class", "data") not in classes:
        raise StorageError(f"{source}: class {md['class']!r} is not one of "
                           f"{', '.join(classes)}; refusing this metadata")


def _check_bases(images: list[dict[str, Any]], folder: Path) -> None:
    """A volume on another image (``base_image_id``: a thin image on a template) names an
    image of this domain and one of its volumes, and no image sits on itself through
    others (a cycle of bases)."""
    by_id = {i["id"]: i for i in images}
    base_of: dict[str, str] = {}
    for image in images:
        first = image["volumes"][0]
        base = first.get("base_image_id")
        if base is None:
            continue
        source = folder / image["id"] / "image.json"
        if base not in by_id:
            raise StorageError(f"{source}: volumes[0].base_image_id {base} is no image of "
                               "this domain; refusing this metadata")
        if first["parent_id"] not in {v["id"] for v in by_id[base]["volumes"]}:
            raise StorageError(f"{source}: volumes[0].parent_id {first['parent_id']} is no "
                               f"volume of image {base}; refusing this metadata")
        base_of[image["id"]] = base
    for start in base_of:
        seen, at = {start}, start
        while at in base_of:
            at = base_of[at]
            if at in seen:
                raise StorageError(f"{folder / start / 'image.json'}: its base images "
                                   "form a cycle; refusing this metadata")
            seen.add(at)
