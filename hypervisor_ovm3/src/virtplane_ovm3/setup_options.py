"""What ``virtplane host setup`` takes for an OVM3 server (declared here, parsed by the core)."""

from __future__ import annotations

import attrs

from virtplane.errors import InvalidInput


def _vlans(value: list[str] | list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    out = []
    for item in value:
        if isinstance(item, tuple):
            out.append(item)
            continue
        bridge, _, rest = item.partition("@")
        dev, _, vlan = rest.partition(":")
        if not (bridge and dev and vlan.isdigit()):
            raise InvalidInput(f"vlans entry {item!r} is not BRIDGE@INTERFACE:VLAN "
                               "(e.g. xenbr0@bond0:200)")
        out.append((bridge, dev, int(vlan)))
    return out


@attrs.define(kw_only=True)
class SetupOptions:
    """Host preparation the way CloudStack does it for Oracle VM 3."""

    repository: str | None = attrs.field(
        default=None, metadata={"help": "NFS export for the VM repository (server:/export)"})
    pool_alias: str | None = attrs.field(default=None, metadata={"help": "server pool name"})
    pool_id: str | None = attrs.field(default=None, metadata={"help": "server pool id"})
    pool_vip: str | None = attrs.field(
        default=None, metadata={"help": "server pool virtual IP (creates or joins a pool)"})
    pool_create: bool = attrs.field(
        default=False, metadata={"help": "create the server pool (default: join it)"})
    vlans: list[str] = attrs.field(
        factory=list, converter=_vlans,
        metadata={"help": "VLAN bridges BRIDGE@INTERFACE:VLAN, comma separated or repeated"})
