"""XML text in and out for the domain element layer: a parse that keeps comments and
refuses document type declarations, and a serialiser that writes what ElementTree
writes, faster (the usual domain has no namespaces, so a plain writer does).

Namespace prefixes oVirt's tools look for are registered here, once.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from virtplane.errors import InvalidInput

#: Namespace prefixes kept as written when live XML is re-serialised (hooks and
#: oVirt tools look for ``ovirt-vm:`` etc. by prefix).
NAMESPACES = {
    "ovirt-tune": "http://ovirt.org/vm/tune/1.0",
    "ovirt-vm": "http://ovirt.org/vm/1.0",
    "libosinfo": "http://libosinfo.org/xmlns/libvirt/domain/1.0",
    "qemu": "http://libvirt.org/schemas/domain/qemu/1.0",
}
for _prefix, _uri in NAMESPACES.items():
    ET.register_namespace(_prefix, _uri)


class _Doctype(Exception):
    """Raised by the expat handler that meets a document type declaration."""


def _refuse_doctype(*_args: Any) -> None:
    raise _Doctype


def _has_doctype(xml: str) -> bool:
    """Whether ``xml`` has a document type declaration (where entities are declared).

    Only text holding ``<!DOCTYPE`` (a DOCTYPE must be written in capitals) is parsed
    for it, by a bare expat parser whose handler stops at the declaration itself,
    before any entity declared in it is read, let alone expanded. The text may also
    be found in a comment or a CDATA section, which the parse tells apart."""
    if "<!DOCTYPE" not in xml:
        return False
    from xml.parsers import expat

    probe = expat.ParserCreate()
    probe.StartDoctypeDeclHandler = _refuse_doctype
    try:
        probe.Parse(xml, True)
    except _Doctype:
        return True
    except expat.ExpatError:
        return False  # not well-formed before any DOCTYPE: the real parse says so
    return False


def parse_element(xml: str, what: str = "XML") -> ET.Element:
    """Parse XML text keeping comments and processing instructions (hooks add them).

    A document type declaration is refused (:class:`InvalidInput`): libvirt XML never
    has one, and ElementTree expands the entities it declares (a "billion laughs"
    document grows to gigabytes; an external entity names a file or URL)."""
    if _has_doctype(xml):
        raise InvalidInput(f"{what} has a document type declaration (<!DOCTYPE ...>); "
                           "libvirt XML has none, and its entities are not expanded")
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True, insert_pis=True))
    try:
        parser.feed(xml)
        root: ET.Element = parser.close()
    except ET.ParseError as exc:
        raise InvalidInput(f"{what} is not well-formed XML: {exc}") from None
    return root


def compact(elem: ET.Element) -> None:
    """Drop indentation: whitespace-only text of elements that have children, and
    whitespace-only tails. Text of leaf elements is content and stays."""
    for node in elem.iter():
        if len(node) and node.text is not None and not node.text.strip():
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None


def serialise(elem: ET.Element) -> str:
    """The element as compact text, exactly as ``ET.tostring(elem, "unicode")`` writes it.

    Domain XML is written on every start; ElementTree's writer first walks the whole
    tree for namespaces and then writes through a generic stream. A tree of plain
    elements (no namespaced names, comments or processing instructions, only string
    text and attributes) is written here in one pass (about 3x faster); anything
    else goes to ElementTree. Values are written as they are and checked for
    characters to escape all at once afterwards; the rare tree that has some is
    written again, escaping each value. ``tests/core/test_domxml_serialise.py``
    holds both equal.
    """
    out: list[str] = []
    values: list[str] = []
    if not _plain(elem, out, values):
        return ET.tostring(elem, encoding="unicode", short_empty_elements=True)
    if _TO_ESCAPE.search("".join(values)) is not None:
        out.clear()
        _plain(elem, out, None)
    return "".join(out)


#: any character :func:`escape_attr` or :func:`escape_text` replaces
_TO_ESCAPE = re.compile('[&<>"\r\n\t]')


def escape_text(text: str) -> str:
    """XML character data escaped as ElementTree escapes it (``&``, ``<``, ``>``)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def escape_attr(text: str) -> str:
    """An attribute value escaped as ElementTree escapes it (also ``"``, CR, LF, tab)."""
    text = escape_text(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


def _plain(elem: ET.Element, out: list[str], values: list[str] | None) -> bool:
    """Append ``elem`` written out to ``out``; False (``out`` then unusable) when the
    tree holds something only ElementTree writes right. Attribute values and text are
    escaped when ``values`` is None, else written as they are and appended to
    ``values`` too (tails, rare, are always escaped)."""
    tag = elem.tag
    if type(tag) is not str or "{" in tag:
        return False
    head = "<" + tag
    for key, value in elem.attrib.items():
        if type(key) is not str or type(value) is not str or "{" in key:
            return False
        if values is None:
            value = escape_attr(value)
        else:
            values.append(value)
        head += f' {key}="{value}"'
    text = elem.text
    if text:
        if type(text) is not str:
            return False
        if values is None:
            text = escape_text(text)
        else:
            values.append(text)
    elif text is not None and type(text) is not str:
        return False
    if len(elem):
        out.append(f"{head}>{text}" if text else head + ">")
        for child in elem:
            if not _plain(child, out, values):
                return False
        out.append(f"</{tag}>")
    elif text:
        out.append(f"{head}>{text}</{tag}>")
    else:
        out.append(head + " />")
    tail = elem.tail
    if tail:
        if type(tail) is not str:
            return False
        out.append(escape_text(tail))
    return True
