"""The endpoint file beside the state file, and the one-engine-per-state lock.

``state.db.engine`` (0600, written atomically) holds what a client needs to
reach the engine: its pid, the API address, a random token (the API's only
credential: whoever can read the file may drive the engine, exactly who can
read the state store), and ``client``, the function the core CLI calls to
forward a command line. ``state.db.engine.lock`` is held with ``flock`` for the
engine's lifetime, so a second engine on the same state store is refused even
if the first one's endpoint file was removed, and a dead engine's lock goes
away with its process.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from pathlib import Path
from typing import Any

from virtplane.cli._common import endpoint_path
from virtplane.errors import StateError, VirtplaneError

CLIENT = "virtplane_engine.client:forward"


class EngineRunning(VirtplaneError):
    """Another engine already serves this state store."""

    exit_code = 3


class EngineLock:
    """The lock file that makes this process the only engine of a state store."""

    def __init__(self, state: Path) -> None:
        self.endpoint = endpoint_path(state)
        self.path = self.endpoint.with_name(self.endpoint.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """:raises EngineRunning: another process holds it."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read(self.endpoint)
            pid = holder.get("pid", "?") if holder else "?"
            raise EngineRunning(f"an engine (pid {pid}) already serves this state store "
                                f"(lock {self.path}); stop it with 'virtplane engine stop'") \
                from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def write(state: Path, address: tuple[str, int]) -> dict[str, Any]:
    """Write the endpoint file for an engine listening on ``address``; returns its data."""
    host, port = address
    data = {"pid": os.getpid(), "address": f"http://{_url_host(host)}:{port}",
            "token": secrets.token_urlsafe(32), "client": CLIENT,
            "state": str(state)}
    path = endpoint_path(state)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StateError(f"cannot write the engine endpoint file {path}: "
                         f"{exc.strerror or exc}") from None
    return data


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def read(path: Path) -> dict[str, Any] | None:
    """The endpoint file's data; None when missing or damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove(state: Path) -> None:
    """Remove the endpoint file if it is this process's."""
    path = endpoint_path(state)
    data = read(path)
    if data is not None and data.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
