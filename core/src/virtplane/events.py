"""Event log entries from inside a hook call.

A hook implementation (in-process, or the hook-scripts plugin relaying a
script's stderr) calls :func:`record` to add a line to the event log of the
object the hook is about (the VM, else the host), which ``virtplane vm events``
shows. Outside a hook call, or for hooks about no stored object, the message
goes to the ``virtplane.events`` logger instead.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator

Sink = Callable[[str, str], None]

_SINK: contextvars.ContextVar[Sink | None] = contextvars.ContextVar("virtplane_event_sink",
                                                                    default=None)
_log = logging.getLogger("virtplane.events")
LEVELS = ("debug", "info", "warning", "error")


def record(message: str, level: str = "info") -> None:
    """Add ``message`` to the event log of the object the running hook is about."""
    if level not in LEVELS:
        raise ValueError(f"event level {level!r} is not allowed; use one of {', '.join(LEVELS)}")
    sink = _SINK.get()
    if sink is None:
        _log.log(getattr(logging, level.upper()), "%s", message)
    else:
        sink(message, level)


@contextlib.contextmanager
def sink(target: Sink | None) -> Iterator[None]:
    """Route :func:`record` to ``target`` inside the block (used by the core)."""
    token = _SINK.set(target)
    try:
        yield
    finally:
        _SINK.reset(token)
