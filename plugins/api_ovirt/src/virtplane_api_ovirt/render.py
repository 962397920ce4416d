"""Turn representation trees into XML (what the oVirt SDK reads) or JSON.

A resource is built once as a plain tree (a :data:`Node`), and rendered in the
format the client asked for, so XML and JSON can never disagree. The rules
follow what the SDK's reader accepts (docs/api-ovirt.md, "Wire format"):

- ``id`` and ``href`` are XML attributes; every other key is a child element;
- a ``None`` value is left out (the SDK reads a missing element as None, while
  an empty ``<memory/>`` would be an empty string);
- booleans are ``true``/``false`` and integers plain decimals; the SDK's reader
  raises on anything else, so nothing is ever written as ``1.0`` or ``yes``;
- a list value is a container of singular elements (``storage_domains`` holds
  ``storage_domain`` items, ``devices`` holds ``device`` strings);
- ``link`` holds ``(rel, href)`` pairs: the SDK finds list relations through
  ``<link rel="diskattachments" href=...>``;
- no XML namespaces and no declaration (the SDK understands neither as tags).

JSON has the shape oVirt's engine gives it: one object per entity, lists as
``{"storage_domain": [...]}``, links as ``[{"href":..., "rel":...}]``, and scalar
values as strings, so a client written against oVirt's JSON reads it unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from virtplane.domxml import escape_attr, escape_text

#: a representation tree: scalars, nested nodes, lists, and ``link`` pairs
Node = dict[str, Any]

#: plural -> singular where dropping the trailing "s" is wrong
_SINGULAR = {
    "addresses": "address", "properties": "property", "policies": "policy",
    "statuses": "status", "entries": "entry", "supported_versions": "version",
    "required_rng_sources": "required_rng_source", "ips": "ip", "methods": "method",
    "classes": "class", "boxes": "box", "numa_nodes": "numa_node",
}


def singular(plural: str) -> str:
    """The element name of one item of a list element (``storage_domains`` -> ``storage_domain``)."""
    found = _SINGULAR.get(plural)
    if found is not None:
        return found
    if plural.endswith("ies"):
        return plural[:-3] + "y"
    return plural[:-1] if plural.endswith("s") else plural


def _text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _write(out: list[str], tag: str, node: Node) -> None:
    head = "<" + tag
    href = node.get("href")
    if href is not None:
        head += ' href="' + escape_attr(href) + '"'
    ident = node.get("id")
    if ident is not None:
        head += ' id="' + escape_attr(str(ident)) + '"'
    body_start = len(out)
    out.append("")
    for key, value in node.items():
        if value is None or key == "id" or key == "href":
            continue
        if key == "link":
            for rel, target in value:
                out.append('<link href="' + escape_attr(target) + '" rel="' + rel + '"/>')
        elif isinstance(value, dict):
            _write(out, key, value)
        elif isinstance(value, list):
            _write_list(out, key, value)
        else:
            out.append("<" + key + ">" + escape_text(_text(value)) + "</" + key + ">")
    if len(out) == body_start + 1:
        out[body_start] = head + "/>"
    else:
        out[body_start] = head + ">"
        out.append("</" + tag + ">")


def _write_list(out: list[str], key: str, items: list[Any]) -> None:
    if not items:
        return
    item_tag = singular(key)
    out.append("<" + key + ">")
    for item in items:
        if isinstance(item, dict):
            _write(out, item_tag, item)
        else:
            out.append("<" + item_tag + ">" + escape_text(_text(item)) + "</" + item_tag + ">")
    out.append("</" + key + ">")


def xml_entity(tag: str, node: Node) -> str:
    """One entity as XML, e.g. ``xml_entity("vm", {...})``."""
    out: list[str] = []
    _write(out, tag, node)
    return "".join(out)


def xml_fragments(tag: str, nodes: Iterable[Node]) -> list[str]:
    """Each entity as its own XML string (cached per object by the collections)."""
    return [xml_entity(tag, n) for n in nodes]


def xml_collection(tag: str, fragments: Iterable[str]) -> str:
    """A collection (``<vms>...</vms>``) from rendered members."""
    body = "".join(fragments)
    return f"<{tag}>{body}</{tag}>" if body else f"<{tag}/>"


# ---------------------------------------------------------------------- JSON


def _json_value(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return json_node(value)
    if isinstance(value, list):
        item = singular(key)
        return {item: [json_node(v) if isinstance(v, dict) else _text(v) for v in value]}
    return _text(value)


def json_node(node: Node) -> dict[str, Any]:
    """One entity as a JSON-ready dict in oVirt's JSON shape."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if value is None:
            continue
        if key == "link":
            out["link"] = [{"href": href, "rel": rel} for rel, href in value]
        elif key == "id":
            out["id"] = str(value)
        else:
            out[key] = _json_value(key, value)
    return out


def json_entity(node: Node) -> str:
    return json.dumps(json_node(node), separators=(",", ":"))


def json_collection(item_tag: str, nodes: Iterable[Node]) -> str:
    """A collection as oVirt renders it: ``{"vm": [...]}`` (``{}`` when empty)."""
    items = [json_node(n) for n in nodes]
    return json.dumps({item_tag: items} if items else {}, separators=(",", ":"))
