"""Every command of the CLI with its function and what its parser declares: the core's
groups and those of the installed distributions (``virtplane.commands`` entry points).
Shared by tests/core/test_cli_args_declared.py and tests/core/test_cli_docs.py."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from virtplane import cli


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...], inherited: set[str]
            ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, set[str]]]:
    dests = inherited | {a.dest for a in parser._actions} | set(parser._defaults)
    children = _subparsers(parser)
    if not children:
        yield path, parser, dests
    for name, child in children.items():
        yield from _leaves(child, (*path, name), dests)


def commands() -> list[tuple[str, Any, set[str]]]:
    """(command, its function, what its parser declares). One function body made for
    several commands (``_vm_op("start_vm")``, ``_vm_op("shutdown_vm")``: closures of one
    code object, reading ``args.timeout`` only for shutdown) is held to what any of
    those commands declares."""
    groups = [*cli.GROUPS, *cli.command_entry_points()]
    found: dict[str, tuple[Any, set[str]]] = {}
    shared: dict[Any, set[str]] = {}
    for group in groups:
        root = cli.build_parser([group])
        top = _subparsers(root)[group]
        base = {a.dest for a in root._actions} | {"command", "sub"}
        for path, parser, dests in _leaves(top, (group,), base):
            func = parser._defaults.get("func")
            if func is not None:
                found[" ".join(path)] = (func, dests)
                shared.setdefault(getattr(func, "__code__", func), set()).update(dests)
    return [(name, func, shared[getattr(func, "__code__", func)])
            for name, (func, _dests) in sorted(found.items())]
