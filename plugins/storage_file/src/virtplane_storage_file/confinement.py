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
