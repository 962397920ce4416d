"""Entry-point discovery for virtplane's groups, with an on-disk index.

``importlib.metadata`` re-reads every installed distribution's metadata on
each scan, which grows with the number of installed wheels. The index keeps,
for virtplane's entry-point groups only, each entry point together with the
distribution (name, version) that declares it. It is keyed on the interpreter
and on each ``sys.path`` folder with its modification time: installing or
removing a distribution creates or deletes a ``*.dist-info`` folder and so
changes its folder's mtime, which invalidates the index. Checking the key
costs one ``stat`` per ``sys.path`` entry, independent of how many
distributions are installed.

Escape hatch: ``VIRTPLANE_NO_CACHE=1`` scans every time (no file written).
The index lives in ``$XDG_CACHE_HOME/virtplane/entrypoints/``.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from typing import NamedTuple

from virtplane.plugins._kinds import GROUPS, OTHER_GROUPS

__all__ = ["GROUPS", "EntryInfo", "cache_dir", "entry_points", "of_group", "scan"]

_FORMAT = 2
#: every group the index keeps: plugin kinds and the core's other groups
_INDEXED = frozenset(GROUPS) | frozenset(OTHER_GROUPS)


class EntryInfo(NamedTuple):
    """One entry point of a virtplane group and the distribution declaring it."""

    group: str
    name: str
    value: str
    dist: str
    version: str


def cache_dir() -> str:
    """Where the entry-point index is kept (``$XDG_CACHE_HOME/virtplane/entrypoints``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "virtplane", "entrypoints")


def _key(path: list[str]) -> str:
    """The full key: interpreter, and each sys.path folder with its mtime."""
    parts = [f"{_FORMAT}", sys.executable, sys.prefix]
    for entry in path:
        try:
            mtime = os.stat(entry or ".").st_mtime_ns
        except OSError:
            mtime = -1
        parts.append(f"{entry}={mtime}")
    return "\0".join(parts)


def scan(path: list[str] | None = None) -> list[EntryInfo]:
    """Scan installed distributions for entry points of virtplane's groups (plugin
    kinds and :data:`~virtplane.plugins._kinds.OTHER_GROUPS`; no cache)."""
    import importlib.metadata

    found: list[EntryInfo] = []
    seen: set[tuple[str, str, str]] = set()
    dists = importlib.metadata.distributions(path=path if path is not None else sys.path)
    for dist in dists:
        try:
            eps = dist.entry_points
        except Exception:  # noqa: BLE001 - a dist with unreadable metadata cannot be a plugin
            continue
        dist_name: str | None = None
        for ep in eps:
            if ep.group not in _INDEXED:
                continue
            if dist_name is None:
                dist_name = dist.metadata["Name"] or "?"
            key = (ep.group, ep.name, ep.value)
            if key in seen:
                continue
            seen.add(key)
            found.append(EntryInfo(ep.group, ep.name, ep.value, dist_name, dist.version or "?"))
    found.sort()
    return found


def _read_index(filename: str, key: str) -> list[EntryInfo] | None:
    """The index in ``filename`` if it exists, parses and was made for ``key``."""
    try:
        with open(filename, encoding="utf-8") as f:
            data = json.load(f)
        if data["key"] != key:
            return None
        return [EntryInfo(*row) for row in data["entries"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None  # missing or damaged: the caller rescans and rewrites it


def entry_points(path: list[str] | None = None) -> list[EntryInfo]:
    """The entry points of virtplane's plugin kinds, from the index when it is current."""
    return [e for e in _indexed(path) if e.group in GROUPS]


def of_group(group: str, path: list[str] | None = None) -> list[EntryInfo]:
    """The entry points of one of virtplane's groups (a plugin kind or one of
    :data:`~virtplane.plugins._kinds.OTHER_GROUPS`, such as the CLI's command groups),
    from the same index: a command line does not scan every distribution again."""
    if group not in _INDEXED:
        raise ValueError(f"{group!r} is not an entry-point group virtplane indexes")
    return [e for e in _indexed(path) if e.group == group]


def _indexed(path: list[str] | None = None) -> list[EntryInfo]:
    """Every indexed entry point, from the index when it is current."""
    search = list(sys.path if path is None else path)
    if os.environ.get("VIRTPLANE_NO_CACHE") == "1":
        return scan(search)
    key = _key(search)
    folder = cache_dir()
    # The file name is a cheap checksum of the key; the file holds the whole key,
    # which must match, so a checksum collision only costs a rescan.
    filename = os.path.join(folder, f"{zlib.crc32(key.encode()):08x}.json")
    cached = _read_index(filename, key)
    if cached is not None:
        return cached
    found = scan(search)
    try:
        import tempfile

        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"key": key, "entries": [list(e) for e in found]}, f)
            os.replace(tmp, filename)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        # A read-only or full cache folder only costs speed; the scan result is
        # still correct, so carry on without the index.
        return found
    return found
