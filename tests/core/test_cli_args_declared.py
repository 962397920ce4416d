"""Every ``args.NAME`` a CLI command reads is an option or argument of that command.

A command function reading an attribute its parser never declares fails only when run,
with a traceback (``AttributeError: 'Namespace' object has no attribute 'dc'``: ``storage
attach`` had its ``--dc`` registered on the next command). This walks every command of
every group, the core's and the first-party plugins' (``virtplane.commands`` entry
points), and compares what each function's source reads with what its parser declares.
"""

from __future__ import annotations

import argparse
import inspect
import re
from collections.abc import Iterator
from typing import Any

import pytest

from virtplane import cli

_READ = re.compile(r"\bargs\.([A-Za-z_][A-Za-z0-9_]*)")


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


def _commands() -> list[tuple[str, Any, set[str]]]:
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


COMMANDS = _commands()


def test_the_walk_finds_the_commands() -> None:
    names = {name for name, _f, _d in COMMANDS}
    assert {"storage attach", "dc add", "vm start", "host add"} <= names
    assert len(names) > 80


@pytest.mark.parametrize(("name", "func", "dests"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_command_reads_only_what_it_declares(name: str, func: Any, dests: set[str]) -> None:
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        pytest.skip(f"{name}: no source for {func!r}")
    read = set(_READ.findall(source))
    missing = sorted(read - dests)
    assert not missing, (f"virtplane {name} ({func.__module__}.{func.__qualname__}) reads "
                         f"args.{', args.'.join(missing)}, which its parser does not declare")
