"""``<domain>`` and its top-level parts: :class:`Domain`, :class:`Os`, :class:`Cpu`,
:class:`Features`, :class:`Sysinfo`.

This is what architecture drivers (``customize_domain``) and hypervisor
connections (``adapt_domain``) edit under plugin API 2.0, and what the core can
parse live XML into. ``Domain.to_dict()``/``from_dict()`` convert to and from
the 1.x ``xmltodict`` form for drivers that still implement ``render``.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any, Self, overload

from virtplane.domxml._dictform import element_from_dict, element_to_dict
from virtplane.domxml._props import (
    XMLBoolProperty,
    XMLChild,
    XMLElement,
    XMLFlag,
    XMLIntProperty,
    XMLProperty,
)
from virtplane.domxml._xmltext import compact, parse_element, serialise
from virtplane.domxml.devices import Devices
from virtplane.errors import InvalidInput

#: Bytes per libvirt memory unit (libvirt's ``unit`` attribute; KiB when absent).
UNITS = {"b": 1, "bytes": 1, "KB": 10**3, "k": 1024, "KiB": 1024, "MB": 10**6, "M": 1024**2,
         "MiB": 1024**2, "GB": 10**9, "G": 1024**3, "GiB": 1024**3, "TB": 10**12,
         "T": 1024**4, "TiB": 1024**4}

#: Device tags the 1.x dict form always holds as lists (what ``build()`` gave 1.x
#: ``render`` methods: ``devices["disk"]`` etc. were lists, the rest single dicts).
DICT_LIST_TAGS = ("disk", "interface", "controller")


class Os(XMLElement):
    """``<os>``: guest type, arch, machine, boot devices, direct kernel boot, SMBIOS mode."""

    TAG = "os"
    type = XMLProperty("type", "``hvm`` (full virtualization), ``linux``/``xen`` (PV)")
    arch = XMLProperty("type/@arch")
    machine = XMLProperty("type/@machine")
    firmware = XMLProperty("@firmware")
    kernel = XMLProperty("kernel")
    initrd = XMLProperty("initrd")
    cmdline = XMLProperty("cmdline")
    smbios_mode = XMLProperty("smbios/@mode", "``sysinfo``: the guest sees ``<sysinfo>``")
    bootmenu = XMLBoolProperty("bootmenu/@enable")

    @property
    def boot_devs(self) -> list[str]:
        """``<boot dev=...>`` entries (1.x style; 2.0 builds per-device boot order)."""
        node = self._node(False)
        return [] if node is None else [b.get("dev", "") for b in node.findall("boot")]

    @boot_devs.setter
    def boot_devs(self, devs: list[str]) -> None:
        node = self.element
        for old in node.findall("boot"):
            node.remove(old)
        for dev in devs:
            ET.SubElement(node, "boot", dev=dev)


class Cpu(XMLElement):
    """``<cpu>``: ``mode`` custom (with ``model``), host-model or host-passthrough,
    and the topology."""

    TAG = "cpu"
    mode = XMLProperty("@mode")
    match = XMLProperty("@match")
    check = XMLProperty("@check")
    model = XMLProperty("model")
    model_fallback = XMLProperty("model/@fallback")
    vendor = XMLProperty("vendor")
    sockets = XMLIntProperty("topology/@sockets")
    cores = XMLIntProperty("topology/@cores")
    threads = XMLIntProperty("topology/@threads")

    def set_model(self, model: str) -> None:
        """A named model: ``host-model``/``host-passthrough`` become the mode, anything
        else is ``mode='custom' match='exact'`` with that ``<model>``."""
        if model in ("host-model", "host-passthrough"):
            self.mode, self.match, self.model = model, None, None
        else:
            self.mode, self.match, self.model = "custom", "exact", model

    def clear_model(self) -> None:
        """No model: the hypervisor's default CPU (TCG, the test driver); topology stays."""
        self.mode = self.match = self.check = self.model = self.vendor = None
        node = self._node(False)
        if node is not None:
            for feature in node.findall("feature"):
                node.remove(feature)


class Features(XMLElement):
    TAG = "features"
    acpi = XMLFlag("acpi")
    apic = XMLFlag("apic")
    pae = XMLFlag("pae")
    vmcoreinfo = XMLFlag("vmcoreinfo")
    gic_version = XMLProperty("gic/@version")


