"""The shortcuts the domain XML layer takes on the start path answer what the general
forms they replace answer: ``<sysinfo>`` entry lookups, the serialiser's single check
for characters to escape, child paths of views."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from virtplane.domxml import Domain, Sysinfo, XMLChild, XMLElement, XMLProperty
from virtplane.domxml._xmltext import parse_element, serialise


def test_sysinfo_entries_are_found_as_elementpath_finds_them() -> None:
    xml = ("<sysinfo type='smbios'><system><entry name='family'>x</entry>"
           "<entry>no name</entry><entry name='product'/></system>"
           "<system><entry name='product'>second</entry><entry name='serial'>s2</entry>"
           "</system></sysinfo>")
    elem = parse_element(xml)
    info = Sysinfo(elem)
    for name in ("product", "serial", "uuid", "family"):
        found = elem.find(f"system/entry[@name='{name}']")
        assert getattr(info, name) == (None if found is None else (found.text or ""))
    info.serial = "new"  # written in the first <system>, as before
    first = elem.find("system")
    assert first is not None and first[-1].get("name") == "serial"
    assert info.serial == "new"
    info.product = None  # removed from the first <system>: the second one shows
    assert info.product == "second"


@pytest.mark.parametrize("value", ['a"b', "a&b", "<x>", "line\nnext", "tab\there", "cr\r"])
def test_a_value_to_escape_anywhere_in_a_big_tree_is_escaped(value: str) -> None:
    dom = Domain.new("vm", "u-1", 256, 2)
    for i in range(30):
        ET.SubElement(dom.devices.element, "controller", type="pci", index=str(i))
    for where in ("attr", "text"):
        tree = Domain(parse_element(dom.to_xml()))
        target = tree.devices.element[17]
        if where == "attr":
            target.set("model", value)
        else:
            target.text = value
        assert serialise(tree.element) == ET.tostring(tree.element, encoding="unicode")


class _Leaf(XMLElement):
    TAG = "leaf"
    name = XMLProperty("@name")


class _Root(XMLElement):
    TAG = "root"
    deep = XMLChild(_Leaf, "a/b/leaf")


def test_views_on_a_nested_child_path_are_created_on_first_write() -> None:
    root = _Root()
    view = root.deep
    assert not view.exists and view.name is None
    assert root.to_xml() == "<root />"
    view.name = "x"
    assert root.to_xml() == '<root><a><b><leaf name="x" /></b></a></root>'
    assert root.deep.name == "x" and root.deep.exists
    root.deep = None
    assert root.to_xml() == "<root><a><b /></a></root>"
