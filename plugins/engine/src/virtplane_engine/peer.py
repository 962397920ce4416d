"""Who is calling: the OS user owning a loopback TCP client's socket.

The engine's API listens on loopback only, and the kernel knows which user
owns each socket: ``/proc/net/tcp`` (and ``tcp6``) list every connection with
its local and remote address and its owner's uid, as ``identd`` reads them.
The engine looks the client's end up there instead of trusting anything the
client says, and maps the uid to a virtplane user: root, and the user the
engine runs as (who can write the state store directly anyway), are
``admin@internal``; any other OS user NAME is ``NAME@internal``.
"""

from __future__ import annotations

import ipaddress
import os
import pwd

ADMIN = "admin@internal"


def _hex(host: str, port: int) -> tuple[str, str]:
    """An address as /proc/net/tcp{,6} writes it (the kernel's byte order per word)."""
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        raw = ip.packed
        text = "".join(raw[i:i + 4][::-1].hex().upper() for i in range(0, 16, 4))
        return text + f":{port:04X}", "tcp6"
    v4 = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else ip
    assert v4 is not None
    text = v4.packed[::-1].hex().upper()
    if isinstance(ip, ipaddress.IPv6Address):
        text = "0000000000000000FFFF0000" + text
        return text + f":{port:04X}", "tcp6"
    return text + f":{port:04X}", "tcp"


def peer_uid(client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The uid owning the client end of a loopback connection, or None if not found."""
    local, table = _hex(client[0], client[1])
    remote, _ = _hex(server[0], server[1])
    try:
        with open(f"/proc/net/{table}", encoding="ascii") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) > 7 and fields[1] == local and fields[2] == remote:
                    return int(fields[7])
    except OSError:
        return None
    return None


def user_of(uid: int | None) -> str | None:
    """The virtplane user of an OS uid (None: unknown caller)."""
    if uid is None:
        return None
    if uid in (0, os.getuid()):
        return ADMIN
    try:
        return f"{pwd.getpwuid(uid).pw_name}@internal"
    except KeyError:
        return f"uid{uid}@internal"
