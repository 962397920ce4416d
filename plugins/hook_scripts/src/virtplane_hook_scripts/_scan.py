"""Which scripts a hook point has (kept import-light: it runs on every hook call)."""

from __future__ import annotations

import os
from pathlib import Path


def scripts_of(roots: list[Path], point: str) -> list[Path]:
    """Executable regular files of ``<root>/<point>/`` for every root, in run order.

    Order: by file name across all roots (so ``10_x`` in one root runs before
    ``20_y`` in another); the roots' order breaks ties.
    """
    if "/" in point or ".." in point or os.path.isabs(point):
        raise ValueError(f"hook point {point!r} is not a plain folder name")
    found: list[tuple[str, int, Path]] = []
    for order, root in enumerate(roots):
        folder = root / point
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.is_file() and os.access(entry, os.X_OK):
                found.append((entry.name, order, entry))
    return [p for _name, _order, p in sorted(found)]
