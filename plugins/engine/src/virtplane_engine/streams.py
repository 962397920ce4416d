"""Per-thread stdout/stderr for the commands the engine runs for clients.

Several clients' commands run at once, each in its own thread, and the CLI's
handlers ``print()``. ``contextlib.redirect_stdout`` swaps ``sys.stdout`` for
the whole process, so two commands would write into each other's output. A
:class:`ThreadStreams` installed once as ``sys.stdout`` (and one as
``sys.stderr``) sends each thread's writes to that thread's buffer while it
captures, and everything else to the real stream.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO


class ThreadStreams(io.TextIOBase):
    """A text stream that writes to the current thread's buffer, if it has one."""

    def __init__(self, real: TextIO) -> None:
        super().__init__()
        self.real = real
        self._local = threading.local()

    def _target(self) -> Any:
        buf = getattr(self._local, "buf", None)
        return self.real if buf is None else buf

    def write(self, s: str) -> int:
        self._target().write(s)
        return len(s)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        # a captured command writes for a client far away: never a terminal here
        return bool(getattr(self._local, "buf", None) is None and self.real.isatty())

    def fileno(self) -> int:
        if getattr(self._local, "buf", None) is not None:
            raise io.UnsupportedOperation("a captured command stream has no file descriptor")
        return self.real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", "utf-8") or "utf-8"

    def writable(self) -> bool:
        return True

    @contextlib.contextmanager
    def capture(self) -> Iterator[io.StringIO]:
        """Collect this thread's writes into a buffer for the block's duration."""
        buf = io.StringIO()
        previous = getattr(self._local, "buf", None)
        self._local.buf = buf
        try:
            yield buf
        finally:
            self._local.buf = previous


class Captured:
    """stdout and stderr of one command run in this thread."""

    def __init__(self) -> None:
        self.stdout = ""
        self.stderr = ""


class ThreadInput(io.TextIOBase):
    """``sys.stdin`` for commands run for clients: the text the client sent (``vm
    ticket`` reads a password from standard input), or nothing."""

    def __init__(self, real: TextIO) -> None:
        super().__init__()
        self.real = real
        self._local = threading.local()

    def _source(self) -> Any:
        buf = getattr(self._local, "buf", None)
        return self.real if buf is None else buf

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        return str(self._source().read(-1 if size is None else size))

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        return str(self._source().readline(-1 if size is None else size))

    def isatty(self) -> bool:
        return False

    @contextlib.contextmanager
    def feed(self, text: str) -> Iterator[None]:
        previous = getattr(self._local, "buf", None)
        self._local.buf = io.StringIO(text)
        try:
            yield
        finally:
            self._local.buf = previous


_installed: tuple[ThreadStreams, ThreadStreams] | None = None
_stdin: ThreadInput | None = None
_install_lock = threading.Lock()


def install() -> tuple[ThreadStreams, ThreadStreams]:
    """Put thread-aware proxies in ``sys.stdout``/``sys.stderr`` (once per process)."""
    global _installed, _stdin
    with _install_lock:
        if _installed is None:
            out = ThreadStreams(sys.stdout)
            err = ThreadStreams(sys.stderr)
            _stdin = ThreadInput(sys.stdin)
            sys.stdout, sys.stderr = out, err
            sys.stdin = _stdin
            _installed = (out, err)
        return _installed


def uninstall() -> None:
    """Put the real streams back."""
    global _installed, _stdin
    with _install_lock:
        if _installed is not None:
            sys.stdout, sys.stderr = _installed[0].real, _installed[1].real
            _installed = None
        if _stdin is not None:
            sys.stdin = _stdin.real
            _stdin = None


@contextlib.contextmanager
def capture(stdin: str = "") -> Iterator[Captured]:
    """Capture this thread's stdout and stderr and give it ``stdin`` to read."""
    out, err = install()
    assert _stdin is not None
    result = Captured()
    with out.capture() as obuf, err.capture() as ebuf, _stdin.feed(stdin):
        try:
            yield result
        finally:
            result.stdout, result.stderr = obuf.getvalue(), ebuf.getvalue()
