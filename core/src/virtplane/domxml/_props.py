"""Declarative XML mapping on :mod:`xml.etree.ElementTree`, in virtinst's spirit.

A class per XML element (:class:`XMLElement`) declares what it understands with
descriptors: :class:`XMLProperty` (and its typed siblings) for an attribute or
the text at a relative path, :class:`XMLFlag` for an empty marker element
(``<readonly/>``), :class:`XMLChild` for one sub-element and
:class:`XMLChildren` for a list of them. An instance is a *view* over an
ElementTree element, never a copy, so whatever the classes do not model
(unknown elements, attributes, comments) stays in the tree and survives a
parse -> edit -> serialise round trip. Reading never creates elements; the
first write creates the missing path.

Why not a dict (the 1.x ``xmltodict`` form): a dict changes shape with its
content (one ``<disk>`` is a dict, two are a list), so every reader had to
guess; typed properties make the plugin contract checkable by mypy.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Generic, Self, TypeVar, overload

from virtplane.errors import InvalidInput

T = TypeVar("T")
E = TypeVar("E", bound="XMLElement")

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


def _split(path: str) -> tuple[list[str], str | None]:
    """``"target/@dev"`` -> (["target"], "dev"); ``"model"`` -> (["model"], None);
    ``"@type"`` -> ([], "type"); ``"."`` -> ([], None)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    attr = None
    if parts and parts[-1].startswith("@"):
        attr = parts.pop()[1:]
    return parts, attr


def _walk(elem: ET.Element, steps: list[str], create: bool) -> ET.Element | None:
    node = elem
    for step in steps:
        nxt = node.find(step)
        if nxt is None:
            if not create:
                return None
            nxt = ET.SubElement(node, step)
        node = nxt
    return node


def _prune(elem: ET.Element, steps: list[str]) -> None:
    """Remove now-empty elements along ``steps`` (deepest first), so clearing a
    property does not leave ``<target/>`` behind."""
    chain = [elem]
    for step in steps:
        nxt = chain[-1].find(step)
        if nxt is None:
            return
        chain.append(nxt)
    for parent, child in reversed(list(zip(chain, chain[1:], strict=False))):
        if len(child) or child.attrib or (child.text or "").strip():
            return
        parent.remove(child)


class XMLElement:
    """A view over one element; subclasses set :attr:`TAG` and declare descriptors.

    ``XMLElement()`` makes a new detached element; ``XMLElement(elem)`` wraps an
    existing one. A view handed out by :class:`XMLChild` may stand for an element
    that does not exist yet: it is created (with its path) on the first write.
    """

    TAG: ClassVar[str] = ""

    def __init__(self, element: ET.Element | None = None) -> None:
        if element is not None and self.TAG and element.tag != self.TAG:
            raise InvalidInput(f"a {type(self).__name__} wraps <{self.TAG}>, not <{element.tag}>")
        self._element: ET.Element | None = (element if element is not None
                                            else ET.Element(self.TAG))
        self._parent: XMLElement | None = None
        self._path: list[str] = []

    @classmethod
    def _lazy(cls, parent: XMLElement, steps: list[str]) -> Self:
        """A view of the element at ``steps`` below ``parent`` (which may not exist yet)."""
        view = cls.__new__(cls)
        view._parent, view._path = parent, steps
        found = parent._node(False)
        view._element = None if found is None else _walk(found, steps, False)
        return view

    def _node(self, create: bool) -> ET.Element | None:
        node = self._element
        if node is None and self._parent is not None:
            base = self._parent._node(create)
            if base is not None:
                node = self._element = _walk(base, self._path, create)
        return node

    @property
    def element(self) -> ET.Element:
        """The underlying element (created, with its path, if it did not exist)."""
        node = self._element
        if node is None:
            node = self._node(True)
            assert node is not None
        return node

    @property
    def exists(self) -> bool:
        """Whether the element is in the tree (a lazy view may not be yet)."""
        return self._node(False) is not None

    def get(self, name: str) -> str | None:
        """An attribute not modelled by a property (escape hatch, like ``Element.get``)."""
        node = self._node(False)
        return None if node is None else node.get(name)

    def set(self, name: str, value: str | None) -> None:
        """Set (or, with None, remove) an attribute not modelled by a property."""
        if value is None:
            node = self._node(False)
            if node is not None:
                node.attrib.pop(name, None)
        else:
            self.element.set(name, value)

    def to_xml(self) -> str:
        """The element as compact XML text."""
        node = self._node(False)
        if node is None:
            return f"<{self.TAG} />"
        compact(node)
        return serialise(node)

    @classmethod
    def from_xml(cls, xml: str) -> Self:
        """A view over freshly parsed XML text (bad XML: InvalidInput)."""
        return cls(parse_element(xml, f"<{cls.TAG}> XML"))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_xml()})"


