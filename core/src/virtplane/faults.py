"""Kill points: where a test may kill virtplane to prove an operation is crash-safe.

Every operation that deletes or merges records its intent before it touches a
file, and ``storage repair`` finishes (or rolls back) whatever a killed process
left (see :mod:`virtplane.services.volumes`). The fault-injection tests
(``tests/security/test_crash_safety.py``) prove it by running an operation in a
child process that dies at one kill point, then repairing and verifying, for
every kill point the operation reaches.

Kill points are the calls of a storage driver (before and after each one, named
``before <method>`` / ``after <method>``) and the explicit :func:`point` calls
between two commits of the state store. They are switched on by environment
variables read once, when this module is imported:

``VIRTPLANE_FAULT_AT``
    ``N`` kills the process (``os._exit(137)``, as SIGKILL would: no cleanup, no
    ``finally``) at the N-th kill point reached; a name kills it at the first
    kill point of that name.
``VIRTPLANE_FAULT_TRACE``
    a file to which each kill point reached is appended (``N name``), so a test
    learns how many there are.

Unset, they cost one global lookup per :func:`point`, and drivers are not
wrapped at all (:func:`wrap` returns the driver itself).
"""

from __future__ import annotations

import os
from typing import Any, Final, TypeVar

__all__ = ["ENABLED", "point", "wrap"]

T = TypeVar("T")

_AT: Final = os.environ.get("VIRTPLANE_FAULT_AT") or None
_TRACE: Final = os.environ.get("VIRTPLANE_FAULT_TRACE") or None
#: whether any kill point is live in this process
ENABLED: Final = _AT is not None or _TRACE is not None
_reached = 0


def point(name: str) -> None:
    """A kill point (a no-op unless fault injection is switched on)."""
    if ENABLED:
        _hit(name)


def _hit(name: str) -> None:
    global _reached
    _reached += 1
    if _TRACE is not None:
        with open(_TRACE, "a", encoding="utf-8") as f:
            f.write(f"{_reached} {name}\n")
    if _AT == str(_reached) or _AT == name:
        os._exit(137)


class _Faulty:
    """A storage driver whose every public method call is surrounded by two kill points.

    The methods are copied onto the instance rather than found through
    ``__getattr__``: runtime-checkable protocols (``drivers.SupportsCopy`` ...) look
    attributes up statically on newer Pythons, and must see what the driver has.
    """

    def __init__(self, driver: Any) -> None:
        for name in dir(driver):
            if name.startswith("_"):
                continue
            attr = getattr(driver, name)
            setattr(self, name, _around(name, attr) if callable(attr) else attr)


def _around(name: str, method: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        point(f"before {name}")
        result = method(*args, **kwargs)
        point(f"after {name}")
        return result

    return call


def wrap(driver: T) -> T:
    """``driver`` with kill points around its calls when fault injection is on; the
    driver itself otherwise (so production pays nothing)."""
    if not ENABLED:
        return driver
    return _Faulty(driver)  # type: ignore[return-value]
