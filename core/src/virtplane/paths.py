"""Where virtplane keeps its files: its data folder (:func:`data_dir`, the default
state store's) and its runtime files (mount points, hook launch flags).

Runtime files used to go to ``$XDG_RUNTIME_DIR/virtplane`` or, with that unset
(root under a service manager, cron, ``sudo``), to ``/tmp/virtplane``: a
predictable name in a world-writable folder. A local user who made
``/tmp/virtplane`` first, or a symlink in it, decided where root wrote. Here:

* :func:`runtime_dir` is ``/run/virtplane`` for root (a folder only root can
  write), ``$XDG_RUNTIME_DIR/virtplane`` for other users, or ``run/`` in
  virtplane's data folder (beside the default state file) when that is unset.
  It is created ``0711`` (others may only traverse it); an existing one must
  be a real folder (not a symlink) owned by the user running virtplane that
  nobody else can write, or it is refused with what to fix.
* :func:`private_subdir` makes folders under it one component at a time,
  never following a symlink, and refuses one it finds that is not the user's
  own or that others can write.

Folders are created ``0700``, except where the caller passes a wider ``mode``:
mount points must be traversable (``0711``) by QEMU, which runs as its own
user and opens disk files under them. No folder is ever group- or
world-writable.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from virtplane.errors import VirtplaneError

__all__ = [
    "ROOT_RUNTIME_DIR", "RUNTIME_DIR_MODE", "RuntimeDirError", "data_dir", "private_subdir",
    "runtime_dir",
]

#: root's runtime folder (``/run`` is root-only writable, and a tmpfs cleared at boot)
ROOT_RUNTIME_DIR = Path("/run/virtplane")
#: others may traverse the runtime folder to a name they know, not list or write it
RUNTIME_DIR_MODE = 0o711


class RuntimeDirError(VirtplaneError):
    """A runtime folder is unsafe to use (a symlink, someone else's, writable by others)."""


def data_dir() -> Path:
    """``$XDG_DATA_HOME/virtplane`` (where the default state store lives)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "virtplane"


def _is_root() -> bool:
    return os.geteuid() == 0


def _base() -> Path:
    """The runtime folder for the user running virtplane (not yet checked)."""
    if _is_root():
        return ROOT_RUNTIME_DIR
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "virtplane"
    return data_dir() / "run"


def _check(path: Path, st: os.stat_result, uid: int) -> None:
    """Refuse a folder that someone other than ``uid`` controls."""
    if stat.S_ISLNK(st.st_mode):
        raise RuntimeDirError(f"{path} is a symbolic link; virtplane refuses to keep runtime "
                              "files where a link points (remove it)")
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeDirError(f"{path} is not a folder; remove it so virtplane can make its "
                              "runtime folder there")
    if st.st_uid != uid:
        raise RuntimeDirError(f"{path} is owned by uid {st.st_uid}, not {uid} (the user "
                              f"running virtplane); remove it or chown {uid} {path}")
    if st.st_mode & 0o022:
        raise RuntimeDirError(f"{path} is writable by group or others (mode "
                              f"{stat.S_IMODE(st.st_mode):04o}); chmod 0700 {path}")


def _check_parent(parent: Path) -> None:
    """The folder holding the runtime folder must not let others swap it out: others may
    write there only when the sticky bit stops them renaming what is not theirs (/tmp)."""
    try:
        st = os.stat(parent)
    except OSError as exc:
        raise RuntimeDirError(f"cannot use {parent} for runtime files: "
                              f"{exc.strerror or exc}") from None
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise RuntimeDirError(f"{parent} is writable by others without the sticky bit; "
                              "another user could replace virtplane's runtime folder in it")


def runtime_dir() -> Path:
    """virtplane's runtime folder for this user, created ``0711`` if missing.

    Others may traverse it (QEMU, running as its own user, opens disk files on the
    mounts under ``mnt/``) but neither list nor write it; what is private lives in
    ``0700`` folders made by :func:`private_subdir`.

    :raises RuntimeDirError: when it exists but is a symlink, not a folder, owned by
        another user, or writable by group or others (the message says what to fix).
    """
    path = _base()
    uid = os.geteuid()
    if not path.parent.exists():
        # a fresh user's data folder: its parents are the user's own
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_parent(path.parent)
    created = False
    try:
        os.mkdir(path, RUNTIME_DIR_MODE)
        created = True
    except FileExistsError:
        pass  # checked below, whoever made it
    except OSError as exc:
        raise RuntimeDirError(f"cannot create runtime folder {path}: "
                              f"{exc.strerror or exc}") from None
    st = os.lstat(path)
    _check(path, st, uid)
    if created and stat.S_IMODE(st.st_mode) != RUNTIME_DIR_MODE:
        os.chmod(path, RUNTIME_DIR_MODE)  # the umask took bits; it is ours and no link
    return path


def private_subdir(*parts: str, mode: int = 0o700) -> Path:
    """``runtime_dir()/parts...``, each folder created with ``mode`` if missing.

    The walk opens each component relative to the previous one with ``O_NOFOLLOW``, so
    a symlink planted anywhere on the way is refused, never followed; a folder that is
    already there must belong to the user running virtplane and be writable by nobody
    else. ``mode`` may widen read/traverse bits (mount points need ``0711``) but never
    write bits.

    :raises RuntimeDirError: naming the folder and what is wrong with it.
    :raises ValueError: for a part that is not a single plain name (a programming error).
    """
    if mode & 0o022:
        raise ValueError(f"runtime folders are never group- or world-writable (mode {mode:o})")
    for part in parts:
        if not part or part in (".", "..") or "/" in part or "\0" in part:
            raise ValueError(f"{part!r} is not a single folder name")
    base = runtime_dir()
    uid = os.geteuid()
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(base, flags)
    path = base
    try:
        for part in parts:
            path = path / part
            created = False
            try:
                os.mkdir(part, mode, dir_fd=fd)
                created = True
            except FileExistsError:
                pass  # checked below, whoever made it
            except OSError as exc:
                raise RuntimeDirError(f"cannot create {path}: {exc.strerror or exc}") from None
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                _check(path, st, uid)
                child = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                raise RuntimeDirError(f"cannot open {path}: {exc.strerror or exc}") from None
            os.close(fd)
            fd = child
            # the folder opened is the one checked (not swapped in between)
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
                raise RuntimeDirError(f"{path} changed while virtplane opened it; refusing it")
            if created:
                os.fchmod(fd, mode)  # the umask may have taken bits the caller asked for
    finally:
        os.close(fd)
    return path
