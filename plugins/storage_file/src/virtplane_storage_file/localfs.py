"""``localfs``: a domain in a local folder (``connection = {"path": ...}``).

The folder is made (with its missing parents) when the domain is added; a path
that is a file, a device, or under one, or a folder virtplane cannot write, is
refused with a :class:`~virtplane_storage_file.errors.StorageInputError` naming
the path, and nothing it made on the way is left behind.

The folders :meth:`LocalFs.connect` makes for a domain are remembered (by domain id,
in this process) until the domain is created in them: an operation that then fails
(an attach that finds no domain there, an add whose domain cannot be written)
disconnects, and :meth:`LocalFs.disconnect` removes them again when they are still
empty. A folder that was there before is never removed, nor one a created domain
lives in.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtplane_storage_file.errors import from_os_error
from virtplane_storage_file.filedomain import FileDomain, StorageInputError, require

if TYPE_CHECKING:
    from virtplane.model import StorageDomain

log = logging.getLogger(__name__)

#: what the caller can do about a localfs path that cannot be used
FIX = "give the absolute path of a folder, or of one virtplane can make"


def _kind(path: Path) -> str:
    """What ``path`` is, when it is not a folder (for the refusal's message)."""
    try:
        st = path.stat()
    except OSError:
        return "a link to nothing"  # lexists is true, stat fails: a dangling link
    if stat.S_ISREG(st.st_mode):
        return "a file"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return "a device"
    return "not a folder"


def _remove(made: list[Path]) -> None:
    """Remove the folders :func:`make_folder` made (innermost first), each only while it
    is empty (``rmdir``): a refused domain leaves nothing behind, and nothing someone
    put there since is touched."""
    for path in reversed(made):
        try:
            path.rmdir()
        except FileNotFoundError:
            continue  # removed already
        except OSError as exc:  # the refusal that got us here matters more: say so only
            log.warning("could not remove the folder %s made for a refused domain: %s",
                        path, exc.strerror or exc)
            return  # its parents are not empty either


def make_folder(base: Path, domain: str) -> list[Path]:
    """Make the folder ``base`` and its missing parents; the folders made, outermost
    first (``[]`` when it was there).

    :raises StorageInputError: when ``base`` or a folder on its way is a file (or
        a device ...), or when it cannot be made (no permission, read-only ...).
    """
    where = f"the localfs path {base} of storage domain {domain!r}"
    if "\0" in str(base):
        raise StorageInputError(f"{where} contains a NUL character; {FIX}")
    missing: list[Path] = []
    path = base
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    if not path.is_dir():  # a link to a folder is a folder
        if path == base:
            raise StorageInputError(f"{where} is {_kind(path)}, not a folder; {FIX}")
        raise StorageInputError(f"{where} cannot be a folder: {path} on its way is "
                                f"{_kind(path)}; {FIX}")
    made: list[Path] = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except OSError as exc:
            _remove(made)
            raise from_os_error(exc, f"cannot make the folder {folder} for {where}",
                                FIX) from None
        made.append(folder)
    return made


class LocalFs(FileDomain):
    """The ``localfs`` storage driver."""

    name = "localfs"
    #: the connection fields, parsed and checked by the core (unknown keys refused)
    VIRTPLANE_CONNECTION = "virtplane_storage_file.connection:LocalFsConnection"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        #: domain id -> the folders connect made for it (outermost first), until a
        #: domain is created in them or disconnect removes them
        self._made: dict[str, list[Path]] = {}
        self._made_lock = threading.Lock()

    def mount_point(self, domain: StorageDomain) -> Path:
        return Path(require(domain, "path", "a folder"))

    def connect(self, domain: StorageDomain) -> None:
        base = self.mount_point(domain)
        made = make_folder(base, domain.name)
        if not os.access(base, os.W_OK):
            _remove(made)
            raise StorageInputError(
                f"the localfs folder {base} of storage domain {domain.name!r} is not "
                f"writable by virtplane (user id {os.geteuid()}); give a folder it can "
                "write, or change this one's owner or mode")
        if made:
            with self._made_lock:
                self._made.setdefault(domain.id, []).extend(made)

    def create_domain(self, domain: StorageDomain) -> None:
        super().create_domain(domain)
        # the domain lives in them now: they are the administrator's, kept from here on
        with self._made_lock:
            self._made.pop(domain.id, None)

    def disconnect(self, domain: StorageDomain) -> None:
        """Undo :meth:`connect`: remove the folders it made for ``domain`` (in this
        process) that are still empty; a local folder has nothing else to release."""
        with self._made_lock:
            made = self._made.pop(domain.id, [])
        _remove(made)
