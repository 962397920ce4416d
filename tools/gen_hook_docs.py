#!/usr/bin/env python3
"""Write docs/hooks.md from the docstrings in virtplane.hookspecs.

The hook specs are the single source: each is documented where it is
declared, with its failure policy and whether it is reserved (declared but not
fired yet); this renders them, datasette style: per hook its signature, the
policy, a "reserved: not fired yet" badge, deprecated arguments, the
docstring, and the docstring's ``Example::`` section as a code block.
``--check`` exits 1 if docs/hooks.md is stale (the test suite runs that).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from virtplane import hookspecs

OUT = Path(__file__).resolve().parent.parent / "docs" / "hooks.md"

INTRO = """# Hook reference

Generated from `core/src/virtplane/hookspecs.py` by `tools/gen_hook_docs.py`;
do not edit by hand. The conventions shared by every hook (keyword arguments,
opt-in arguments, vetoes, payloads) are in the module docstring, repeated here:

{module_doc}

## Order of execution

Implementations of one hook run one at a time: `tryfirst=True` ones first,
then plugins in reverse registration order (the last loaded first),
`trylast=True` ones last. The built-in plugin `core` is registered first.
The hook-scripts plugin is `trylast`: scripts run after every in-process
implementation (see docs/hook_scripts.md). Hook wrappers are refused (the
plugin is marked failed): virtplane calls each implementation itself so that a
failure names its plugin. A hook writes to the event log of the VM (or host)
it is about with `virtplane.events.record(message, level)`.

When each point fires, operation by operation: docs/lifecycle.md.

## Failure semantics per hook

Each spec declares its policy (`@hookspec(policy=Policy.FAIL)`): `FAIL` stops
at the first failure and fails the operation, `LOG` records the failure in the
event log and lets the operation stand, `COLLECT` (validators) gathers every
plugin's messages. *Reserved* hooks can be implemented, but nothing in the
core fires them yet.

| hook | policy | a failure ... |
|---|---|---|
{table}
"""

RESERVED = "**reserved: not fired yet**"


def _badges(name: str) -> str:
    options = hookspecs.options_of(name)
    badges = [f"*policy: `{options.policy.name}`, a failure {options.policy.description}*"]
    if options.reserved:
        badges.append(RESERVED)
    for arg, why in hookspecs.DEPRECATED_ARGUMENTS.get(name, {}).items():
        badges.append(f"*deprecated argument `{arg}`: {why}*")
    return "\n\n".join(badges) + "\n"


def _body(name: str) -> str:
    """The docstring without its ``Example::`` section, then the example as code."""
    doc = inspect.getdoc(hookspecs.specs()[name]) or ""
    text = doc.partition("\nExample::\n")[0].rstrip()
    example = hookspecs.example_of(name)
    if example is not None:
        text += f"\n\n**Example**\n\n```python\n{example}\n```"
    return text


def render() -> str:
    specs = hookspecs.specs()
    rows = []
    for n in sorted(specs):
        options = hookspecs.options_of(n)
        note = " (reserved: not fired yet)" if options.reserved else ""
        rows.append(f"| `{n}` | `{options.policy.name}` | {options.policy.description}{note} |")
    parts = [INTRO.format(module_doc=inspect.getdoc(hookspecs), table="\n".join(rows))]
    for n, f in specs.items():
        args = ", ".join(inspect.signature(f).parameters)
        opts = f.virtplane_spec  # type: ignore[attr-defined]
        flags = [k for k in ("firstresult", "historic") if opts.get(k)]
        parts.append(f"## `{n}({args})`\n")
        parts.append(_badges(n))
        if flags:
            parts.append(f"*{', '.join(flags)}*\n")
        parts.append(_body(n))
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run tools/gen_hook_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
