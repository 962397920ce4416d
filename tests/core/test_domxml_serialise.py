"""The domain XML writer (:func:`virtplane.domxml._props.serialise`) writes exactly what
ElementTree writes, for plain trees (its own fast path) and for the rest (ElementTree)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from virtplane.domxml._xmltext import NAMESPACES, parse_element, serialise

# names and text with everything the escaping must handle
NAMES = st.sampled_from(["domain", "disk", "a", "source", "entry", "x-y", "n.1"])
TEXT = st.text(alphabet="ab &<>\"'\r\n\t\u00e9", max_size=8)


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> ET.Element:
    elem = ET.Element(draw(NAMES))
    for key in draw(st.lists(NAMES, max_size=3, unique=True)):
        elem.set(key, draw(TEXT))
    elem.text = draw(st.none() | TEXT)
    if depth < 3:
        for child in draw(st.lists(trees(depth + 1), max_size=3)):
            child.tail = draw(st.none() | TEXT)
            elem.append(child)
    return elem


def reference(elem: ET.Element) -> str:
    return ET.tostring(elem, encoding="unicode", short_empty_elements=True)


@settings(max_examples=300, deadline=None)
@given(trees())
def test_plain_trees_are_written_as_elementtree_writes_them(elem: ET.Element) -> None:
    assert serialise(elem) == reference(elem)


def test_escapes_in_attributes_and_text() -> None:
    elem = ET.Element("entry", {"name": 'a"b<c>&\n\t\r'})
    elem.text = "x<y>&z\n"
    elem.tail = " & "
    written = serialise(elem)
    assert written == ('<entry name="a&quot;b&lt;c&gt;&amp;&#10;&#09;&#13;">'
                       "x&lt;y&gt;&amp;z\n</entry> &amp; ")
    assert written == reference(elem)


def test_empty_elements_and_empty_text() -> None:
    elem = ET.Element("devices")
    ET.SubElement(elem, "acpi")
    ET.SubElement(elem, "serial").text = ""
    assert serialise(elem) == "<devices><acpi /><serial /></devices>" == reference(elem)


def test_namespaces_comments_and_processing_instructions_go_to_elementtree() -> None:
    xml = (f'<domain type="kvm" xmlns:ovirt-vm="{NAMESPACES["ovirt-vm"]}">'
           "<!-- a hook was here --><?pi data?><metadata><ovirt-vm:vm>"
           "<ovirt-vm:x>1</ovirt-vm:x></ovirt-vm:vm></metadata></domain>")
    elem = parse_element(xml)
    written = serialise(elem)
    assert written == reference(elem)
    assert "<ovirt-vm:x>1</ovirt-vm:x>" in written
    assert "<!-- a hook was here -->" in written and "<?pi data?>" in written
