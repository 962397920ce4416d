"""``posixfs`` and ``nfs``: a domain on a file system the host mounts.

``connection = {"spec": "server:/export" | "/dev/sdb1" | ..., "vfs_type": "xfs",
"options": "..."}``. The mount point is ``mnt/<domain uuid>`` in virtplane's
runtime folder (:func:`virtplane.paths.runtime_dir`: ``/run/virtplane`` for
root, never a predictable folder under /tmp), made without following links. A
mount that fails or does not answer within ``mount_timeout_seconds`` is an
error naming the command's message (:func:`mount_failure` says whose problem it
is: a type, option, device or folder the caller gave is their input, a remote
export that does not let the host in is unreachable storage), and the mount
point made for it is removed; the Manager marks the domain Inactive with that
reason. NFS is posixfs with ``vfs_type = "nfs"`` and soft-mount defaults
(``soft,timeo=100,retrans=3``), so an export that disappears makes I/O fail
with an error instead of hanging (VDSM mounts NFS soft for the same reason).

Disconnecting unmounts and removes the mount point when it is empty (also when the
mount vanished first; never a folder with something in it). An unmount that fails
is classified as a mount is (:func:`unmount_failure`): a busy mount is
:class:`StorageNotReady`, a server that stopped answering (or an unmount that does
not finish) :class:`StorageUnreachable`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from virtplane_storage_file.filedomain import (
    FileDomain,
    StorageError,
    StorageInputError,
    StorageNotReady,
    StorageUnreachable,
    require,
    require_uuid,
)

if TYPE_CHECKING:
    from virtplane.model import StorageDomain

log = logging.getLogger(__name__)

MOUNT_TIMEOUT = 30.0


#: mount points must be traversable by QEMU (its own user opens disk files on them),
#: never writable by anyone but virtplane's user
MOUNT_DIR_MODE = 0o711


def _run_dir() -> Path:
    from virtplane.paths import private_subdir

    return private_subdir("mnt", mode=MOUNT_DIR_MODE)


def is_mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return any(line.split()[1] == target for line in f if len(line.split()) > 1)


def _remove_mount_point(target: Path) -> None:
    """Remove the mount point ``target`` if it is an empty folder (``rmdir``: never what
    is in it); one that is gone already, or holds something, is left as it is."""
    import errno

    try:
        target.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:  # the mount's (or the unmount's) outcome is what matters
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            log.warning("the mount point %s is not empty; left as it is", target)
        else:
            log.warning("could not remove the mount point %s: %s", target,
                        exc.strerror or exc)


def is_remote(spec: str) -> bool:
    """Whether ``spec`` names storage on another machine (``server:/export``,
    ``//server/share``) rather than a device or folder of this host."""
    return spec.startswith("//") or (not spec.startswith("/") and ":" in spec)


def mount_failure(domain: StorageDomain, cmd: list[str], reason: str) -> StorageError:
    """The error for a mount that failed with ``reason`` (mount's message, in English).

    A file system type the host does not know, a bad option, or a device or folder of
    this host that does not exist or does not mount is the caller's input
    (:class:`StorageInputError`); any other failure to mount a remote export means the
    server did not let this host in now (down, refusing, not exporting to it:
    :class:`StorageUnreachable`).
    """
    spec, target = cmd[-2], cmd[-1]
    what = (f"storage domain {domain.name!r}: cannot mount {spec} on {target}: {reason} "
            f"({' '.join(cmd)})")
    vfs = cmd[cmd.index("-t") + 1] if "-t" in cmd else "?"
    if "unknown filesystem type" in reason:
        return StorageInputError(f"{what}; this host cannot mount file systems of type "
                                 f"{vfs!r}: give a type it knows (see /proc/filesystems) or "
                                 "install its client")
    if "bad option" in reason:
        return StorageInputError(f"{what}; check the mount options and the file system type "
                                 f"{vfs!r} (its mount helper may be missing)")
    if not is_remote(spec):
        return StorageInputError(f"{what}; give a device or folder of this host that holds "
                                 f"a file system of type {vfs!r}")
    return StorageUnreachable(f"{what}; check that the server is up, answers from this host "
                              "and exports this path to it, then try again")


#: what umount says (LC_ALL=C) when something still uses the file system
_BUSY = ("busy",)
#: what it says when the storage under the mount stopped answering
_UNREACHABLE = ("stale file handle", "transport endpoint is not connected", "timed out",
                "host is down", "no route to host", "connection refused",
                "input/output error", "network is unreachable", "server not responding")
#: what it says when nothing is mounted there any more (someone unmounted it first)
_NOT_MOUNTED = ("not mounted", "no mount point specified")


def unmount_failure(domain: StorageDomain, target: Path, reason: str) -> StorageError:
    """The error for an unmount of ``target`` that failed with ``reason`` (umount's
    message, in English).

    A mount still in use (a process with a file open or its working folder there) is
    :class:`StorageNotReady`: the storage answers, something on this host holds it; a
    mount whose server stopped answering is :class:`StorageUnreachable`. Any other
    failure stays a plain :class:`StorageError` naming the message.
    """
    what = f"storage domain {domain.name!r}: cannot unmount {target}: {reason}"
    low = reason.lower()
    if any(word in low for word in _BUSY):
        return StorageNotReady(f"{what}; something on this host still uses it (fuser -vm "
                               f"{target} shows what): stop it, then try again")
    if any(word in low for word in _UNREACHABLE):
        return StorageUnreachable(f"{what}; the storage does not answer: check that the "
                                  "server is up and answers this host, then try again")
    return StorageError(what)


class PosixFs(FileDomain):
    """The ``posixfs`` storage driver."""

    name = "posixfs"
    #: the connection fields (nfs too), parsed and checked by the core (unknown keys refused)
    VIRTPLANE_CONNECTION = "virtplane_storage_file.connection:PosixFsConnection"
    default_vfs: str | None = None
    default_options = ""

    def mount_point(self, domain: StorageDomain) -> Path:
        return _run_dir() / require_uuid(domain.id, "id", f"storage domain {domain.name!r}")

    def mount_command(self, domain: StorageDomain, target: Path) -> list[str]:
        spec = require(domain, "spec", "what to mount, e.g. server:/export or /dev/sdb1")
        vfs = domain.connection.get("vfs_type") or self.default_vfs
        if not vfs:
            raise StorageInputError(f"posixfs domain {domain.name!r} needs "
                                    "connection.vfs_type (e.g. xfs, ext4, tmpfs)")
        options = domain.connection.get("options") or self.default_options
        cmd = ["mount", "-t", str(vfs)]
        if options:
            cmd += ["-o", str(options)]
        return [*cmd, spec, str(target)]

    def connect(self, domain: StorageDomain) -> None:
        import os
        import subprocess

        from virtplane.paths import private_subdir

        target = self.mount_point(domain)
        if is_mounted(target):
            return  # the mounted file system's root has its own owner and mode
        made = not os.path.lexists(target)
        target = private_subdir("mnt", target.name, mode=MOUNT_DIR_MODE)
        try:
            cmd = self.mount_command(domain, target)
            timeout = float(domain.connection.get("mount_timeout_seconds") or MOUNT_TIMEOUT)
            try:
                # messages in English: mount_failure() reads them
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                      env={**os.environ, "LC_ALL": "C"})
            except subprocess.TimeoutExpired:
                raise StorageUnreachable(
                    f"storage domain {domain.name!r}: mounting {cmd[-2]} did not finish "
                    f"within {timeout:g} s ({' '.join(cmd)}); check that the storage "
                    "answers from this host, then try again") from None
            if proc.returncode != 0:
                raise mount_failure(domain, cmd, " ".join((proc.stderr or proc.stdout).split()))
        except BaseException:
            if made and not is_mounted(target):
                _remove_mount_point(target)
            raise

    def health(self, domain: StorageDomain) -> str | None:
        target = self.mount_point(domain)
        if not is_mounted(target):
            spec = domain.connection.get("spec", "?")
            return (f"{spec} is no longer mounted on {target} (the export disappeared or "
                    "was unmounted)")
        return super().health(domain)

    def disconnect(self, domain: StorageDomain) -> None:
        """Unmount the domain and remove its mount point (made by connect; made again by
        the next one). A mount point whose mount vanished is removed too, when empty.

        :raises StorageError: the unmount failed (:func:`unmount_failure`); the mount
            and its mount point stay as they were.
        """
        import os
        import subprocess

        target = self.mount_point(domain)
        if is_mounted(target):
            cmd = ["umount", str(target)]
            try:
                # messages in English: unmount_failure() reads them
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      timeout=MOUNT_TIMEOUT, env={**os.environ, "LC_ALL": "C"})
            except subprocess.TimeoutExpired:
                raise StorageUnreachable(
                    f"storage domain {domain.name!r}: unmounting {target} did not finish "
                    f"within {MOUNT_TIMEOUT:g} s; the storage does not answer: check that "
                    "the server is up and answers this host, then try again") from None
            reason = " ".join((proc.stderr or proc.stdout).split())
            if proc.returncode != 0 and not (
                    any(word in reason.lower() for word in _NOT_MOUNTED)
                    and not is_mounted(target)):
                raise unmount_failure(domain, target, reason)
        _remove_mount_point(target)


class Nfs(PosixFs):
    """The ``nfs`` storage driver: posixfs with NFS soft-mount defaults."""

    name = "nfs"
    default_vfs = "nfs"
    default_options = "soft,timeo=100,retrans=3,nosharecache"
