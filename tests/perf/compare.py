#!/usr/bin/env python3
"""Side by side: the benchmarks on an older revision ("before") and on the working tree.

Run from the repository root with the dev venv::

    .venv/bin/python tests/perf/compare.py 64fe7a2            # a git revision
    .venv/bin/python tests/perf/compare.py /work/bench-before  # or a checkout folder
    .venv/bin/python tests/perf/compare.py 64fe7a2 --rounds 5 --only lifecycle,virtinst

A revision is checked out into a temporary ``git worktree`` (removed at the
end unless ``--keep``). Each side runs with its own source folders first on
PYTHONPATH (``core/src``, ``*/src``, ``plugins/*/src``), which wins over the
venv's editable install, in the subprocesses the benchmarks start too (the
``virtplane`` console script among them); the script checks which
``virtplane`` each side imports before it starts. Both sides run the same
harness, this tree's ``run_all.py`` (``--harness own`` runs each tree's own
instead), so a change in a figure is the code's and a benchmark added since
that revision gets a "before" figure too.

Interleaving: every benchmark runs in its own process, before and after in
turn (ABBA over the rounds), so drift of a shared machine's speed hits both
sides alike; each figure is the median over ``--rounds`` (default 3). Every
figure is a ratio against a baseline of the same process, and lower is
better; a figure more than 5% above its before value is flagged. The flags
are information, the exit status is 0 (2 if a side could not run at all).

Limits: both sides use the venv's installed distribution metadata, so the
entry points come from the installed tree; the script warns when the two
trees declare different ``virtplane.*`` entry points. A full comparison takes
about 2 x rounds x one benchmark run (some 6 minutes at 3 rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
THRESHOLD = 0.05


def source_dirs(tree: Path) -> list[str]:
    """A tree's source folders, core first, as the editable install lists them."""
    dirs = [tree / "core" / "src", *sorted(tree.glob("*/src")),
            *sorted((tree / "plugins").glob("*/src"))]
    return list(dict.fromkeys(str(d) for d in dirs if d.is_dir()))


def side_env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(source_dirs(tree))
    return env


def check_import(tree: Path, env: dict[str, str]) -> str:
    """Where ``virtplane`` comes from with this environment; it must be the tree's."""
    out = subprocess.run([sys.executable, "-c", "import virtplane; print(virtplane.__file__)"],
                         capture_output=True, text=True, env=env, check=True).stdout.strip()
    if not Path(out).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"compare: virtplane imports from {out}, not from {tree}")
    return out


_EP_SECTION = re.compile(r'^\[project\.entry-points\."?(virtplane\.[^"\]]+)"?\]\s*$')


def entry_points(tree: Path) -> set[tuple[str, str]]:
    """The ``virtplane.*`` entry points a tree's pyproject files declare (group, line)."""
    found = set()
    for pyproject in tree.glob("**/pyproject.toml"):
        if ".venv" in pyproject.parts or "_scaffold" in pyproject.parts:
            continue
        group = None
        for line in pyproject.read_text().splitlines():
            if line.startswith("["):
                match = _EP_SECTION.match(line)
                group = match.group(1) if match else None
            elif group and "=" in line:
                found.add((group, " ".join(line.split())))
    return found


def run(harness: Path, tree: Path, env: dict[str, str], key: str | None,
        out: Path, log: Path) -> list[dict[str, object]]:
    """One run_all.py process; its results, or [] (with the log kept) if it produced none."""
    cmd = [sys.executable, str(harness)]
    if key is not None:
        cmd += ["--only", key, "--out", str(out)]
    with log.open("a") as f:
        f.write(f"\n=== {tree} {key or 'all'}\n")
        f.flush()
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=tree)
    if key is None:  # a harness without --out writes next to itself
        out = harness.parent / "results.json"
    try:
        results: list[dict[str, object]] = json.loads(out.read_text())
    except (OSError, ValueError):
        return []
    if key is not None:
        out.unlink()
    return results


