"""``[plugin.kvm]`` settings of the kvm driver."""

from __future__ import annotations

import attrs


@attrs.define
class KvmSettings:
    """``[plugin.kvm]`` settings.

    :ivar shutdown_poll_seconds: how often a graceful shutdown checks the guest.
    :ivar keepalive_interval: libvirt keepalive interval (seconds; remote URIs).
    """

    shutdown_poll_seconds: float = attrs.field(default=0.2, validator=attrs.validators.gt(0))
    keepalive_interval: int = attrs.field(default=5, validator=attrs.validators.ge(0))
