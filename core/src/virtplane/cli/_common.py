"""Helpers shared by the command groups, and the CLI's side of an engine.

When an engine serves a state store it writes an *endpoint file* beside it
(:func:`endpoint_path`: ``state.db`` -> ``state.db.engine``, mode 0600). Its JSON
names, among what the engine's own client needs (pid, address, token), the
``client`` function that forwards a command line: ``"module:function"`` in a
distribution that adds command groups (:data:`virtplane.cli.COMMAND_GROUP`). The
core knows nothing about HTTP; it only finds that function and calls it.

Inside the engine, :func:`share_manager` makes :func:`manager` hand every command
the engine's one long-lived :class:`~virtplane.Manager` (its host connections stay
open: libvirt's test driver keeps its VMs per process) instead of opening and
closing one per command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from virtplane.manager import Manager

Handler = Callable[[argparse.Namespace], int]
#: ``forward(args, argv, endpoint_file) -> rc``, or None when no engine answers
Forwarder = Callable[[argparse.Namespace, Sequence[str], Path], "int | None"]

#: the engine's Manager, set inside an engine process (see :func:`share_manager`)
_shared: Manager | None = None


def share_manager(m: Manager | None) -> None:
    """Inside an engine: every command gets ``m`` from :func:`manager` and does not close
    it; ``None`` goes back to one Manager per command. Commands are never forwarded to
    an engine while one is shared (the process *is* the engine)."""
    global _shared
    _shared = m


class _Borrowed:
    """``with manager(args) as m`` on the shared Manager: entering gives it, leaving
    leaves it open (the engine closes it once, when it stops)."""

    def __init__(self, m: Manager) -> None:
        self._m = m

    def __enter__(self) -> Manager:
        return self._m

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None

    def close(self) -> None:
        """Closing a borrowed Manager is the engine's business: nothing happens."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._m, name)


def manager(args: argparse.Namespace) -> Manager:
    """A Manager for the global ``--config`` and ``--state`` options (inside an engine:
    the engine's shared one, which a ``with`` block does not close)."""
    if _shared is not None:
        return cast("Manager", _Borrowed(_shared))
    from virtplane import config
    from virtplane.manager import Manager

    return Manager(config.load(args.config), state_path=args.state)


def state_path(args: argparse.Namespace) -> Path:
    """The state file the command line means (``--state``, else the configuration's); for
    a server URL, its local anchor (:func:`virtplane.state.local_anchor`)."""
    from virtplane.state import local_anchor, location_of

    if args.state:
        return local_anchor(args.state)
    from virtplane import config

    # a server URL's local files (an engine's endpoint) sit at its local anchor
    return local_anchor(location_of(config.load(args.config)))


def endpoint_path(state: Path) -> Path:
    """Where an engine serving ``state`` writes its endpoint file."""
    return state.with_name(state.name + ".engine")


def through_engine(args: argparse.Namespace, argv: Sequence[str]) -> int | None:
    """Run the command inside the engine serving this state store, if one does.

    Returns the command's exit status, or None to run it here: no endpoint file,
    ``VIRTPLANE_DIRECT=1``, inside the engine itself, or the engine's client found
    the engine gone (a stale file after a crash).

    :raises VirtplaneError: the endpoint file is unreadable or names a client that
        is not one of the installed command plugins.
    """
    if _shared is not None or os.environ.get("VIRTPLANE_DIRECT") == "1":
        return None
    path = endpoint_path(state_path(args))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        from virtplane.errors import StateError

        raise StateError(f"cannot read the engine endpoint file {path}: "
                         f"{exc.strerror or exc}; run as the engine's user, or set "
                         "VIRTPLANE_DIRECT=1 to work on the state store directly") from None
    return _client(path, text)(args, argv, path)


def _client(path: Path, text: str) -> Forwarder:
    """The forwarding function the endpoint file names, checked against the installed
    command plugins (the file may only pick among code that is installed anyway)."""
    from virtplane.errors import StateError

    try:
        ref = json.loads(text)["client"]
        module_name, _, func = str(ref).partition(":")
    except (ValueError, KeyError, TypeError):
        raise StateError(f"engine endpoint file {path} is damaged (no client); remove it "
                         "if no engine runs") from None
    from virtplane.cli import command_entry_points

    allowed = {v.partition(":")[0].split(".")[0] for v in command_entry_points().values()}
    if module_name.split(".")[0] not in allowed or not func:
        raise StateError(f"engine endpoint file {path} names client {ref!r}, which is not "
                         "part of an installed command plugin; remove the file if no "
                         "engine runs")
    import importlib

    try:
        return cast(Forwarder, getattr(importlib.import_module(module_name), func))
    except (ImportError, AttributeError) as exc:
        raise StateError(f"engine client {ref!r} (from {path}) cannot be loaded: {exc}") \
            from None


def emit(args: argparse.Namespace, data: Any, text: Callable[[], None]) -> None:
    """Print ``data`` as JSON with ``--json``, else call ``text()``."""
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        print()
    else:
        text()


def dump(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    print()


def leaf(parent: Any, name: str, fn: Handler, help: str, json_opt: bool = False) -> Any:
    """Add a subcommand running ``fn``."""
    q = parent.add_parser(name, help=help, description=help)
    q.set_defaults(func=fn)
    if json_opt:
        q.add_argument("--json", action="store_true", help="machine-readable output")
    return q


def local_only(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Mark a subcommand as never forwarded to an engine (it talks to the engine itself,
    or follows something on this terminal)."""
    parser.set_defaults(local_only=True)
    return parser
