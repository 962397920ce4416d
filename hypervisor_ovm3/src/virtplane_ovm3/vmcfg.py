"""From virtplane's domain description to the OVM3 ``create_vm`` parameters, and the
``vm.cfg`` text form hooks edit.

The Manager builds every VM as a libvirt-style domain (architecture and storage
drivers fill it in); this module turns it into the parameter struct the agent
writes to ``/OVS/Repositories/<repo>/VirtualMachines/<uuid>/vm.cfg``, with
CloudStack's defaults: ``vif`` entries ``mac=..,bridge=..``, ``disk`` entries
``file:<path>,<dev>,<mode>`` (root ``w``, data ``w!``, ISO ``<dev>:cdrom,r``),
one ``vfb`` for VNC, ``OVM_domain_type`` ``xen_pvm`` or ``hvm``.
"""

from __future__ import annotations

import ast
import hashlib
from typing import Any

import xmltodict

from virtplane.errors import InvalidInput

DEFAULTS: dict[str, Any] = {
    "on_reboot": "restart", "on_poweroff": "destroy", "on_crash": "restart",
    "cpu_weight": 27500, "cpu_cap": 0, "guest_os_type": "Other Linux",
    "OVM_high_availability": False, "OVM_description": "", "OVM_cpu_compat_group": "",
}
DOMAIN_TYPES = ("xen_pvm", "hvm")


def mac_for(vm_uuid: str, nic_alias: str) -> str:
    """A stable MAC for a NIC that has none (Xen's OUI 00:16:3e), so plug and unplug agree."""
    h = hashlib.sha256(f"{vm_uuid}/{nic_alias}".encode()).digest()
    return f"00:16:3e:{h[0] & 0x7F:02x}:{h[1]:02x}:{h[2]:02x}"


def _list(x: Any) -> list[Any]:
    return [] if x is None else x if isinstance(x, list) else [x]


def vif_entry(iface: dict[str, Any], vm_uuid: str, bridges: dict[str, str]) -> str:
    """``mac=..,bridge=..`` for a libvirt ``<interface>`` element (xmltodict form)."""
    src = iface.get("source") or {}
    net = src.get("@bridge") or src.get("@network")
    if not net:
        raise InvalidInput("an OVM3 NIC needs a network (bridge); user-mode NICs do not exist "
                           "on Xen")
    alias = (iface.get("alias") or {}).get("@name", "")
    mac = (iface.get("mac") or {}).get("@address") or mac_for(vm_uuid, alias)
    return f"mac={mac},bridge={bridges.get(net, net)}"


def from_domain(xml: str, bridges: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``create_vm`` parameter struct for a domain XML."""
    bridges = bridges or {}
    doc = xmltodict.parse(xml, force_list=("disk", "interface", "graphics"))["domain"]
    uuid = str(doc["uuid"])
    mem = doc["memory"]
    mib = int(mem["#text"]) if isinstance(mem, dict) else int(mem) // 1024
    if isinstance(mem, dict) and mem.get("@unit", "KiB") in ("KiB", "k"):
        mib = int(mem["#text"]) // 1024
    vcpus = int(doc["vcpu"]["#text"] if isinstance(doc["vcpu"], dict) else doc["vcpu"])
    os_type = doc.get("os", {}).get("type", {})
    kind = os_type.get("#text") if isinstance(os_type, dict) else os_type
    params: dict[str, Any] = dict(DEFAULTS)
    params.update({
        "name": doc["name"], "OVM_simple_name": doc["name"], "uuid": uuid,
        "memory": mib, "maxvcpus": vcpus, "vcpus": vcpus,
        "OVM_domain_type": "hvm" if kind == "hvm" else "xen_pvm",
    })
    if params["OVM_domain_type"] == "xen_pvm":
        params["bootloader"] = "/usr/bin/pygrub"
    devices = doc.get("devices") or {}
    disks = []
    letter = 0
    for d in _list(devices.get("disk")):
        path = (d.get("source") or {}).get("@file")
        if d.get("@device") == "cdrom":
            if path:
                disks.append(f"file:{path},hdc:cdrom,r")
            continue
        if not path:
            raise InvalidInput("an OVM3 disk must be a file in a repository; this disk has "
                               f"no file source ({(d.get('alias') or {}).get('@name', '?')})")
        disks.append(f"file:{path},xvd{chr(ord('a') + letter)},{'w' if letter == 0 else 'w!'}")
        letter += 1
    params["disk"] = disks
    params["vif"] = [vif_entry(i, uuid, bridges) for i in _list(devices.get("interface"))]
    params["vfb"] = []
    for g in _list(devices.get("graphics")):
        if g.get("@type") != "vnc":
            raise InvalidInput(f"OVM3 consoles are VNC; {g.get('@type')} is not available")
        vfb = "type=vnc,vncunused=1,vnclisten=0.0.0.0,keymap=en-us"
        if g.get("@passwd"):
            vfb += f",vncpasswd={g['@passwd']}"
        params["vfb"].append(vfb)
    return params


def render(params: dict[str, Any]) -> str:
    """``vm.cfg`` text: one ``key = value`` line per parameter (Python literals, as
    the agent writes it)."""
    return "".join(f"{k} = {v!r}\n" for k, v in sorted(params.items()))


def parse(text: str) -> dict[str, Any]:
    """Read ``vm.cfg`` text back; anything but ``key = literal`` lines is refused."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise InvalidInput(f"vm.cfg line {exc.lineno}: {exc.msg}") from None
    out: dict[str, Any] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise InvalidInput(f"vm.cfg line {node.lineno}: only `key = value` lines are "
                               "allowed")
        try:
            out[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise InvalidInput(f"vm.cfg line {node.lineno}: the value of "
                               f"{node.targets[0].id} is not a literal") from None
    return out
