"""Oracle VM 3 (Xen) hypervisor driver for virtplane (driver ``ovm3``).

Hosts are agent URLs: ``https://oracle@ovs1:8899`` (or ``http://``); the
password comes from ``[plugin.ovm3] password_file`` or the environment
variable named by ``password_env`` (default ``VIRTPLANE_OVM3_PASSWORD``).
Layers: :mod:`virtplane_ovm3.client` mirrors the agent's XML-RPC API object by
object; :mod:`virtplane_ovm3.driver` is the virtplane hypervisor driver on top,
built from :mod:`virtplane_ovm3.host` (the server: discovery, stats, setup) and
:mod:`virtplane_ovm3.lifecycle` (the guests: start, stop, state, stats);
:mod:`virtplane_ovm3.vmcfg` turns virtplane's domain into ``vm.cfg``
parameters. Only Oracle VM 3.2.x and 3.3.x servers are accepted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from virtplane_ovm3.driver import Ovm3Connection
    from virtplane_ovm3.settings import Ovm3Settings

__all__ = ["Ovm3"]


class Ovm3:
    """Driver entry point: ``Ovm3(settings).connect(url)``."""

    VIRTPLANE_PLUGIN_API = ">=2.0,<3"
    VIRTPLANE_SETTINGS = "virtplane_ovm3.settings:Ovm3Settings"
    #: what ``host setup`` takes (``-o KEY=VALUE``), parsed by the core
    VIRTPLANE_SETUP_OPTIONS = "virtplane_ovm3.setup_options:SetupOptions"
    name = "ovm3"

    def __init__(self, settings: Ovm3Settings | None = None) -> None:
        if settings is None:
            from virtplane_ovm3.settings import Ovm3Settings

            settings = Ovm3Settings()
        self.settings = settings

    def connect(self, uri: str) -> Ovm3Connection:
        from virtplane_ovm3.driver import Ovm3Connection

        return Ovm3Connection(uri, self.settings)
