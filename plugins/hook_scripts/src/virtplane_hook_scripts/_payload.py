"""A script's edit of the payload: whether it may replace the payload, and what it changed.

:func:`payload_problem` judges the text :func:`virtplane_hook_scripts.runner.read_back`
read (same kind of JSON, well-formed XML keeping its root, a domain's name and uuid,
a device's alias); :func:`diff_lines` shows the edit of pretty-printed payloads.
:mod:`virtplane_hook_scripts.runner` re-exports the public names.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import TYPE_CHECKING, Any

from virtplane.errors import InvalidInput

if TYPE_CHECKING:
    from xml.etree import ElementTree as ET


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def payload_problem(text: str, original: str, kind: str) -> str | None:
    """Why ``text``, a script's edit of ``original``, must not replace it; or None.

    ``kind``: ``"json"`` (it must parse to the same kind of value, object or array,
    without NaN or Infinity, its strings characters XML can hold), ``"xml"``
    (well-formed, no DOCTYPE, the same root element; a ``<domain>`` keeps its
    ``<name>`` and ``<uuid>``, a device its ``<alias>``), anything else (only
    the checks of :func:`read_back`).
    """
    if kind == "json":
        try:
            value = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            return f"it is not JSON: {exc}"
        want = type(json.loads(original)) if original.strip() else dict
        if not isinstance(value, want):
            return (
                f"it is a JSON {_json_kind(value)}; the point hands scripts a JSON "
                f"{_json_kind(want())} and takes one back"
            )
        return _unxmlable(value)
    if kind != "xml":
        return None
    try:
        root = parse_xml(text)
    except InvalidInput as exc:
        return str(exc)
    try:
        old = parse_xml(original)
    except InvalidInput:
        return None  # nothing to compare with
    if root.tag != old.tag:
        return f"its root element is <{root.tag}>; it must stay <{old.tag}>"
    if old.tag == "domain":
        for child in ("name", "uuid"):
            was, now = old.findtext(child), root.findtext(child)
            if was is not None and (now or "").strip() != was.strip():
                return (
                    f"it changes the domain's <{child}> from {was!r} to {now!r}; "
                    "the domain must keep the VM's"
                )
        return None
    # a device is found again (unplug, its device points) by its alias, exactly
    alias = old.find("alias")
    was = None if alias is None else alias.get("name")
    if was is not None:
        node = root.find("alias")
        now = None if node is None else node.get("name")
        if now != was:
            return (
                f"it changes the device's <alias name=...> from {was!r} to {now!r}; "
                "virtplane finds the device by it"
            )
    return None


#: a character XML 1.0 cannot hold (control characters, lone surrogates, U+FFFE/F)
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _unxmlable(value: Any) -> str | None:
    """Why a JSON value cannot be used, or None: its strings (keys too) go into
    libvirt's XML (a prepared disk's path) and the REST API's, so each must be
    characters XML can hold. Walked without recursion (the value may be deep)."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, str):
            bad = _NOT_XML_CHAR.search(item)
            if bad is not None:
                return (
                    f"the string {item[:40]!r} holds {bad.group()!r}, a character XML "
                    "cannot hold (it would reach libvirt's XML)"
                )
    return None


def parse_xml(text: str) -> ET.Element:
    """``text`` parsed by the core's parser (:class:`virtplane.domxml.XMLElement`),
    which refuses a DOCTYPE rather than expand its entities; :class:`InvalidInput`
    when it does not parse."""
    from virtplane.domxml import XMLElement

    try:
        return XMLElement.from_xml(text).element
    except InvalidInput as exc:  # an untyped view's message says "<> XML"
        raise InvalidInput(str(exc).replace("<> XML", "the XML", 1)) from None


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def pretty_lines(text: str, json_payload: bool = False) -> list[str]:
    """``text`` one element (or JSON member) a line, indented, so that a diff of two
    payloads shows what changed rather than one changed line holding the whole
    document (libvirt and hook scripts often write XML on a single line). Text that
    does not parse is split as it is."""
    if json_payload:
        import json

        try:
            return json.dumps(json.loads(text), indent=2).splitlines()
        except ValueError:
            return text.splitlines()
    from xml.dom import minidom
    from xml.parsers.expat import ExpatError

    try:
        root = minidom.parseString(text).documentElement
    except ExpatError:
        return text.splitlines()
    if root is None:
        return text.splitlines()
    _strip_blank_text(root)
    lines = root.toprettyxml(indent="  ").splitlines()
    return [line for line in lines if line.strip()]


def _strip_blank_text(node: Any) -> None:
    """Drop whitespace-only text nodes (the old indentation), which toprettyxml would
    otherwise indent again."""
    for child in list(node.childNodes):
        if child.nodeType == child.TEXT_NODE and not child.data.strip():
            node.removeChild(child)
        elif child.nodeType == child.ELEMENT_NODE:
            _strip_blank_text(child)


def diff_lines(before: str, after: str, name: str, json_payload: bool = False) -> list[str]:
    """The unified diff of one script's edit, of pretty-printed payloads."""
    return list(
        difflib.unified_diff(
            pretty_lines(before, json_payload),
            pretty_lines(after, json_payload),
            "before",
            name,
            lineterm="",
        )
    )