def table(before: dict[str, list[float]], after: dict[str, list[float]]) -> list[str]:
    """Rows of name / before / after / change%, flagging changes worse than +5%."""
    names = list(dict.fromkeys([*before, *after]))
    width = min(max(len(n) for n in names), 80)
    lines = [f"{'benchmark':<{width}}  {'before':>10}  {'after':>10}  {'change':>8}",
             "-" * (width + 36)]
    flagged = 0
    for name in names:
        b = statistics.median(before[name]) if before.get(name) else None
        a = statistics.median(after[name]) if after.get(name) else None
        change, flag = "", ""
        if a is not None and b is not None and b > 0:
            pct = (a - b) / b
            change = f"{pct * 100:+.1f}%"
            if pct > THRESHOLD:
                flag, flagged = "  WORSE >5%", flagged + 1
        shown = name if len(name) <= width else name[:width - 3] + "..."
        lines.append(f"{shown:<{width}}  {'-' if b is None else f'{b:.4g}':>10}  "
                     f"{'-' if a is None else f'{a:.4g}':>10}  {change:>8}{flag}")
    lines.append(f"{flagged} figure(s) worse by more than {THRESHOLD:.0%} "
                 "(medians; lower is better for every figure)")
    return lines


def collect(into: dict[str, list[float]], results: list[dict[str, object]]) -> None:
    for r in results:
        value = r.get("value")
        if isinstance(value, int | float) and "crashed" not in str(r["name"]):
            into.setdefault(str(r["name"]), []).append(float(value))
        else:
            into.setdefault(str(r["name"]), [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="git revision, or a folder holding a checkout")
    parser.add_argument("--rounds", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument("--only", help="comma-separated benchmark keys (run_all.py --list)")
    parser.add_argument("--harness", choices=("current", "own"), default="current",
                        help="run this tree's run_all.py on both sides (default), or each "
                        "tree's own (whole runs, interleaved)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary worktree")
    parser.add_argument("--json", type=Path, help="also write every figure of both sides here")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="vp-compare-"))
    log = work / "runs.log"
    given = Path(args.before)
    made_worktree = False
    if given.is_dir():
        before_tree = given.resolve()
    else:
        before_tree = work / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                        str(before_tree), args.before], check=True)
        made_worktree = True
    try:
        sides = {"before": before_tree, "after": ROOT}
        envs = {side: side_env(tree) for side, tree in sides.items()}
        for side, tree in sides.items():
            print(f"{side}: {tree} (virtplane from {check_import(tree, envs[side])})")
        if entry_points(before_tree) != entry_points(ROOT):
            print("warning: the trees declare different virtplane entry points; both sides "
                  "load the installed ones", file=sys.stderr)
        harness = {side: (HERE / "run_all.py" if args.harness == "current"
                          else tree / "tests" / "perf" / "run_all.py")
                   for side, tree in sides.items()}
        if args.harness == "current":
            keys: list[str | None] = list(
                args.only.split(",") if args.only else subprocess.run(
                    [sys.executable, str(harness["after"]), "--list"], capture_output=True,
                    text=True, check=True, env=envs["after"]).stdout.split())
        else:
            keys = [None]
        figures: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
        for r in range(args.rounds):
            for key in keys:
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for side in order:
                    print(f"round {r + 1}/{args.rounds}: {key or 'all'} {side}", flush=True)
                    results = run(harness[side], sides[side], envs[side], key,
                                  work / f"{side}.json", log)
                    if not results:
                        print(f"  no results; see {log}", file=sys.stderr)
                    collect(figures[side], results)
        if not any(figures["before"].values()) or not any(figures["after"].values()):
            print(f"compare: a side produced no figures; see {log}", file=sys.stderr)
            return 2
        print()
        print("\n".join(table(figures["before"], figures["after"])))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
        print(f"run logs: {log}")
    finally:
        if made_worktree and not args.keep:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(before_tree)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
