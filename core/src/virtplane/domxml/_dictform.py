"""The 1.x dict form of domain XML (xmltodict's shape: ``@attr`` keys, ``#text``,
repeated children as lists), built and read directly on ElementTree; what the 1.x
``render`` adapters and ``to_dict``/``from_dict`` use."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from virtplane.domxml._xmltext import compact, parse_element, serialise


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
