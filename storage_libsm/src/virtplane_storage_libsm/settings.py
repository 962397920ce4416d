"""``[plugin.libsm]`` settings."""

from __future__ import annotations

import attrs


@attrs.define
class LibsmSettings:
    """``[plugin.libsm]`` settings (a domain's ``connection`` may override the last four).

    :ivar lsm_module: the Python module giving ``lsm.Client`` (the real binding).
    :ivar offload: use the array's clone/copy for snapshots and clones when it can.
    :ivar device_pattern: where a LUN appears on this host, from its VPD 0x83 id.
    :ivar timeout_seconds: the lsm client's call timeout.
    :ivar job_timeout_seconds: how long an array job may run before it is abandoned.
    :ivar password_env: environment variable with the array password.
    """

    lsm_module: str = "lsm"
    offload: bool = True
    device_pattern: str = "/dev/disk/by-id/wwn-0x{vpd83}"
    timeout_seconds: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    job_timeout_seconds: float = attrs.field(default=600.0, validator=attrs.validators.gt(0))
    job_poll_seconds: float = attrs.field(default=0.2, validator=attrs.validators.gt(0))
    password_env: str = "VIRTPLANE_LSM_PASSWORD"