class _SystemEntry:
    """``<sysinfo><system><entry name=NAME>text</entry>``.

    The entries are looked up by a loop over the children rather than an ElementPath
    predicate (``entry[@name='x']``), which ElementTree compiles and runs in Python:
    six of them are written and three read at every start."""

    def __init__(self, name: str) -> None:
        self.entry = name

    def _in(self, system: ET.Element) -> ET.Element | None:
        """The first ``<entry>`` of ``system`` with this name."""
        for child in system:
            if child.tag == "entry" and child.get("name") == self.entry:
                return child
        return None

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...
    @overload
    def __get__(self, obj: XMLElement, owner: type) -> str | None: ...
    def __get__(self, obj: XMLElement | None, owner: type) -> Self | str | None:
        if obj is None:
            return self
        node = obj._node(False)
        if node is None:
            return None
        for system in node.findall("system"):
            found = self._in(system)
            if found is not None:
                return found.text or ""
        return None

    def __set__(self, obj: XMLElement, value: str | None) -> None:
        system = obj.element.find("system")
        found = None if system is None else self._in(system)
        if value is None:
            if system is not None and found is not None:
                system.remove(found)
            return
        if system is None:
            system = ET.SubElement(obj.element, "system")
        if found is None:
            found = ET.SubElement(system, "entry", name=self.entry)
        found.text = value


class Sysinfo(XMLElement):
    """``<sysinfo type='smbios'>`` system entries (what the guest's dmidecode shows)."""

    TAG = "sysinfo"
    type = XMLProperty("@type")
    manufacturer = _SystemEntry("manufacturer")
    product = _SystemEntry("product")
    version = _SystemEntry("version")
    serial = _SystemEntry("serial")
    uuid = _SystemEntry("uuid")
    family = _SystemEntry("family")


class Domain(XMLElement):
    """``<domain>``: the whole VM definition, as a view over an ElementTree."""

    TAG = "domain"
    type = XMLProperty("@type", "``kvm``, ``qemu`` (TCG), ``test``, ``xen`` ... (set by the "
                       "hypervisor)")
    name = XMLProperty("name")
    uuid = XMLProperty("uuid")
    description = XMLProperty("description")
    memory = XMLIntProperty("memory", "in ``memory_unit`` (KiB when absent)")
    memory_unit = XMLProperty("memory/@unit")
    current_memory = XMLIntProperty("currentMemory")
    vcpu = XMLIntProperty("vcpu")
    vcpu_placement = XMLProperty("vcpu/@placement")
    vcpu_current = XMLIntProperty("vcpu/@current")
    on_poweroff = XMLProperty("on_poweroff")
    on_reboot = XMLProperty("on_reboot")
    on_crash = XMLProperty("on_crash")
    os = XMLChild(Os)
    cpu = XMLChild(Cpu)
    features = XMLChild(Features)
    sysinfo = XMLChild(Sysinfo)
    devices = XMLChild(Devices)

    @classmethod
    def new(cls, name: str, uuid: str, memory_mib: int, vcpus: int) -> Domain:
        """A minimal domain; the element order follows libvirt's own output."""
        if memory_mib <= 0 or vcpus <= 0:
            raise InvalidInput(f"a domain needs positive memory and vCPUs (got "
                               f"{memory_mib} MiB, {vcpus} vCPUs)")
        dom = cls()
        dom.name, dom.uuid = name, uuid
        dom.memory_mib = memory_mib
        dom.current_memory = memory_mib
        dom.element.find("currentMemory").set("unit", "MiB")  # type: ignore[union-attr]
        dom.vcpu, dom.vcpu_placement = vcpus, "static"
        return dom

    @property
    def memory_mib(self) -> int | None:
        """``<memory>`` in MiB, whatever unit it is written in."""
        amount = self.memory
        if amount is None:
            return None
        unit = self.memory_unit or "KiB"
        if unit not in UNITS:
            raise InvalidInput(f"<memory unit={unit!r}> is unknown; allowed: "
                               + ", ".join(UNITS))
        return amount * UNITS[unit] // 1024**2

    @memory_mib.setter
    def memory_mib(self, mib: int) -> None:
        self.memory, self.memory_unit = mib, "MiB"

    # ------------------------------------------------------------ text forms

    @classmethod
    def from_xml(cls, xml: str) -> Self:
        root = parse_element(xml, "domain XML")
        if root.tag != cls.TAG:
            raise InvalidInput(f"domain XML must have a <domain> root, not <{root.tag}>")
        return cls(root)

    def to_xml(self) -> str:
        """Compact XML (no indentation), deterministic: same tree, same text."""
        compact(self.element)
        return serialise(self.element)

    def copy(self) -> Domain:
        return Domain(copy.deepcopy(self.element))

    def to_dict(self) -> dict[str, Any]:
        """The 1.x form handed to ``render``: the ``domain`` element's xmltodict dict
        (``os.type`` always a dict, disks/interfaces/controllers always lists)."""
        body = element_to_dict(self.element, DICT_LIST_TAGS)
        body = dict(body) if isinstance(body, dict) else {}
        os_ = body.get("os")
        if isinstance(os_, dict) and isinstance(os_.get("type"), str):
            os_["type"] = {"#text": os_["type"]}
        if not isinstance(body.get("devices"), dict):
            body["devices"] = {}
        return body

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Domain:
        """Back from the 1.x form (the ``domain`` element's dict, or ``{"domain": ...}``)."""
        if set(body) == {"domain"}:
            body = body["domain"]
        try:
            return cls(element_from_dict("domain", body))
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"the domain dict cannot be written as XML: {exc}") from None
