"""Mutable payloads handed to hook implementations.

A hook changes what the core does by changing its payload in place, the way a
VDSM hook script edits the file named by ``_hook_domxml`` or ``_hook_json``:
every implementation sees the edits of the ones that ran before it.
"""

from __future__ import annotations

import json
from typing import Any


class XmlPayload:
    """Domain or device XML (libvirt format) that hooks may read and replace.

    :ivar xml: the XML document as a string; assign a new string to change it.
    :ivar launch_flags: libvirt ``virDomainCreateFlags`` for the start (only
        meaningful for ``before_vm_start`` and ``before_device_create``).
    """

    __slots__ = ("xml", "launch_flags")

    def __init__(self, xml: str, launch_flags: int = 0) -> None:
        self.xml = xml
        self.launch_flags = launch_flags

    def as_dict(self) -> dict[str, Any]:
        """Return the XML parsed with xmltodict (attributes prefixed ``@``)."""
        import xmltodict

        return dict(xmltodict.parse(self.xml))

    def set_dict(self, data: dict[str, Any]) -> None:
        """Replace the XML with the xmltodict rendering of ``data``."""
        import xmltodict

        self.xml = xmltodict.unparse(data, full_document=False)

    def __repr__(self) -> str:
        return f"XmlPayload({len(self.xml)} chars, launch_flags={self.launch_flags})"


class JsonPayload:
    """JSON-shaped data (stats, capabilities, network setup) hooks may change.

    :ivar data: the data; mutate it or assign a new value.
    """

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data

    def dumps(self) -> str:
        """The data as a JSON string (what a ``_hook_json`` script reads)."""
        return json.dumps(self.data, sort_keys=True)

    def __repr__(self) -> str:
        return f"JsonPayload({type(self.data).__name__})"


class ConfigPayload:
    """A hypervisor's native VM configuration (e.g. OVM3's ``vm.cfg``) for hypervisors
    that do not take libvirt XML; passed where KVM passes an :class:`XmlPayload`.

    :ivar params: the configuration as a dict; mutate it or assign a new one.
    :ivar format: what the text form is (``"vm.cfg"``).
    :ivar launch_flags: unused by such hypervisors; kept so hooks can treat both alike.

    ``xml`` is the text form (what a hook script's ``_hook_domxml`` file holds);
    assigning it parses the text back, so scripts edit ``vm.cfg`` lines.
    """

    __slots__ = ("params", "format", "launch_flags", "_render", "_parse")

    def __init__(self, params: dict[str, Any], format: str, render: Any, parse: Any) -> None:
        self.params = params
        self.format = format
        self.launch_flags = 0
        self._render = render
        self._parse = parse

    @property
    def xml(self) -> str:
        text: str = self._render(self.params)
        return text

    @xml.setter
    def xml(self, text: str) -> None:
        self.params = self._parse(text)

    def __repr__(self) -> str:
        return f"ConfigPayload({self.format}, {len(self.params)} keys)"
