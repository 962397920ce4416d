"""libvirt domain XML: a typed element layer (plugin API 2.0) and the 1.x dict functions.

The core builds the generic domain (:func:`build_domain`), the architecture
driver customises it (``customize_domain``; 1.x: ``render`` on a dict), the
hypervisor connection adapts it (``adapt_domain``; 1.x: ``render``), storage
drivers supply each disk's source; then the ``adjust_domain_xml`` hook runs,
``before_device_create`` (per device) and ``before_vm_start``.
:func:`virtplane.drivers.apply_architecture` and
:func:`virtplane.drivers.apply_hypervisor` call whichever method a driver has, so 1.x
drivers keep working (with a deprecation warning); this package knows no driver.

The dict functions below (:func:`build`, :func:`parse`, :func:`devices_xml` ...)
are the 1.x interface, kept while callers move to :class:`Domain`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import xmltodict

from virtplane.domxml._build import (
    HOST_SERIAL_PLACEHOLDER,
    OS_NAME_PLACEHOLDER,
    OS_VERSION_PLACEHOLDER,
    boot_sequence,
    build_domain,
    fill_sysinfo,
    new_disk,
    new_interface,
    target_name,
)
from virtplane.domxml._dictform import element_to_dict
from virtplane.domxml._props import (
    XMLBoolProperty,
    XMLChild,
    XMLChildren,
    XMLElement,
    XMLFlag,
    XMLIntProperty,
    XMLProperty,
)
from virtplane.domxml._xmltext import escape_attr, escape_text, parse_element
from virtplane.domxml.devices import (
    Address,
    Alias,
    Boot,
    Cdrom,
    Channel,
    Console,
    Controller,
    Device,
    Devices,
    Disk,
    Graphics,
    Interface,
    Memory,
    Serial,
    Video,
    Watchdog,
    device_view,
)
from virtplane.domxml.domain import Cpu, Domain, Features, Os, Sysinfo

if TYPE_CHECKING:
    from virtplane.model import DiskSpec, NicSpec, VmSpec

__all__ = [
    "DEVICE_TAGS", "HOST_SERIAL_PLACEHOLDER", "OS_NAME_PLACEHOLDER", "OS_VERSION_PLACEHOLDER",
    "Address", "Alias", "Boot", "Cdrom", "Channel", "Console", "Controller", "Cpu", "Device",
    "Devices", "Disk", "Domain", "Features", "Graphics", "Interface", "Memory", "Os",
    "Serial", "Sysinfo", "Video", "Watchdog", "XMLBoolProperty", "XMLChild", "XMLChildren",
    "XMLElement", "XMLFlag", "XMLIntProperty", "XMLProperty",
    "boot_sequence", "build", "build_domain",
    "device_view", "devices_xml", "disk_aliases", "disk_element", "disk_targets",
    "escape_attr", "escape_text",
    "fill_sysinfo", "new_disk", "new_interface", "nic_element", "parse", "parse_element",
    "replace_devices",
    "target_name", "to_xml",
]

#: Device tags :func:`parse` always gives as lists (1.x dict form).
DEVICE_TAGS = ("disk", "interface", "graphics", "video", "watchdog", "controller", "memory",
               "serial")

# ---------------------------------------------------------------- plugin API 2.0 helpers


def render_through(domain_dict: dict[str, Any], customize: Any) -> None:
    """For a 2.0 driver's 1.x ``render`` wrapper: run ``customize(domain)`` on a
    :class:`Domain` made from the dict and write the result back into the same dict
    (in place, as 1.x callers expect)."""
    dom = Domain.from_dict(domain_dict)
    customize(dom)
    domain_dict.clear()
    domain_dict.update(dom.to_dict())


# ---------------------------------------------------------------- 1.x dict interface


def disk_targets(xml: str) -> list[str]:
    """Target device names used by the disks of a domain XML (none for native config text)."""
    if not xml.lstrip().startswith("<"):
        return []
    return Domain.from_xml(xml).devices.disk_targets()


def disk_aliases(xml: str) -> dict[str, str]:
    """Alias (``ua-<name>``) -> target device, for the disks of a domain XML."""
    if not xml.lstrip().startswith("<"):
        return {}
    out = {}
    for disk in Domain.from_xml(xml).devices.disks:
        if disk.alias_name and disk.target_dev:
            out[disk.alias_name] = disk.target_dev
    return out


def _as_dict(elem: XMLElement) -> dict[str, Any]:
    body = element_to_dict(elem.element)
    return dict(body) if isinstance(body, dict) else {}


def disk_element(disk: DiskSpec, index: int, source: dict[str, Any]) -> dict[str, Any]:
    """A ``<disk>`` element (xmltodict form) for a VM disk and its source (1.x)."""
    return _as_dict(new_disk(disk, index, source))


def nic_element(nic: NicSpec) -> dict[str, Any]:
    """An ``<interface>`` element (xmltodict form) for a VM NIC (1.x)."""
    return _as_dict(new_interface(nic))


def build(spec: VmSpec, vm_id: str, disk_sources: list[dict[str, Any]]) -> dict[str, Any]:
    """The generic domain as a 1.x dict (``{"domain": ...}``); see :func:`build_domain`."""
    return {"domain": build_domain(spec, vm_id, disk_sources).to_dict()}


def to_xml(domain: dict[str, Any] | Domain) -> str:
    """The XML text (compact: libvirt and hooks parse it; libvirt's live XML is the
    readable copy kept with the VM)."""
    if isinstance(domain, Domain):
        return domain.to_xml()
    return str(xmltodict.unparse(domain, full_document=False))


def parse(xml: str) -> dict[str, Any]:
    """A domain XML as a 1.x dict (device tags in :data:`DEVICE_TAGS` always lists)."""
    return dict(xmltodict.parse(xml, force_list=DEVICE_TAGS))


def devices_xml(xml: str) -> list[tuple[str, str]]:
    """Each device of a domain XML as ``(tag, device XML)``, in document order; none for
    a hypervisor's native configuration text (e.g. OVM3's ``vm.cfg``)."""
    if not xml.lstrip().startswith("<"):
        return []
    return [(str(dev.element.tag), dev.to_xml()) for dev in Domain.from_xml(xml).devices]


def replace_devices(xml: str, devices: list[tuple[str, str]]) -> str:
    """A domain XML with its devices replaced by ``devices`` (tag, XML); everything
    outside ``<devices>`` stays as it was."""
    dom = Domain.from_xml(xml)
    node = dom.devices.element
    for child in list(node):
        if child.tag != "emulator":
            node.remove(child)
    for _tag, dev_xml in devices:
        node.append(parse_element(dev_xml, "device XML"))
    return dom.to_xml()
