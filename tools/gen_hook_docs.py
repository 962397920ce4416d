#!/usr/bin/env python3
"""Write docs/hooks.md from the docstrings in virtplane.hookspecs.

The hook specs are the single source: each is documented where it is
declared; this renders them. ``--check`` exits 1 if docs/hooks.md is stale
(the test suite runs that).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from virtplane import _hookrunner, hookspecs

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

| hook | a failure ... |
|---|---|
{table}
"""


def render() -> str:
    names = sorted(n for n, f in vars(hookspecs).items()
                   if inspect.isfunction(f) and hasattr(f, "virtplane_spec"))
    table = "\n".join(
        f"| `{n}` | {'fails the operation' if _hookrunner.fails_operation(n) else 'is logged; the operation stands'} |"
        for n in names
    )
    parts = [INTRO.format(module_doc=inspect.getdoc(hookspecs), table=table)]
    order = [n for n, f in vars(hookspecs).items()
             if inspect.isfunction(f) and hasattr(f, "virtplane_spec")]
    for n in order:
        f = getattr(hookspecs, n)
        sig = inspect.signature(f)
        args = ", ".join(sig.parameters)
        opts = f.virtplane_spec
        flags = [k for k in ("firstresult", "historic") if opts.get(k)]
        parts.append(f"## `{n}({args})`\n")
        if flags:
            parts.append(f"*{', '.join(flags)}*\n")
        parts.append(inspect.getdoc(f) or "")
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
