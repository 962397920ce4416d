#!/usr/bin/env python3
"""Write docs/cli.md from the command-line parser itself.

The parser is the single source: every group of ``virtplane.cli.GROUPS``, every
group another installed distribution adds (``virtplane.commands`` entry points:
the engine's, the REST API's) and ``demo``, each command with its one-line help,
its usage line and a table of its arguments and options (help text, default,
choices). Usage lines are rendered 100 columns wide whatever the terminal is, so
the page is the same on every machine. ``--check`` exits 1 if docs/cli.md is stale
(the test suite runs that); regenerate with ``python tools/gen_cli_docs.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "cli.md"

INTRO = """# Command reference

Generated from the command-line parser by `tools/gen_cli_docs.py`; do not edit
by hand. Every command of the core, and of the first-party distributions that add
command groups (`virtplane.commands` entry points), with its arguments and
options. How the commands fit together is in {doc}`getting-started`; the
configuration they read is in {doc}`config`.

Options every command takes, before the command name:

{globals}

A command run while an engine serves the same state store goes through that
engine (one writer, its jobs and locks; {doc}`engine`), except the local groups
`plugins`, `plugin`, `config` and `demo`. Errors are one line on stderr and exit
status 1 (`--debug` shows the traceback); `--json`, where offered, prints JSON
instead of text.
"""


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:  # type: ignore[type-arg]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _name(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return f"`{names}`"
    metavar = action.metavar or action.dest.upper()
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    return f"`{names} {metavar}`"


def _meaning(action: argparse.Action) -> str:
    parts = [_cell(action.help % {"default": action.default, "prog": ""})
             if action.help and action.help != argparse.SUPPRESS else ""]
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        parts.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    if action.option_strings and action.nargs != 0 and action.default not in (
            None, argparse.SUPPRESS, [], "") and "default" not in parts[0]:
        parts.append(f"default `{action.default}`")
    if action.required and action.option_strings:
        parts.append("required")
    if action.nargs in ("*", "+") or isinstance(action, argparse._AppendAction):
        parts.append("repeatable" if action.option_strings else "one or more"
                     if action.nargs == "+" else "any number")
    return "; ".join(p for p in parts if p) or "—"


def _table(parser: argparse.ArgumentParser) -> list[str]:
    rows = [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
            and a.help != argparse.SUPPRESS]
    if not rows:
        return []
    return ["| argument | meaning |", "|---|---|",
            *(f"| {_name(a)} | {_meaning(a)} |" for a in rows), ""]


def _commands(parser: argparse.ArgumentParser, path: list[str], help: str
              ) -> Iterator[tuple[list[str], str, argparse.ArgumentParser]]:
    sub = _subparsers(parser)
    if sub is None:
        yield path, help, parser
        return
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    for name, child in sub.choices.items():
        yield from _commands(child, [*path, name], helps.get(name, ""))


def render() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps usage lines to the terminal's width
    from virtplane import cli

    root = cli.build_parser([])
    top = _subparsers(root)
    assert top is not None
    globals_rows = _table(root)
    out = [INTRO.replace("{globals}", "\n".join(globals_rows).rstrip())]
    external = cli.command_entry_points()
    groups = [*cli.GROUPS, *sorted(external), "demo"]
    for group in groups:
        parser = cli.build_parser([group])
        sub = _subparsers(parser)
        assert sub is not None
        helps = {a.dest: a.help or "" for a in sub._choices_actions}
        gparser = sub.choices[group]
        title = helps.get(group) or gparser.description or ""
        out.append(f"## `virtplane {group}`\n")
        if group in external:
            dist = external[group].partition(":")[0].split(".")[0]
            out.append(f"{title[:1].upper()}{title[1:]}. Added by `{dist}`.\n"
                       if title and not title.startswith("(added by") else
                       f"Added by `{dist}`.\n")
        elif title:
            out.append(f"{title[:1].upper()}{title[1:]}.\n")
        for path, help, leaf in _commands(gparser, [group], title):
            name = " ".join(path)
            if path != [group]:
                out.append(f"### `virtplane {name}`\n")
                if help:
                    out.append(f"{help[:1].upper()}{help[1:]}.\n")
            usage = leaf.format_usage().strip().removeprefix("usage: ")
            out.append("```text\n" + usage + "\n```\n")
            out.extend(_table(leaf))
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python tools/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
