"""One operation per object at a time (oVirt's in-memory lock manager, per VM).

Commands that change a VM hold its lock for their whole run; the monitor only
*tries* the lock and leaves a VM alone for this cycle when an operation holds
it (oVirt's first monitoring guard: do not analyse a VM whose lock a command
holds), so monitoring never fights an operation in flight.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class ObjectLocks:
    """Named locks (``vm:NAME``), created on first use and kept."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    @contextlib.contextmanager
    def hold(self, keys: list[str], *, poll: float = 0.2,
             give_up: threading.Event | None = None) -> Iterator[None]:
        """Hold every lock in ``keys`` (taken in sorted order: no deadlock between two
        commands naming the same objects). Waits; when ``give_up`` is set while
        waiting, raises :class:`Cancelled` instead."""
        taken: list[threading.Lock] = []
        try:
            for key in sorted(set(keys)):
                lock = self._lock(key)
                while not lock.acquire(timeout=poll):
                    if give_up is not None and give_up.is_set():
                        raise Cancelled(f"gave up waiting for {key}")
                taken.append(lock)
            yield
        finally:
            for lock in reversed(taken):
                lock.release()

    @contextlib.contextmanager
    def attempt(self, key: str) -> Iterator[bool]:
        """``with locks.attempt("vm:x") as got:`` — ``got`` is False (and nothing is held)
        when an operation holds the lock."""
        lock = self._lock(key)
        got = lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                lock.release()

    def busy(self, key: str) -> bool:
        """Whether an operation holds ``key`` now."""
        return self._lock(key).locked()


class Cancelled(Exception):
    """Waiting for a lock was given up (the job was cancelled while queued)."""
