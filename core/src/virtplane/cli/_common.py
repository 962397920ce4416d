"""Helpers shared by the command groups."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from virtplane.manager import Manager

Handler = Callable[[argparse.Namespace], int]


def manager(args: argparse.Namespace) -> Manager:
    """A Manager for the global ``--config`` and ``--state`` options."""
    from virtplane import config
    from virtplane.manager import Manager

    return Manager(config.load(args.config), state_path=args.state)


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
