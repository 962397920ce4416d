"""The ``<devices>`` of a domain: one small class per element virtplane touches.

Each class models the attributes the core and first-party plugins read or write;
everything else in the element stays untouched (see :mod:`._props`). Devices are
found by alias with :meth:`Devices.by_alias` / :meth:`Devices.find`, which
compare the whole alias: ``nic1`` never matches ``nic10``, disk ``d`` never
``d1`` (the substring tests they replace did).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import ClassVar

from virtplane.domxml._props import (
    XMLBoolProperty,
    XMLChild,
    XMLChildren,
    XMLElement,
    XMLFlag,
    XMLIntProperty,
    XMLProperty,
)
from virtplane.errors import InvalidInput

#: virtplane's user aliases: libvirt keeps aliases starting ``ua-`` as given.
USER_ALIAS_PREFIX = "ua-"


class Address(XMLElement):
    """``<address>``: ``pci`` (domain/bus/slot/function), ``drive``
    (controller/bus/target/unit) or ``spapr-vio`` (reg)."""

    TAG = "address"
    type = XMLProperty("@type")
    domain = XMLProperty("@domain")
    bus = XMLProperty("@bus")
    slot = XMLProperty("@slot")
    function = XMLProperty("@function")
    controller = XMLIntProperty("@controller")
    target = XMLIntProperty("@target")
    unit = XMLIntProperty("@unit")
    reg = XMLIntProperty("@reg", hex=True)

    @classmethod
    def drive(cls, controller: int, unit: int, bus: int = 0, target: int = 0) -> Address:
        addr = cls()
        addr.type, addr.controller, addr.bus = "drive", controller, str(bus)
        addr.target, addr.unit = target, unit
        return addr

    @classmethod
    def spapr_vio(cls, reg: int) -> Address:
        addr = cls()
        addr.type, addr.reg = "spapr-vio", reg
        return addr


class Alias(XMLElement):
    """``<alias name=...>``."""

    TAG = "alias"
    name = XMLProperty("@name")


class Boot(XMLElement):
    """``<boot order=N>`` on a device (per-device boot order, as oVirt writes it)."""

    TAG = "boot"
    order = XMLIntProperty("@order")


class Device(XMLElement):
    """What every device has: an alias, an address, a boot order."""

    alias = XMLChild(Alias)
    address = XMLChild(Address)
    boot = XMLChild(Boot)
    alias_name = XMLProperty("alias/@name", "the alias (``ua-<name>`` for virtplane's devices)")
    boot_order = XMLIntProperty("boot/@order")

    def user_name(self) -> str | None:
        """The virtplane device name (the alias without ``ua-``), None for other aliases."""
        alias = self.alias_name
        if alias and alias.startswith(USER_ALIAS_PREFIX):
            return alias[len(USER_ALIAS_PREFIX):]
        return None


class DiskSource(XMLElement):
    """``<source>`` of a disk: ``file``, ``dev`` or a network ``protocol``/``name``."""

    TAG = "source"
    file = XMLProperty("@file")
    dev = XMLProperty("@dev")
    protocol = XMLProperty("@protocol")
    name = XMLProperty("@name")


class Disk(Device):
    """``<disk>``: a disk, or a CD-ROM (``device='cdrom'``, see :class:`Cdrom`)."""

    TAG = "disk"
    type = XMLProperty("@type")
    device = XMLProperty("@device")
    driver_name = XMLProperty("driver/@name")
    driver_type = XMLProperty("driver/@type")
    source = XMLChild(DiskSource)
    source_file = XMLProperty("source/@file")
    target_dev = XMLProperty("target/@dev")
    target_bus = XMLProperty("target/@bus")
    serial = XMLProperty("serial")
    readonly = XMLFlag("readonly")
    shareable = XMLFlag("shareable")

    @property
    def is_cdrom(self) -> bool:
        return self.device == "cdrom"


class Cdrom(Disk):
    """A CD-ROM drive: ``<disk type='file' device='cdrom'>`` with a raw, read-only image
    (``source_file`` None: an empty drive)."""

    def __init__(self, element: ET.Element | None = None) -> None:
        super().__init__(element)
        if element is None:
            self.type, self.device = "file", "cdrom"
            self.driver_name, self.driver_type = "qemu", "raw"
            self.readonly = True


class Interface(Device):
    """``<interface>``: ``bridge`` (``source_bridge``), ``network`` or ``user``."""

    TAG = "interface"
    type = XMLProperty("@type")
    mac = XMLProperty("mac/@address")
    source_bridge = XMLProperty("source/@bridge")
    source_network = XMLProperty("source/@network")
    model = XMLProperty("model/@type")
    target_dev = XMLProperty("target/@dev")
    link_state = XMLProperty("link/@state")


class Graphics(Device):
    """``<graphics>``: VNC or SPICE console."""

    TAG = "graphics"
    type = XMLProperty("@type")
    port = XMLIntProperty("@port")
    autoport = XMLBoolProperty("@autoport")
    passwd = XMLProperty("@passwd")
    passwd_valid_to = XMLProperty("@passwdValidTo")
    listen_type = XMLProperty("listen/@type")
    listen_address = XMLProperty("listen/@address")


class Video(Device):
    TAG = "video"
    model = XMLProperty("model/@type")
    vram = XMLIntProperty("model/@vram")
    heads = XMLIntProperty("model/@heads")


class Watchdog(Device):
    TAG = "watchdog"
    model = XMLProperty("@model")
    action = XMLProperty("@action")


class Controller(Device):
    TAG = "controller"
    type = XMLProperty("@type")
    index = XMLIntProperty("@index")
    model = XMLProperty("@model")

    @classmethod
    def new(cls, type: str, index: int, model: str | None = None) -> Controller:
        ctl = cls()
        ctl.type, ctl.index, ctl.model = type, index, model
        return ctl


class _CharDevice(Device):
    type = XMLProperty("@type")
    source_path = XMLProperty("source/@path")
    source_mode = XMLProperty("source/@mode")
    target_type = XMLProperty("target/@type")
    target_port = XMLIntProperty("target/@port")


class Serial(_CharDevice):
    TAG = "serial"


class Console(_CharDevice):
    TAG = "console"


class Channel(_CharDevice):
    TAG = "channel"
    target_name = XMLProperty("target/@name")


class Memory(Device):
    """``<memory model='dimm'>``: a hot-plugged memory module."""

    TAG = "memory"
    model = XMLProperty("@model")
    size = XMLIntProperty("target/size")
    size_unit = XMLProperty("target/size/@unit")
    node = XMLIntProperty("target/node")

    #: bytes per ``size_unit`` (libvirt's memory units; KiB when absent)
    _UNITS: ClassVar[dict[str, int]] = {
        "b": 1, "bytes": 1, "KB": 10**3, "k": 1024, "KiB": 1024, "MB": 10**6, "M": 1024**2,
        "MiB": 1024**2, "GB": 10**9, "G": 1024**3, "GiB": 1024**3, "TB": 10**12,
        "T": 1024**4, "TiB": 1024**4}

    @property
    def size_mib(self) -> int | None:
        """The module's size in MiB, whatever unit libvirt wrote it in (live XML says
        KiB); None when it has no size or an unknown unit."""
        size, unit = self.size, self.size_unit or "KiB"
        if size is None or unit not in self._UNITS:
            return None
        return size * self._UNITS[unit] // 1024**2


#: Device classes by tag; other device elements are plain :class:`Device` views.
KINDS: dict[str, type[Device]] = {c.TAG: c for c in (
    Disk, Interface, Graphics, Video, Watchdog, Controller, Serial, Console, Channel, Memory)}


def device_view(elem: ET.Element) -> Device:
    """The typed view for any device element (``<disk device='cdrom'>`` -> Cdrom)."""
    if elem.tag == "disk" and elem.get("device") == "cdrom":
        return Cdrom(elem)
    cls = KINDS.get(str(elem.tag))
    if cls is not None:
        return cls(elem)
    view = Device.__new__(Device)
    XMLElement.__init__(view, elem)
    return view


def _disk(elem: ET.Element) -> Disk:
    return Cdrom(elem) if elem.get("device") == "cdrom" else Disk(elem)


class Devices(XMLElement):
    """``<devices>``: typed lists per kind, lookups by exact alias, add/remove."""

    TAG = "devices"
    disks = XMLChildren(Disk, factory=_disk)
    interfaces = XMLChildren(Interface)
    graphics = XMLChildren(Graphics)
    videos = XMLChildren(Video)
    watchdogs = XMLChildren(Watchdog)
    controllers = XMLChildren(Controller)
    serials = XMLChildren(Serial)
    consoles = XMLChildren(Console)
    channels = XMLChildren(Channel)
    memories = XMLChildren(Memory)
    emulator = XMLProperty("emulator")

    ORDER: ClassVar[tuple[str, ...]] = ("emulator", "disk", "controller", "interface",
                                        "serial", "console", "channel", "graphics", "video",
                                        "watchdog", "memory")

    @property
    def cdroms(self) -> list[Cdrom]:
        return [d for d in self.disks if isinstance(d, Cdrom)]

    def __iter__(self) -> Iterator[Device]:
        """Every device element, in document order (comments skipped)."""
        node = self._node(False)
        if node is None:
            return
        for child in node:
            if isinstance(child.tag, str) and child.tag != "emulator":
                yield device_view(child)

    def add(self, device: Device) -> Device:
        """Append a device after the last one of its kind (grouped, as libvirt lists them)."""
        parent = self.element
        elem = device.element
        ranks, last = _RANKS, len(_RANKS)
        rank = ranks.get(elem.tag, last)
        tail = parent[-1].tag if len(parent) else None
        if tail is None or ranks.get(tail if isinstance(tail, str) else "", last) <= rank:
            parent.append(elem)  # the common case: nothing ranks after it yet
            return device
        pos = len(parent)
        for i, child in enumerate(parent):
            if ranks.get(child.tag if isinstance(child.tag, str) else "", last) > rank:
                pos = i
                break
        parent.insert(pos, elem)
        return device

    def remove(self, device: Device) -> None:
        node = self._node(False)
        if node is None or device.element not in list(node):
            raise InvalidInput(f"no such <{device.TAG}> in these devices")
        node.remove(device.element)

    def by_alias(self, name: str) -> Device | None:
        """The device whose alias is exactly ``name`` or ``ua-<name>`` (never a prefix or
        substring match: ``nic1`` does not find ``nic10``)."""
        return self._match(iter(self), name)

    def find(self, kind: str, name: str) -> Device | None:
        """Like :meth:`by_alias`, among devices of one kind (tag: ``disk``, ``interface`` ...)."""
        return self._match((d for d in self if d.element.tag == kind), name)

    @staticmethod
    def _match(devices: Iterator[Device], name: str) -> Device | None:
        wanted = {name, USER_ALIAS_PREFIX + name}
        hits = [d for d in devices if d.alias_name in wanted]
        exact = [d for d in hits if d.alias_name == name]
        found = exact or hits
        return found[0] if found else None

    def disk_targets(self) -> list[str]:
        """Target device names (``vda``, ``sdz`` ...) of every disk and CD-ROM."""
        return [d.target_dev for d in self.disks if d.target_dev]


#: :attr:`Devices.ORDER` as tag -> rank (tags not in it rank last)
_RANKS: dict[str, int] = {tag: i for i, tag in enumerate(Devices.ORDER)}
