"""``[plugin.kvm]`` settings of the kvm driver."""

from __future__ import annotations

import attrs


@attrs.define
class KvmSettings:
    """``[plugin.kvm]`` settings.

    :ivar shutdown_poll_seconds: how often a graceful shutdown checks the guest.
    :ivar keepalive_interval: seconds between libvirt keepalive probes (0: off).
    :ivar connect_timeout: seconds to wait for a host to answer when its connection is
        opened (or reopened) before it is reported unreachable.
    :ivar test_driver_files: whether a host URI may name a config file of libvirt's test
        driver (``test:///ABSOLUTE/PATH.xml``); ``test:///default`` is always allowed.
    """

    shutdown_poll_seconds: float = attrs.field(default=0.2, validator=attrs.validators.gt(0))
    keepalive_interval: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    connect_timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    test_driver_files: bool = attrs.field(default=False)
