"""Every ``args.NAME`` a CLI command reads is an option or argument of that command.

A command function reading an attribute its parser never declares fails only when run,
with a traceback (``AttributeError: 'Namespace' object has no attribute 'dc'``: ``storage
attach`` had its ``--dc`` registered on the next command). This walks every command of
every group, the core's and the first-party plugins' (``virtplane.commands`` entry
points), and compares what each function's source reads with what its parser declares.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

from tests.core.cli_commands import commands

_READ = re.compile(r"\bargs\.([A-Za-z_][A-Za-z0-9_]*)")


COMMANDS = commands()


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
