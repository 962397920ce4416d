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

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import ClassVar, Generic, Self, TypeVar, overload

from virtplane.domxml._xmltext import compact, parse_element, serialise
from virtplane.errors import InvalidInput

T = TypeVar("T")
E = TypeVar("E", bound="XMLElement")


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
