"""Reasons a filter gives, with the one fact the scheduler needs to act on them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class Reason(str):
    """A filter's reason (a plain ``str`` to everyone else).

    ``pending_only`` says the host was dropped only because of resources held for
    VMs that were placed a moment ago and are still starting: the decision then
    says a retry shortly may succeed (oVirt's ``RunVmDelayer``).
    """

    pending_only: bool

    def __new__(cls, text: str, pending_only: bool = False) -> Reason:
        self = super().__new__(cls, text)
        self.pending_only = pending_only
        return self


def names(ids: Iterable[str], by_id: Mapping[str, Any] | None = None) -> str:
    """Sorted, comma-separated host or VM names (ids where the name is unknown)."""
    out = []
    for i in ids:
        obj = (by_id or {}).get(i)
        out.append(str(getattr(obj, "name", i)))
    return ", ".join(sorted(out)) or "none"
