"""Untrusted ids and paths: what keeps metadata read from shared storage inside its domain.

Every id read from storage must be a canonical UUID (:func:`require_uuid`, and
:func:`checked_image` for an image and its volumes); every path made from ids goes
through :func:`confined`; files virtplane creates are made ``O_EXCL | O_NOFOLLOW``
(:func:`_fresh`), never written through a planted link. See
:mod:`virtplane_storage_file.filedomain` for why.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from pathlib import Path
from typing import Any

from virtplane_storage_file.errors import StorageError

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


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
    field. An ``intent`` field is dropped (returned as None): it is never taken from the
    storage.
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
    _check_fields(data, source)
    _check_chain(data, source)
    # intents are the engine's own journal: an ``intent`` on the storage (always null
    # when virtplane wrote it) is dropped, never handed on
    data["intent"] = None
    return data


#: the largest volume size accepted from metadata (1 EiB, the core's limit too)
MAX_SIZE = 1 << 60

#: the JSON type each field of an image and of a volume must have (missing fields take
#: their default; unknown fields are refused by the model)
_IMAGE_TYPES: dict[str, tuple[type, ...]] = {
    "description": (str,), "alias": (str,), "owner": (str,), "shareable": (bool,),
    "intent": (dict, type(None))}
_VOLUME_TYPES: dict[str, tuple[type, ...]] = {
    "format": (str,), "allocation": (str,), "size_bytes": (int,), "legal": (bool,),
    "created_by": (str,)}


def _refuse(source: Any, what: str) -> StorageError:
    return StorageError(f"{source}: {what}; refusing this metadata")


def _check_types(obj: dict[str, Any], types: dict[str, tuple[type, ...]], prefix: str,
                 source: Any) -> None:
    for key, allowed in types.items():
        if key not in obj:
            continue
        value = obj[key]
        # a bool is an int to Python, and "false" would become True: types are exact
        if type(value) not in allowed:
            want = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise _refuse(source, f"{prefix}{key} is a {type(value).__name__}, not {want}")
        if isinstance(value, str) and ("\0" in value or len(value) > 4096):
            raise _refuse(source, f"{prefix}{key} holds a NUL or more than 4096 characters")


def _check_fields(data: dict[str, Any], source: Any) -> None:
    """Every field has its JSON type (no silent conversions), sizes are in range, and the
    whole document is an Image the model takes (unknown keys, formats ...)."""
    from virtplane import model
    from virtplane.errors import InvalidInput

    _check_types(data, _IMAGE_TYPES, "", source)
    for n, vol in enumerate(data["volumes"]):
        _check_types(vol, _VOLUME_TYPES, f"volumes[{n}].", source)
        size = vol.get("size_bytes", 0)
        if not 0 <= size <= MAX_SIZE:
            raise _refuse(source, f"volumes[{n}].size_bytes {str(size)[:24]} is not a size "
                                  "from 0 to 1 EiB")
    try:
        model.structure(data, model.Image)
    except InvalidInput as exc:
        text = " ".join(str(exc).split())
        raise _refuse(source, text if len(text) <= 300 else text[:297] + "...") from None


def _check_chain(data: dict[str, Any], source: Any) -> None:
    """The volumes are one chain, leaf last, as virtplane writes it: no id twice, the
    first with no parent or a parent in another image (``base_image_id``, a template's
    volume), each other one on the volume before it, in this image. Anything else (a cycle, a fork, a layer on another image's volume,
    a volume listed twice) would let a merge or a repair touch a file another chain
    uses."""
    volumes = data["volumes"]
    ids = [v["id"] for v in volumes]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise _refuse(source, f"volume {twice[0]} is listed twice")
    for n, vol in enumerate(volumes):
        parent, base = vol.get("parent_id"), vol.get("base_image_id")
        if n == 0:
            if base is not None and (parent is None or base == data["id"]):
                raise _refuse(source, "volumes[0].base_image_id must name another image, "
                                      "with parent_id a volume of it")
            if base is None and parent is not None:
                raise _refuse(source, f"volumes[0].parent_id {parent} is no volume below it "
                                      "(the first volume has no parent in its own image)")
            continue
        if base is not None:
            raise _refuse(source, f"volumes[{n}].base_image_id is set; only the first "
                                  "volume may sit on another image")
        if parent != ids[n - 1]:
            raise _refuse(source, f"volumes[{n}].parent_id {parent} is not the volume "
                                  f"before it ({ids[n - 1]}): the chain is not one line")


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
