"""Read request bodies (XML from the SDK, JSON from other clients) into the same tree.

The SDK writes entities with ``id``/``href`` as attributes, references as nested
elements holding only an id or only a name, lists as a plural element of
singular items, and, when it sends back an object it read, read-only elements
and empty list elements carrying hrefs (docs/api-ovirt.md, "Request bodies").
Readers therefore look up only what they need and ignore everything else.

XML is untrusted: a document type declaration (the door to entity expansion)
is refused, and so is a body larger than :data:`MAX_BODY` or nested deeper than
:data:`MAX_DEPTH` (the readers recurse).
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree

from virtplane.errors import InvalidInput
from virtplane_api_ovirt.render import Node, singular

#: the largest request body read (bytes); entities are small, uploads go elsewhere
MAX_BODY = 4 << 20
#: the deepest nesting of elements (or JSON objects and arrays) read; entities nest a few
MAX_DEPTH = 64
_TOO_DEEP = f"the request body nests deeper than {MAX_DEPTH} levels"
#: characters XML 1.0 cannot carry (an XML body cannot hold them either): control
#: characters other than tab and line ends, lone surrogates, U+FFFE and U+FFFF
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _element(elem: ElementTree.Element, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise InvalidInput(_TOO_DEEP)
    children = list(elem)
    if not children:
        if elem.attrib:
            return {k: v for k, v in elem.attrib.items() if k in ("id", "href")}
        return elem.text or ""
    item = singular(elem.tag)
    if item != elem.tag and all(c.tag == item for c in children):
        return [_element(c, depth + 1) for c in children]
    node: Node = {k: v for k, v in elem.attrib.items() if k in ("id", "href")}
    for child in children:
        node[child.tag] = _element(child, depth + 1)
    return node


def xml_body(data: bytes) -> tuple[str, Node]:
    """(root tag, tree) of an XML request body."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise InvalidInput("XML document type declarations are not accepted")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise InvalidInput(f"the request body is not well-formed XML: {exc}") from None
    if "}" in root.tag:
        raise InvalidInput("XML namespaces are not used by this API")
    value = _element(root)
    return root.tag, value if isinstance(value, dict) else {}


def _from_json(key: str, value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise InvalidInput(_TOO_DEEP)
    if isinstance(value, dict):
        item = singular(key)
        if item != key and set(value) == {item} and isinstance(value[item], list):
            return [_from_json(item, v, depth + 1) for v in value[item]]
        return {k: _from_json(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(singular(key), v, depth + 1) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        bad = NOT_XML.search(value)
        if bad is not None:  # stored, it would make every XML reply showing it unreadable
            raise InvalidInput(f"<{key}> contains the character {bad.group()!r}, which XML "
                               "cannot carry: control characters other than tab and line "
                               "ends are not allowed")
        return value
    return "" if value is None else str(value)


def json_body(data: bytes) -> Node:
    """The tree of a JSON request body (oVirt's JSON shape, or plain lists)."""
    import json

    try:
        value = json.loads(data)
    except ValueError as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:  # the decoder's own limit, below any reasonable entity
        raise InvalidInput(_TOO_DEEP) from None
    if not isinstance(value, dict):
        raise InvalidInput("a JSON request body must be an object")
    return {k: _from_json(k, v) for k, v in value.items()}


# ----------------------------------------------------------- typed readers


def text(node: Node | None, *path: str) -> str | None:
    """The text at ``path`` (``text(body, "cluster", "name")``), or None when absent."""
    value: Any = node
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def integer(node: Node | None, *path: str) -> int | None:
    """An integer at ``path``; a malformed one is a 400 naming the element."""
    value = text(node, *path)
    if value is None or value == "":
        return None
    return int64(value, f"<{'/'.join(path)}>")


#: the integers the state store holds (SQLite's INTEGER) and libvirt takes
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1


def int64(value: str, what: str) -> int:
    """``value`` as an integer the store can hold; else a 400 naming ``what``."""
    try:
        number = int(value)
    except ValueError:  # also more than 4300 digits: shown shortened
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise InvalidInput(f"{what} must be an integer, not {shown!r}") from None
    if not INT_MIN <= number <= INT_MAX:
        raise InvalidInput(f"{what} must be an integer from {INT_MIN} to {INT_MAX}, "
                           f"not {number}")
    return number


def boolean(node: Node | None, *path: str) -> bool | None:
    """A boolean at ``path`` (``true``/``false``/``1``/``0``, any case)."""
    value = text(node, *path)
    if value is None or value == "":
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise InvalidInput(f"<{'/'.join(path)}> must be true or false, not {value!r}")


def child(node: Node | None, key: str) -> Node | None:
    """A nested element as a tree, or None."""
    if not isinstance(node, dict):
        return None
    value = node.get(key)
    return value if isinstance(value, dict) else None


def items(node: Node | None, key: str) -> list[Any]:
    """The items of a list element (empty when absent)."""
    if not isinstance(node, dict):
        return []
    value = node.get(key)
    return value if isinstance(value, list) else []


def ref(node: Node | None, key: str) -> str | None:
    """A reference by id or by name (``<cluster id=..>`` or ``<cluster><name>..``):
    the id when given, else the name; virtplane's lookups take either."""
    target = child(node, key)
    if target is None:
        return None
    return text(target, "id") or text(target, "name") or None
