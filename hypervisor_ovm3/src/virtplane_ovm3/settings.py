"""``[plugin.ovm3]`` settings of the ovm3 driver."""

from __future__ import annotations

import attrs


@attrs.define
class Ovm3Settings:
    """``[plugin.ovm3]`` settings.

    :ivar password_env: environment variable holding the agent password.
    :ivar password_file: file holding the agent password (first line); wins over the
        environment. The password is never logged or shown in an error.
    :ivar verify_tls: check HTTPS agents' certificates (the opt-out is for
        self-signed agents, explicitly).
    :ivar ca_file: CA bundle or certificate to trust for HTTPS agents.
    :ivar timeout_seconds: connect and reply timeout of each agent call.
    :ivar manager_uuid: the owner id virtplane takes servers over with.
    :ivar bridges: virtplane network name -> Xen bridge (default: the same name).
    :ivar shutdown_poll_seconds: how often a graceful stop checks the guest.
    """

    password_env: str = "VIRTPLANE_OVM3_PASSWORD"
    password_file: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None
    timeout_seconds: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    manager_uuid: str = "0004fb0000010000d1a749d4295041fb"
    bridges: dict[str, str] = attrs.field(factory=dict)
    shutdown_poll_seconds: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))
