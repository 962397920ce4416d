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
import re
import uuid as uuidlib
from typing import Any

import xmltodict

from virtplane.errors import InvalidInput

DEFAULTS: dict[str, Any] = {
    "on_reboot": "restart", "on_poweroff": "destroy", "on_crash": "restart",
    "cpu_weight": 27500, "cpu_cap": 0, "guest_os_type": "Other Linux",
    "OVM_high_availability": False, "OVM_description": "", "OVM_cpu_compat_group": "",
}
DOMAIN_TYPES = ("xen_pvm", "hvm")

#: what may go into vm.cfg (the agent writes it from the parameters; xend splits the
#: ``disk``/``vif``/``vfb`` entries on ``,`` and ``=``, so those never appear inside a
#: value: a bridge ``xenbr0,script=/tmp/x`` would add a key)
_BRIDGE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PATH = re.compile(r"/[A-Za-z0-9_./:+@%~-]{1,1023}")
_DEV = re.compile(r"(xvd[a-z]{1,2}|hd[a-z]|[a-z])(:cdrom)?")
_VNC_KEYS = {"type", "vncunused", "vnclisten", "keymap", "vncpasswd", "vncdisplay", "vnc"}
_VIF_KEYS = {"mac", "bridge", "type", "model", "vifname"}


def check_path(path: Any, what: str) -> str:
    """An absolute file path safe in a ``disk`` entry: no ``..`` or ``.`` component, no
    ``,``, spaces or control characters."""
    if not isinstance(path, str) or not _PATH.fullmatch(path) \
            or any(part in (".", "..") for part in path.split("/")) or "//" in path:
        raise InvalidInput(f"{what} {path!r} is not an absolute path of letters, digits and "
                           "._/:+@%~- without . or .. components (xend splits vm.cfg entries "
                           "on commas)")
    return path


def check_bridge(bridge: Any, what: str) -> str:
    if not isinstance(bridge, str) or not _BRIDGE.fullmatch(bridge):
        raise InvalidInput(f"{what} {bridge!r} is not a Linux bridge name (1-15 letters, "
                           "digits, _ . -)")
    return bridge


def check_mac(mac: Any, what: str) -> str:
    if not isinstance(mac, str) or not _MAC.fullmatch(mac.lower()):
        raise InvalidInput(f"{what} {mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return mac.lower()


def _pairs(entry: str, what: str, keys: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in entry.split(","):
        key, eq, value = part.partition("=")
        if not eq or key not in keys or key in out or not value.isprintable() \
                or " " in value:
            raise InvalidInput(f"{what} {entry!r}: {part!r} is not one of "
                               f"{', '.join(sorted(keys))} = value, each once")
        out[key] = value
    return out


def check_params(params: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The ``create_vm`` parameters as sent (after hooks edited vm.cfg): plain keys,
    the VM's ``name`` and a UUID, positive sizes, and ``disk``/``vif``/``vfb`` entries
    whose every part is what it claims to be. Raises InvalidInput naming the entry."""
    for key in params:
        if not (isinstance(key, str) and _KEY.fullmatch(key)):
            raise InvalidInput(f"vm.cfg key {key!r} is not a plain name")
    for key in ("name", "OVM_simple_name"):
        value = params.get(key)
        if key in params and not (isinstance(value, str) and 0 < len(value) <= 255
                                  and value.isprintable() and "'" not in value
                                  and '"' not in value and "\\" not in value):
            raise InvalidInput(f"vm.cfg {key} {value!r} must be 1-255 printable characters "
                               "without quotes or backslashes")
    if name is not None and params.get("name") != name:
        raise InvalidInput(f"vm.cfg name {params.get('name')!r} is not the VM's name {name!r}")
    try:
        canonical = str(uuidlib.UUID(str(params.get("uuid"))))
    except ValueError:
        canonical = ""
    if not isinstance(params.get("uuid"), str) or canonical != params["uuid"].lower():
        raise InvalidInput(f"vm.cfg uuid {params.get('uuid')!r} is not a UUID")
    for key, lo, hi in (("memory", 16, 1 << 24), ("vcpus", 1, 512), ("maxvcpus", 0, 512)):
        value = params.get(key)
        if key in params or key != "maxvcpus":
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise InvalidInput(f"vm.cfg {key} {value!r} is not a whole number in "
                                   f"{lo}..{hi}")
    for key, value in params.items():
        if isinstance(value, str) and not value.isprintable():
            raise InvalidInput(f"vm.cfg {key} holds control characters")
    for key in ("disk", "vif", "vfb"):
        entries = params.get(key, [])
        if not isinstance(entries, list) or len(entries) > 64 \
                or not all(isinstance(e, str) for e in entries):
            raise InvalidInput(f"vm.cfg {key} must be a list of strings (at most 64)")
    for entry in params.get("disk", []):
        parts = entry.split(",")
        if len(parts) != 3 or not parts[0].startswith("file:") \
                or not _DEV.fullmatch(parts[1]) or parts[2] not in ("w", "w!", "r"):
            raise InvalidInput(f"vm.cfg disk entry {entry!r} is not file:PATH,DEVICE,MODE")
        check_path(parts[0][len("file:"):], "vm.cfg disk path")
    for entry in params.get("vif", []):
        pairs = _pairs(entry, "vm.cfg vif entry", _VIF_KEYS)
        check_bridge(pairs.get("bridge"), "vm.cfg vif bridge")
        if "mac" in pairs:
            check_mac(pairs["mac"], "vm.cfg vif mac")
    for entry in params.get("vfb", []):
        _pairs(entry, "vm.cfg vfb entry", _VNC_KEYS)
    return params


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
    return (f"mac={check_mac(mac, 'NIC MAC')},"
            f"bridge={check_bridge(bridges.get(net, net), f'NIC {alias or net} bridge')}")


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
                disks.append(f"file:{check_path(path, 'ISO path')},hdc:cdrom,r")
            continue
        if not path:
            raise InvalidInput("an OVM3 disk must be a file in a repository; this disk has "
                               f"no file source ({(d.get('alias') or {}).get('@name', '?')})")
        check_path(path, f"disk {(d.get('alias') or {}).get('@name', '?')} path")
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
            pw = str(g["@passwd"])
            if not pw.isprintable() or any(c in pw for c in ", ='\"\\"):
                raise InvalidInput("an OVM3 VNC password may not hold commas, '=', spaces, "
                                   "quotes or control characters (xend splits vfb on them)")
            vfb += f",vncpasswd={pw}"
        params["vfb"].append(vfb)
    return check_params(params)


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
