"""What the HTTP API (``server``) needs of the engine it serves, as a Protocol.

``server`` is typed against :class:`ServedEngine`, not against
``engine.Engine``, so the engine can import its server without the server
importing the engine back (not even for typing). ``Engine`` satisfies it
structurally; a test can hand the server any object that does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from virtplane.state import StateStore


class CommandRunner(Protocol):
    """Runs a CLI command line inside the engine (``commands.Commands``)."""

    def execute(self, argv: Sequence[str], *, stdin: str = "", detach: bool = False,
                follow: bool = False, correlation_id: str | None = None,
                caller: str | None = "admin@internal") -> dict[str, Any]: ...


class JobCanceller(Protocol):
    """Asks a job to stop (``jobs.JobRunner``)."""

    def cancel(self, job_id: str) -> str: ...


class ServedEngine(Protocol):
    """The engine as the API server sees it: exactly what ``server`` uses."""

    @property
    def stopping(self) -> bool: ...

    @property
    def commands(self) -> CommandRunner: ...

    @property
    def runner(self) -> JobCanceller: ...

    def store(self) -> StateStore: ...

    def status(self) -> dict[str, Any]: ...

    def request_stop(self, reason: str) -> None: ...
