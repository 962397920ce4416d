"""The metadata lock of a file domain: ``dom_md/metadata.lock`` (``flock``), held for
a bounded time around a read-modify-write of the domain's metadata."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from virtplane_storage_file.confinement import confined
from virtplane_storage_file.errors import StorageError
from virtplane_storage_file.layout import FileDomainCore

if TYPE_CHECKING:
    from virtplane.model import StorageDomain

#: how long a metadata write waits for another holder of the domain's lock (seconds;
#: ``connection.lock_timeout_seconds`` overrides it per domain)
LOCK_TIMEOUT = 30.0
#: the lock file, in ``dom_md/``
LOCK_NAME = "metadata.lock"


class LockingMixin(FileDomainCore):
    """:meth:`metadata_lock`, re-entrant within a thread."""

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
