"""MAC addresses for new NICs, as oVirt's default MAC pool hands them out.

oVirt gives a NIC its MAC when the NIC is added (clients compare it on the next
run: Ansible's ``ovirt_nic`` reads ``mac.address``), from the pool
``56:6f:xx:xx:xx:xx``; virtplane has no MAC pool of its own, so the API picks an
address in that range that no VM's NIC uses.
"""

from __future__ import annotations

import re
import secrets

from virtplane.errors import InvalidInput
from virtplane_api_ovirt.base import Call

#: oVirt's default MAC pool prefix
PREFIX = (0x56, 0x6F)
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def checked(mac: str) -> str:
    """A client's MAC address, normalised (lowercase); 400 when it is not one."""
    low = mac.strip().lower()
    if not _MAC.match(low):
        raise InvalidInput(f"{mac!r} is not a MAC address (six hex pairs, colon-separated)")
    if int(low[:2], 16) & 1:
        raise InvalidInput(f"{mac!r} is a multicast address; a NIC needs a unicast one")
    return low


def in_use(call: Call) -> set[str]:
    return {n.mac.lower() for vm in call.m.vms.list() for n in vm.spec.nics if n.mac}


def new_mac(call: Call) -> str:
    """A free address of the pool."""
    used = in_use(call)
    for _ in range(1000):
        mac = ":".join(f"{b:02x}" for b in (*PREFIX, *secrets.token_bytes(4)))
        if mac not in used:
            return mac
    raise InvalidInput("the MAC address pool is exhausted")  # pragma: no cover - 2**32 addresses
