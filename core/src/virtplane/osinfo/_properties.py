"""Java-style ``.properties`` files, the syntax osinfo files are written in."""

from __future__ import annotations

import re
from pathlib import Path


def read_properties(path: Path) -> list[tuple[int, str, str]]:
    """``(line, key, value)`` records of a Java-style properties file.

    Handles ``#``/``!`` comments, ``=``, ``:`` or blank separators, backslash
    line continuations and the usual escapes.
    """
    records: list[tuple[int, str, str]] = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    i = 0
    while i < len(lines):
        start = i
        line = lines[i].lstrip()
        i += 1
        if not line or line[0] in "#!":
            continue
        while _continues(line) and i < len(lines):
            line = line[:-1] + lines[i].lstrip()
            i += 1
        m = re.match(r"((?:\\.|[^=:\s])+)\s*[=:\s]\s*(.*)$", line)
        if m is None:
            key, value = line, ""
        else:
            key, value = m.group(1), m.group(2)
        records.append((start + 1, _unescape(key), _unescape(value).strip()))
    return records


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m.group(1),
                                                                         m.group(1)), text)
