"""What a file domain's connection holds, declared here and parsed by the core.

``storage add NAME --type localfs --path /srv/vp`` or ``-o KEY=VALUE`` pairs go
through :func:`virtplane.options.parse`: each value is typed by its field, and a
key that is not declared (``-o password=...``, a typo) is refused with the
allowed ones named, instead of being stored and printed by ``storage show``.
"""

from __future__ import annotations

import attrs

_help = "help"


@attrs.define(kw_only=True)
class _Timeouts:
    lock_timeout_seconds: float | None = attrs.field(
        default=None, metadata={_help: "how long to wait for the domain metadata lock "
                                       "(default 30)"})
    probe_timeout_seconds: float | None = attrs.field(
        default=None, metadata={_help: "how long the health probe may take (default 10)"})


@attrs.define(kw_only=True)
class LocalFsConnection(_Timeouts):
    """A folder on this host."""

    path: str = attrs.field(metadata={_help: "the folder (made absolute when the domain "
                                             "is added)"})


@attrs.define(kw_only=True)
class PosixFsConnection(_Timeouts):
    """Something ``mount`` mounts (posixfs; nfs with soft-mount defaults)."""

    spec: str = attrs.field(metadata={_help: "what to mount, e.g. server:/export or "
                                             "/dev/sdb1"})
    vfs_type: str | None = attrs.field(
        default=None, metadata={_help: "the file system type (posixfs: required; nfs: nfs)"})
    options: str | None = attrs.field(
        default=None, metadata={_help: "mount options (nfs default: soft,timeo=100,"
                                       "retrans=3,nosharecache)"})
    mount_timeout_seconds: float | None = attrs.field(
        default=None, metadata={_help: "how long a mount may take"})
