"""Time as the scheduling layer sees it: a clock that is injected, never read directly.

Every rule here is about durations (a host over-utilized for two minutes, a VM
moved less than ten minutes ago, an engine started less than five minutes ago).
Reading ``time.time()`` inside those rules would make them untestable without
sleeping; a :class:`VirtualClock` lets a test step through an hour in
microseconds and lets the engine replay a situation exactly.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A source of the current time in seconds (the epoch of ``time.time``)."""

    def now(self) -> float:
        """The current time in seconds."""


class SystemClock:
    """The wall clock (``time.time``): what the engine uses in production."""

    def now(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that only moves when told to (tests, simulations, dry runs)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward; a negative step is refused (time does not go back)."""
        if seconds < 0:
            raise ValueError(f"a virtual clock only moves forward, not by {seconds} s")
        self._now += seconds
        return self._now

    def set(self, when: float) -> None:
        """Jump to ``when`` (not before the current time)."""
        if when < self._now:
            raise ValueError(f"a virtual clock only moves forward ({when} < {self._now})")
        self._now = float(when)
