"""What a ``libsm`` domain's connection holds, declared here and parsed by the core.

Unknown keys are refused (``-o password=...`` among them: the array password
comes from ``password_file`` or ``VIRTPLANE_LSM_PASSWORD``, never from the
connection, which is stored and shown by ``storage show``).
"""

from __future__ import annotations

import attrs

_help = "help"


@attrs.define(kw_only=True)
class LibsmConnection:
    """An array pool, and how this host reaches it."""

    uri: str = attrs.field(metadata={_help: "the lsm URI: sim://, smispy+ssl://user@host, "
                                            "targetd://user@host (never with a password)"})
    pool: str = attrs.field(metadata={_help: "the array pool's id or name"})
    initiator: str = attrs.field(metadata={_help: "this host's iSCSI IQN or FC WWPN"})
    system: str | None = attrs.field(
        default=None, metadata={_help: "the array system's id (default: the only one)"})
    password_file: str | None = attrs.field(
        default=None, metadata={_help: "a file holding the array password (first line); "
                                       "else VIRTPLANE_LSM_PASSWORD"})
    offload: bool | None = attrs.field(
        default=None, metadata={_help: "use the array's clone/copy for snapshots and "
                                       "clones ([plugin.libsm] offload)"})
    device_pattern: str | None = attrs.field(
        default=None, metadata={_help: "where a LUN appears on this host, from {vpd83} "
                                       "and {id}"})
    timeout_seconds: float | None = attrs.field(
        default=None, metadata={_help: "the lsm client's call timeout"})
    job_timeout_seconds: float | None = attrs.field(
        default=None, metadata={_help: "how long an array job may run"})
    lock_timeout_seconds: float | None = attrs.field(
        default=None, metadata={_help: "how long to wait for the metadata LUN's lock"})
