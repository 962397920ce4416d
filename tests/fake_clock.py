"""The engine's :class:`~virtplane_engine.scheduling.clock.VirtualClock` in the shape the
HA and maintenance code takes a clock: a callable returning seconds. ``t`` reads it
and moves it (forward only), as the tests step through retries and grace periods."""

from __future__ import annotations

from virtplane_engine.scheduling.clock import VirtualClock


class Clock(VirtualClock):
    """A virtual clock starting at 1000 s that ``Ha``/``Mover`` can call."""

    def __init__(self, start: float = 1000.0) -> None:
        super().__init__(start)

    def __call__(self) -> float:
        return self.now()

    @property
    def t(self) -> float:
        return self.now()

    @t.setter
    def t(self, when: float) -> None:
        self.set(when)