class _Prop(Generic[T]):
    """Attribute (``"target/@dev"``) or text (``"model"``, ``"."``) at a relative path."""

    def __init__(self, path: str, doc: str = "") -> None:
        self.path = path
        self.steps, self.attr = _split(path)
        self.__doc__ = doc or f"``{path}``"
        self.name = path

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def decode(self, text: str, owner: XMLElement) -> T:
        raise NotImplementedError

    def encode(self, value: T) -> str:
        raise NotImplementedError

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...
    @overload
    def __get__(self, obj: XMLElement, owner: type) -> T | None: ...
    def __get__(self, obj: XMLElement | None, owner: type) -> Self | T | None:
        if obj is None:
            return self
        node = obj._node(False)
        if node is not None and self.steps:
            node = _walk(node, self.steps, False)
        if node is None:
            return None
        text = node.get(self.attr) if self.attr else node.text
        return None if text is None else self.decode(text, obj)

    def __set__(self, obj: XMLElement, value: T | None) -> None:
        if value is None:
            self._clear(obj)
            return
        node = obj._element
        if node is None:
            node = obj.element
        if self.steps:
            node = _walk(node, self.steps, True)
            assert node is not None
        if self.attr:
            node.set(self.attr, self.encode(value))
        else:
            node.text = self.encode(value)

    def _clear(self, obj: XMLElement) -> None:
        """Remove the attribute or text, and the elements of the path it leaves empty."""
        base = obj._node(False)
        node = None if base is None else _walk(base, self.steps, False)
        if node is None or base is None:
            return
        if self.attr:
            node.attrib.pop(self.attr, None)
        else:
            node.text = None
        if self.steps:
            _prune(base, self.steps)

    def _bad(self, text: str, owner: XMLElement, allowed: str) -> InvalidInput:
        return InvalidInput(f"<{owner.TAG}> {self.path} is {text!r}; allowed: {allowed}")


class XMLProperty(_Prop[str]):
    """A string attribute or text."""

    def decode(self, text: str, owner: XMLElement) -> str:
        return text

    def encode(self, value: str) -> str:
        if not isinstance(value, str):
            raise InvalidInput(f"{self.name} must be a string, not {type(value).__name__}")
        return value


class XMLIntProperty(_Prop[int]):
    """An integer attribute or text; ``0x`` hex is read too (``reg='0x2000'``)."""

    def __init__(self, path: str, doc: str = "", *, hex: bool = False) -> None:
        super().__init__(path, doc)
        self.hex = hex

    def decode(self, text: str, owner: XMLElement) -> int:
        try:
            return int(text, 0)
        except ValueError:
            raise self._bad(text, owner, "an integer") from None

    def encode(self, value: int) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{self.name} must be an integer, not {value!r}")
        return hex(value) if self.hex else str(value)


class XMLBoolProperty(_Prop[bool]):
    """A boolean written ``yes``/``no`` (``style="yesno"``) or ``on``/``off``."""

    STYLES: ClassVar[dict[str, tuple[str, str]]] = {"yesno": ("yes", "no"),
                                                    "onoff": ("on", "off")}

    def __init__(self, path: str, doc: str = "", *, style: str = "yesno") -> None:
        super().__init__(path, doc)
        if style not in self.STYLES:
            raise ValueError(f"style {style!r}; allowed: {', '.join(self.STYLES)}")
        self.true, self.false = self.STYLES[style]

    def decode(self, text: str, owner: XMLElement) -> bool:
        if text == self.true:
            return True
        if text == self.false:
            return False
        raise self._bad(text, owner, f"{self.true}, {self.false}")

    def encode(self, value: bool) -> str:
        if not isinstance(value, bool):
            raise InvalidInput(f"{self.name} must be True or False, not {value!r}")
        return self.true if value else self.false


class XMLFlag:
    """An empty marker element whose presence means True (``<readonly/>``, ``<acpi/>``)."""

    def __init__(self, path: str, doc: str = "") -> None:
        self.steps, attr = _split(path)
        if attr or not self.steps:
            raise ValueError(f"a flag is an element path, not {path!r}")
        self.__doc__ = doc or f"``<{path}/>`` present"

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...
    @overload
    def __get__(self, obj: XMLElement, owner: type) -> bool: ...
    def __get__(self, obj: XMLElement | None, owner: type) -> Self | bool:
        if obj is None:
            return self
        base = obj._node(False)
        return base is not None and _walk(base, self.steps, False) is not None

    def __set__(self, obj: XMLElement, value: bool) -> None:
        if value:
            _walk(obj.element, self.steps, True)
            return
        base = obj._node(False)
        if base is None:
            return
        parent = _walk(base, self.steps[:-1], False)
        node = None if parent is None else parent.find(self.steps[-1])
        if parent is not None and node is not None:
            parent.remove(node)


