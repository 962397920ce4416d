"""What a ``glusterfs`` storage domain's connection holds (declared here, parsed by the
core: ``storage add NAME --type glusterfs -o server=gl1 -o volume=gv0 -o
backup_servers=gl2,gl3``)."""

from __future__ import annotations

import attrs

_help = "help"


@attrs.define(kw_only=True)
class GlusterConnection:
    """A Gluster volume and how the host reaches it."""

    server: str = attrs.field(metadata={_help: "the Gluster volfile server"})
    volume: str = attrs.field(metadata={_help: "the Gluster volume name"})
    backup_servers: list[str] = attrs.field(
        factory=list, metadata={_help: "other volfile servers (comma separated or repeated)"})
    transport: str | None = attrs.field(default=None, metadata={_help: "tcp (default), rdma or unix"})
    disk_access: str | None = attrs.field(
        default=None, metadata={_help: "gfapi (default: libgfapi network disks) or fuse"})
    create_via: str | None = attrs.field(
        default=None, metadata={_help: "fuse (default) or gfapi: how new volumes are written"})
    mount_timeout_seconds: float | None = attrs.field(
        default=None, metadata={_help: "how long a mount may take"})
    probe_timeout_seconds: float | None = attrs.field(
        default=None, metadata={_help: "how long the health probe may take"})
    lock_timeout_seconds: float | None = attrs.field(
        default=None, metadata={_help: "how long to wait for the domain metadata lock"})
