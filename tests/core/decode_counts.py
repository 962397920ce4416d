"""Counting what the state store parses: the tests of the store's owner index check that
a question about one VM, image or snapshot decodes that object's records, not every one."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from virtplane.state import StateStore


def decoded(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Counts, by class name, the objects the store parses from here on."""
    counts: collections.Counter[str] = collections.Counter()
    real = StateStore._load

    def load(self: Any, cls: type[Any], data: str, version: int) -> Any:
        counts[cls.__name__] += 1
        return real(self, cls, data, version)

    monkeypatch.setattr(StateStore, "_load", load)
    return counts
