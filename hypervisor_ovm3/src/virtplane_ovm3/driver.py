"""The virtplane side of the ``ovm3`` driver: one :class:`Ovm3Connection` per server.

The connection is assembled here from its parts: the server (discovery, stats,
``host setup``) in :mod:`virtplane_ovm3.host`, the guests (start, stop, state,
stats) in :mod:`virtplane_ovm3.lifecycle`; this module adds the ``vm.cfg``
config, NIC hot-plug and migration.

What the agent API gives is what this driver offers; the rest is refused with
the reason, never faked: no pause/resume, hibernation, snapshots of running
VMs or disk hot-plug (CloudStack's OVM3 plugin has none of these either), and
live migration only between servers of one server pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import xmltodict

from virtplane.errors import HypervisorError, InvalidInput
from virtplane_ovm3 import vmcfg
from virtplane_ovm3.answers import quote
from virtplane_ovm3.host import REPO_ROOT, ROLES, SUPPORTED_VERSIONS, dedash, password
from virtplane_ovm3.lifecycle import Ovm3VmBase, log
from virtplane_ovm3.settings import Ovm3Settings

if TYPE_CHECKING:
    from virtplane.domxml import Domain

# what this module defined before the host and VM parts moved out, still importable here
__all__ = ["REPO_ROOT", "ROLES", "SUPPORTED_VERSIONS", "Ovm3Connection", "Ovm3Settings",
           "dedash", "log", "password"]


class Ovm3Connection(Ovm3VmBase):
    """A connection to one OVM3 server's agent."""

    #: hooks get ``vm.cfg`` (a :class:`virtplane.payloads.ConfigPayload`), not libvirt XML
    config_format = "vm.cfg"
    live_snapshots = False

    # ------------------------------------------------------------ config

    parse_config = staticmethod(vmcfg.parse)
    render_config = staticmethod(vmcfg.render)

    def native_config(self, xml: str) -> str:
        """``vm.cfg`` text for a domain virtplane built."""
        return vmcfg.render(vmcfg.from_domain(xml, self.settings.bridges))

    def adapt_domain(self, domain: Domain, arch: str, virt_type: str | None) -> None:
        """A Xen domain: ``hvm`` when ``virt_type`` says so, else paravirtualised
        (``linux``) as CloudStack creates them (plugin API 2.0)."""
        if arch != "x86_64":
            raise InvalidInput(f"OVM3 servers run x86_64 guests, not {arch}")
        if virt_type not in (None, *vmcfg.DOMAIN_TYPES):
            raise InvalidInput(f"custom property virt_type={virt_type!r} is not allowed on "
                               f"OVM3; use {' or '.join(vmcfg.DOMAIN_TYPES)}")
        domain.type = "xen"
        domain.os.type = "hvm" if virt_type == "hvm" else "linux"

    def render(self, domain: dict[str, Any], arch: str, virt_type: str | None = None) -> None:
        """Plugin API 1.x form of :meth:`adapt_domain` (deprecated), kept while the core
        and the plugin kit still call it."""
        from virtplane.domxml import render_through

        render_through(domain, lambda dom: self.adapt_domain(dom, arch, virt_type))

    # ------------------------------------------------------------ devices

    def _nic(self, name: str, xml: str) -> tuple[str, str, dict[str, Any], str]:
        doc = xmltodict.parse(xml)
        if "interface" not in doc:
            raise self._unsupported(f"hot-plugging a {next(iter(doc))}")
        repo, vm_id = self._ids(name)
        config = self.agent.xen.get_vm_config(repo, vm_id)  # checked: vif a list of strings
        vif = vmcfg.vif_entry(doc["interface"], str(config.get("uuid", vm_id)),
                              self.settings.bridges)
        return repo, vm_id, config, vif

    def attach_device(self, name: str, xml: str) -> None:
        repo, vm_id, config, vif = self._nic(name, xml)
        config["vif"] = [*config.get("vif", []), vif]
        self.agent.xen.configure_vm(repo, vm_id, config)

    def detach_device(self, name: str, xml: str) -> None:
        repo, vm_id, config, vif = self._nic(name, xml)
        mac = vif.split(",")[0]
        kept = [v for v in config.get("vif", []) if not str(v).startswith(mac)]
        if len(kept) == len(config.get("vif", [])):
            raise HypervisorError(f"VM {name!r} has no NIC with {mac}")
        config["vif"] = kept
        self.agent.xen.configure_vm(repo, vm_id, config)

    def update_device(self, name: str, xml: str) -> None:
        raise self._unsupported("changing a device of a running VM")

    # ------------------------------------------------------------ migration

    def migrate(self, name: str, dest_uri: str, **kwargs: Any) -> None:
        """Live migration inside one server pool; anything else is refused, not faked."""
        dest = Ovm3Connection(dest_uri, self.settings)
        try:
            mine = self.agent.pool.discover_server_pool()
            theirs = dest.agent.pool.discover_server_pool()
        finally:
            dest.close()
        mine_id = quote(mine.get("Unique_Id") or "", 64) if mine else ""
        theirs_id = quote(theirs.get("Unique_Id") or "", 64) if theirs else ""
        if not mine_id or not theirs_id or mine_id != theirs_id:
            raise HypervisorError(
                f"OVM3 migrates only inside a server pool: {self.client.display} is in "
                f"{mine_id or 'no pool'}, {dest.client.display} in {theirs_id or 'no pool'}")
        repo, vm_id = self._ids(name)
        self.agent.xen.migrate_vm(repo, vm_id, dest.client.host, True)
        progress = kwargs.get("progress")
        if progress is not None:
            progress(100)
