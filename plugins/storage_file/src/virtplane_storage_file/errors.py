"""The file domains' own errors (re-exported by :mod:`virtplane_storage_file.filedomain`).

Every storage failure is a :class:`StorageError` (callers catch that), and the ones
whose cause is known are also the core error that says what kind of failure it is,
so that the CLI and the REST API answer with the right code (docs/storage.md,
"Errors"):

* :class:`StorageInputError` (an ``InvalidInput``, REST 400): what the caller gave
  cannot hold a domain: a file where a folder must be, a folder virtplane cannot
  write, a file system type the host does not know, a Gluster volume that does not
  exist;
* :class:`StorageNotReady` (an ``InvalidState``, REST 409): the storage answers but
  is not in a state virtplane can use yet (a Gluster volume stopped or missing a
  setting QEMU needs; the host lacks a client);
* :class:`StorageUnreachable` (a ``StorageUnavailable``, REST 503): the storage does
  not answer now (a server down or refusing connections, a mount that fails or
  times out on a remote export, I/O errors of a lost connection).
"""

from __future__ import annotations

import errno

from virtplane.errors import InvalidInput, InvalidState, StorageUnavailable, VirtplaneError


class StorageError(VirtplaneError):
    """A storage operation failed (the message says which and why)."""


class StorageInputError(StorageError, InvalidInput):
    """What the caller gave cannot be (or hold) the domain's storage; the message names
    the domain, the path or setting, and what is allowed."""


class StorageNotReady(StorageError, InvalidState):
    """The storage answers but is not usable in its current state; the message names
    what to change (the command, where there is one)."""


class StorageUnreachable(StorageError, StorageUnavailable):
    """The storage does not answer now; the message names the domain, what was tried
    and what to check before trying again."""


#: errno values meaning "this path cannot be used as asked" (the caller can change it)
_INPUT_ERRNOS = frozenset({errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EACCES,
                           errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENAMETOOLONG,
                           errno.ELOOP, errno.EINVAL})
#: errno values of storage that stopped answering (a lost mount, a server gone)
_UNREACHABLE_ERRNOS = frozenset({errno.EIO, errno.ESTALE, errno.ENOTCONN, errno.EHOSTDOWN,
                                 errno.EHOSTUNREACH, errno.ETIMEDOUT, errno.ECONNREFUSED,
                                 errno.ENXIO, errno.ENODEV})


def from_os_error(exc: OSError, what: str, fix: str) -> StorageError:
    """The storage error for ``exc``, raised while doing ``what`` (e.g. "cannot make the
    localfs folder /x of storage domain 's'"); ``fix`` says what the caller can do about
    a path that cannot be used. Unknown causes stay a plain :class:`StorageError`."""
    why = exc.strerror or str(exc)
    if exc.errno in _INPUT_ERRNOS:
        return StorageInputError(f"{what}: {why}; {fix}")
    if exc.errno in _UNREACHABLE_ERRNOS:
        return StorageUnreachable(f"{what}: {why}; the storage does not answer: check it "
                                  "is reachable from this host, then try again")
    return StorageError(f"{what}: {why}")
