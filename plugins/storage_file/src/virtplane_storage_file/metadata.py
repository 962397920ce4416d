"""Metadata files on the storage: ``{"data", "sha256"}`` JSON written atomically
(temporary file, fsync, rename) and read back with its checksum checked."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from virtplane.errors import NoSpace
from virtplane_storage_file.confinement import _fresh
from virtplane_storage_file.errors import StorageError

METADATA_VERSION = 1

#: the domain metadata versions this virtplane reads (a newer virtplane may write a
#: layout this one would misread, so a higher version is refused, not guessed at)
SUPPORTED_METADATA_VERSIONS = (1,)


def check_version(md: dict[str, Any], source: Path) -> int:
    """The domain metadata's ``version``: an int this virtplane supports, or a
    StorageError naming the version found and the versions supported."""
    supported = ", ".join(str(v) for v in SUPPORTED_METADATA_VERSIONS)
    if "version" not in md:
        raise StorageError(f"{source}: version is missing (supported: {supported}); "
                           "refusing this metadata")
    value = md["version"]
    if type(value) is not int:
        shown = repr(value) if isinstance(value, str | int | float) else type(value).__name__
        raise StorageError(f"{source}: version {_shown_value(shown)} is not an integer "
                           f"(supported: {supported}); refusing this metadata")
    if value not in SUPPORTED_METADATA_VERSIONS:
        newer = " (written by a newer virtplane?)" if value > max(
            SUPPORTED_METADATA_VERSIONS) else ""
        raise StorageError(f"{source}: metadata version {value}{newer} is not supported; "
                           f"this virtplane reads version {supported}; refusing this "
                           "metadata")
    return value


def _shown_value(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


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


#: the largest metadata file read (an image with thousands of volumes is far smaller);
#: a bigger one is refused before it is read into memory
MAX_METADATA_BYTES = 4 << 20


def _shown(exc: BaseException) -> str:
    """An exception's text on one line, at most 200 characters (it may quote the file)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def read_json(path: Path) -> Any:
    """Read a metadata file; StorageError if it is unreadable or its checksum is wrong.

    The file is opened ``O_NOFOLLOW``: metadata virtplane wrote is never a symlink, and
    following one would read whatever file it names, as root. It must be a regular file
    (a FIFO would block the reader, a device never end) of at most
    :data:`MAX_METADATA_BYTES`, valid UTF-8 JSON not nested deeper than Python parses.
    """
    import hashlib
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise StorageError(f"{path}: unreadable metadata (not a regular file; "
                                   "virtplane only writes regular files there)")
            if st.st_size > MAX_METADATA_BYTES:
                raise StorageError(f"{path}: unreadable metadata ({st.st_size} bytes, more "
                                   f"than the {MAX_METADATA_BYTES} a metadata file may have)")
            raw = f.read(MAX_METADATA_BYTES + 1)
        if len(raw) > MAX_METADATA_BYTES:
            raise StorageError(f"{path}: unreadable metadata (more than "
                               f"{MAX_METADATA_BYTES} bytes)")
        doc = json.loads(raw.decode("utf-8"))
        data = doc["data"]
        want = doc["sha256"]
        text = json.dumps(data, sort_keys=True)
    except OSError as exc:
        why = ("it is a symbolic link" if exc.errno == errno.ELOOP
               else exc.strerror or str(exc))
        raise StorageError(f"{path}: unreadable metadata ({why})") from None
    except RecursionError:
        raise StorageError(f"{path}: unreadable metadata (JSON nested too deeply)") from None
    except (ValueError, KeyError, TypeError) as exc:
        # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise StorageError(f"{path}: unreadable metadata ({_shown(exc)})") from None
    got = hashlib.sha256(text.encode()).hexdigest()
    if got != want:
        raise StorageError(f"{path}: metadata checksum mismatch (stored {str(want)[:12]}..., "
                           f"content {got[:12]}...)")
    return data
