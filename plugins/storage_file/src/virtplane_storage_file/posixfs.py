"""``posixfs`` and ``nfs``: a domain on a file system the host mounts.

``connection = {"spec": "server:/export" | "/dev/sdb1" | ..., "vfs_type": "xfs",
"options": "..."}``. The mount point is ``mnt/<domain uuid>`` in virtplane's
runtime folder (:func:`virtplane.paths.runtime_dir`: ``/run/virtplane`` for
root, never a predictable folder under /tmp), made without following links. A
mount that fails or does not answer within ``mount_timeout_seconds`` is an
error naming the command's message; the Manager marks the domain Inactive with
that reason. NFS is posixfs with ``vfs_type = "nfs"`` and soft-mount defaults
(``soft,timeo=100,retrans=3``), so an export that disappears makes I/O fail
with an error instead of hanging (VDSM mounts NFS soft for the same reason).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from virtplane_storage_file.filedomain import FileDomain, StorageError, require, require_uuid

if TYPE_CHECKING:
    from virtplane.model import StorageDomain

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
            raise StorageError(f"posixfs domain {domain.name!r} needs connection.vfs_type "
                               "(e.g. xfs, ext4, tmpfs)")
        options = domain.connection.get("options") or self.default_options
        cmd = ["mount", "-t", str(vfs)]
        if options:
            cmd += ["-o", str(options)]
        return [*cmd, spec, str(target)]

    def connect(self, domain: StorageDomain) -> None:
        import subprocess

        from virtplane.paths import private_subdir

        target = self.mount_point(domain)
        if is_mounted(target):
            return  # the mounted file system's root has its own owner and mode
        target = private_subdir("mnt", target.name, mode=MOUNT_DIR_MODE)
        cmd = self.mount_command(domain, target)
        timeout = float(domain.connection.get("mount_timeout_seconds") or MOUNT_TIMEOUT)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StorageError(f"mounting {cmd[-2]} did not finish within {timeout:g} s "
                               f"({' '.join(cmd)})") from None
        if proc.returncode != 0:
            reason = " ".join((proc.stderr or proc.stdout).split())
            raise StorageError(f"cannot mount {cmd[-2]} on {target}: {reason} "
                               f"({' '.join(cmd)})")

    def health(self, domain: StorageDomain) -> str | None:
        target = self.mount_point(domain)
        if not is_mounted(target):
            spec = domain.connection.get("spec", "?")
            return (f"{spec} is no longer mounted on {target} (the export disappeared or "
                    "was unmounted)")
        return super().health(domain)

    def disconnect(self, domain: StorageDomain) -> None:
        import subprocess

        target = self.mount_point(domain)
        if is_mounted(target):
            proc = subprocess.run(["umount", str(target)], capture_output=True, text=True,
                                  timeout=MOUNT_TIMEOUT)
            if proc.returncode != 0:
                raise StorageError(f"cannot unmount {target}: {proc.stderr.strip()}")


class Nfs(PosixFs):
    """The ``nfs`` storage driver: posixfs with NFS soft-mount defaults."""

    name = "nfs"
    default_vfs = "nfs"
    default_options = "soft,timeo=100,retrans=3,nosharecache"