class XMLChild(Generic[E]):
    """One sub-element as a view of class ``cls`` (lazy: created on first write).

    Assigning an instance replaces the sub-element; assigning None removes it.
    """

    def __init__(self, cls: type[E], path: str | None = None) -> None:
        self.cls = cls
        self.path = path or cls.TAG
        self.steps = _split(self.path)[0]

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...
    @overload
    def __get__(self, obj: XMLElement, owner: type) -> E: ...
    def __get__(self, obj: XMLElement | None, owner: type) -> Self | E:
        if obj is None:
            return self
        return self.cls._lazy(obj, self.steps)

    def __set__(self, obj: XMLElement, value: E | None) -> None:
        steps = self.steps
        base = obj._node(value is not None)
        parent = None if base is None else _walk(base, steps[:-1], value is not None)
        if parent is None:
            return
        old = parent.find(steps[-1])
        if value is None:
            if old is not None:
                parent.remove(old)
            return
        new = value.element
        if old is not None:
            parent.insert(list(parent).index(old), new)
            parent.remove(old)
        else:
            parent.append(new)


class XMLChildren(Generic[E]):
    """Every sub-element with ``cls.TAG`` (under ``path``), as views of ``cls``.

    ``factory`` picks a subclass per element (``<disk device='cdrom'>`` -> Cdrom).
    """

    def __init__(self, cls: type[E], path: str = "",
                 factory: Callable[[ET.Element], E] | None = None) -> None:
        self.cls = cls
        self.steps = _split(path)[0]
        self.factory = factory or cls

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...
    @overload
    def __get__(self, obj: XMLElement, owner: type) -> list[E]: ...
    def __get__(self, obj: XMLElement | None, owner: type) -> Self | list[E]:
        if obj is None:
            return self
        return list(self.iter(obj))

    def iter(self, obj: XMLElement) -> Iterator[E]:
        base = obj._node(False)
        parent = None if base is None else _walk(base, self.steps, False)
        if parent is None:
            return
        for child in parent.findall(self.cls.TAG):
            yield self.factory(child)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as xmltodict writes them
    return str(value)


def _namespaced(key: str) -> bool:
    return ":" in key


def _fill(elem: ET.Element, body: Any) -> None:
    if body is None:
        return
    if not isinstance(body, dict):
        elem.text = _text(body)
        return
    for key, value in body.items():
        if key.startswith("@"):
            elem.set(key[1:], _text(value))
        elif key == "#text":
            elem.text = _text(value)
        else:
            for item in value if isinstance(value, list) else [value]:
                _fill(ET.SubElement(elem, key), item)


def _has_namespaces(body: Any) -> bool:
    if isinstance(body, list):
        return any(_has_namespaces(b) for b in body)
    if isinstance(body, dict):
        return any(_namespaced(k) or _has_namespaces(v) for k, v in body.items())
    return False


def element_from_dict(tag: str, body: Any) -> ET.Element:
    """An element from its xmltodict form (``{"@file": "/x"}``), for 1.x dict inputs.

    Built directly (xmltodict's unparse + a parse cost ~10x more per VM); a dict with
    namespaced names (``ovirt-vm:vm``, ``@xmlns:...``) goes through xmltodict, which
    resolves the prefixes."""
    if _namespaced(tag) or _has_namespaces(body):
        import xmltodict

        return parse_element(str(xmltodict.unparse({tag: body}, full_document=False)),
                             f"<{tag}> element")
    elem = ET.Element(tag)
    _fill(elem, body)
    return elem


def element_to_dict(elem: ET.Element, force_list: tuple[str, ...] = ()) -> Any:
    """An element's xmltodict form (what ``xmltodict.parse`` gives for it): ``@attr``
    keys, ``#text``, repeated children as lists (always for ``force_list`` tags),
    a bare element as its text or None. Comments are dropped, as xmltodict does.
    Namespaced trees go through xmltodict (prefixes, not ``{uri}`` names)."""
    if any(isinstance(e.tag, str) and e.tag.startswith("{") for e in elem.iter()):
        import xmltodict

        compact(elem)
        return xmltodict.parse(serialise(elem), force_list=force_list)[elem.tag]
    return _to_dict(elem, force_list)


def _to_dict(elem: ET.Element, force_list: tuple[str, ...]) -> Any:
    children = [c for c in elem if isinstance(c.tag, str)]
    text = (elem.text or "").strip()
    if not elem.attrib and not children:
        return text or None
    out: dict[str, Any] = {"@" + k: v for k, v in elem.attrib.items()}
    for child in children:
        value = _to_dict(child, force_list)
        tag = str(child.tag)
        if tag in out:
            if isinstance(out[tag], list):
                out[tag].append(value)
            else:
                out[tag] = [out[tag], value]
        else:
            out[tag] = [value] if tag in force_list else value
    if text:
        out["#text"] = text
    return out
