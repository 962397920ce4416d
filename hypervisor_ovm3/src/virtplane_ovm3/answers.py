"""Checks on what an OVM3 agent answers: everything it sends is untrusted input.

A malformed or hostile answer (a wrong type, a missing field, a huge or negative
number, a string where a list belongs, a path or id that could leave its
directory, duplicates) ends in :class:`BadAnswer` naming the agent, the call and
what was wrong, in one line; never in a traceback, and never used.
"""

from __future__ import annotations

import math
import re
import uuid as uuidlib
from typing import Any

from virtplane.errors import HypervisorError

#: longest piece of an agent's text quoted in a message
QUOTE = 160
_HEX32 = re.compile(r"[0-9a-f]{32}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class BadAnswer(HypervisorError):
    """The agent answered something malformed or hostile (nothing of it was used)."""


def quote(value: Any, limit: int = QUOTE) -> str:
    """``value`` as one printable line of at most ``limit`` characters (for messages)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > 4 * limit:
        text = text[:4 * limit]
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(out) > limit:
        out = out[:limit] + f"... ({len(text)} characters)"
    return out


def bad(where: str, what: str) -> BadAnswer:
    return BadAnswer(f"{where} answered wrongly: {what}")


def struct(value: Any, where: str, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(where, f"{field} is {type(value).__name__} {quote(value)}, not a struct")
    return value


def array(value: Any, where: str, field: str, limit: int = 10000) -> list[Any]:
    if not isinstance(value, list):
        raise bad(where, f"{field} is {type(value).__name__} {quote(value)}, not an array")
    if len(value) > limit:
        raise bad(where, f"{field} has {len(value)} entries (at most {limit} are taken)")
    return value


def text(value: Any, where: str, field: str, limit: int = 1024) -> str:
    """A single-line string of at most ``limit`` characters."""
    if not isinstance(value, str):
        raise bad(where, f"{field} is {type(value).__name__} {quote(value)}, not a string")
    if len(value) > limit:
        raise bad(where, f"{field} is {len(value)} characters long (at most {limit})")
    if not value.isprintable():
        raise bad(where, f"{field} {quote(value)} holds control characters")
    return value


def count(value: Any, where: str, field: str, lo: int, hi: int) -> int:
    """A whole number in ``lo..hi``, given as an integer or its decimal digits."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise bad(where, f"{field} is {type(value).__name__} {quote(value)}, not a whole "
                         "number")
    if isinstance(value, str):
        s = value.strip()
        if not re.fullmatch(r"[+-]?[0-9]{1,20}", s):
            raise bad(where, f"{field} is {quote(value)}, not a whole number")
        value = int(s)
    number = int(value)
    if not lo <= number <= hi:
        raise bad(where, f"{field} is {number}, outside {lo}..{hi}")
    return number


def number(value: Any, where: str, field: str, lo: float, hi: float) -> float:
    """A finite number in ``lo..hi``, given as a number or its text."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise bad(where, f"{field} is {type(value).__name__} {quote(value)}, not a number")
    try:
        f = float(value) if not isinstance(value, str) or len(value) <= 40 else math.nan
    except (ValueError, OverflowError):
        raise bad(where, f"{field} is {quote(value)}, not a number") from None
    if not (math.isfinite(f) and lo <= f <= hi):
        raise bad(where, f"{field} is {quote(value)}, not a finite number in {lo:g}..{hi:g}")
    return f


def uuid(value: Any, where: str, field: str) -> str:
    """A UUID in its canonical dashed form (as the agent names VMs)."""
    s = text(value, where, field, 64)
    try:
        canonical = str(uuidlib.UUID(s))
    except ValueError:
        canonical = ""
    if canonical != s.lower() or not canonical:
        raise bad(where, f"{field} {quote(s)} is not a UUID")
    return s


def repo_id(value: Any, where: str, field: str) -> str:
    """A repository id: a UUID, dashes removed (it names ``/OVS/Repositories/<id>``)."""
    s = text(value, where, field, 64).replace("-", "").lower()
    if not _HEX32.fullmatch(s):
        raise bad(where, f"{field} {quote(value)} is not a repository UUID")
    return s


def config(value: Any, where: str) -> dict[str, Any]:
    """A VM config struct read back (``get_vm_config``): keys are plain names (each
    becomes a ``key = value`` line of vm.cfg), values literals no deeper than 4."""
    cfg = struct(value, where, "the VM config")
    if len(cfg) > 500:
        raise bad(where, f"the VM config has {len(cfg)} keys")
    for key, v in cfg.items():
        if not (isinstance(key, str) and _IDENT.fullmatch(key)):
            raise bad(where, f"VM config key {quote(key)} is not a plain name")
        _literal(v, where, f"VM config {key}", 0)
    for key in ("vif", "disk", "vfb"):
        if key in cfg:
            for i, entry in enumerate(array(cfg[key], where, f"VM config {key}", 64)):
                text(entry, where, f"VM config {key}[{i}]", 1024)
    return cfg


def _literal(v: Any, where: str, field: str, depth: int) -> None:
    if depth > 4:
        raise bad(where, f"{field} is nested too deeply")
    if v is None or isinstance(v, bool | int | str):
        if isinstance(v, str) and len(v) > 4096:
            raise bad(where, f"{field} is {len(v)} characters long")
        return
    if isinstance(v, float):
        if not math.isfinite(v):
            raise bad(where, f"{field} is {v}")
        return
    if isinstance(v, list):
        for i, x in enumerate(array(v, where, field, 256)):
            _literal(x, where, f"{field}[{i}]", depth + 1)
        return
    if isinstance(v, dict):
        for k, x in v.items():
            _literal(x, where, f"{field}.{quote(k, 40)}", depth + 1)
        return
    raise bad(where, f"{field} is {type(v).__name__} {quote(v)}")
