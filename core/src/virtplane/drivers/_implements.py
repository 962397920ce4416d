"""Protocol checks: :func:`implements`, ``isinstance`` for runtime-checkable protocols
without its cost on Python 3.11.

Part of :mod:`virtplane.drivers`; import :func:`implements` from there.
"""

from __future__ import annotations

import abc
import sys
import typing
from typing import Any

#: per runtime protocol: its members, each with whether the protocol's is a method
_PROTOCOL_MEMBERS: dict[type, tuple[tuple[str, bool], ...]] = {}
#: (class, protocol) -> (ABC cache token, answer) for objects that lack a member
_LACKING: dict[tuple[type, type], tuple[object, bool]] = {}
_ABSENT = object()


def _protocol_members(proto: type) -> tuple[tuple[str, bool], ...]:
    members = _PROTOCOL_MEMBERS.get(proto)
    if members is None:
        if sys.version_info >= (3, 13):
            names: Any = typing.get_protocol_members(proto)
        else:  # 3.12 keeps them on the class; 3.11 works them out on every isinstance
            names = (proto.__dict__.get("__protocol_attrs__")
                     or typing._get_protocol_attrs(proto))  # type: ignore[attr-defined]
        members = tuple((n, callable(getattr(proto, n, None))) for n in sorted(names))
        _PROTOCOL_MEMBERS[proto] = members
    return members


def implements(obj: object, proto: type) -> bool:
    """``isinstance(obj, proto)`` for a runtime-checkable protocol, at a fraction of
    the cost: Python 3.11 walks the protocol's classes for its members on every check.

    The answer is ``isinstance``'s. An object with every member (a method not None)
    implements the protocol; that is looked at on the object each time, so a class
    that gains a method later is answered right. An object lacking one implements it
    only as a subclass or a registered class (``typing``'s own fallbacks): that answer
    is kept per class, until any class is registered with an ABC.

    :param proto: a :func:`~typing.runtime_checkable` protocol.
    """
    for name, method in _protocol_members(proto):
        value = getattr(obj, name, _ABSENT)
        if value is _ABSENT or (method and value is None):
            key = (type(obj), proto)
            token = abc.get_cache_token()
            known = _LACKING.get(key)
            if known is None or known[0] != token:
                known = (token, isinstance(obj, proto))
                _LACKING[key] = known
            return known[1]
    return True
