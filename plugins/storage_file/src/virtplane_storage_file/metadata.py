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
