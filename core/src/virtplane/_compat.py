"""Does an installed plugin distribution fit the installed core? (``plugins doctor``, kit)

Three things can make a wheel not fit, each reported with the versions involved:
its ``Requires-Dist: virtplane ...`` excludes the installed core; its entry
points declare a ``VIRTPLANE_PLUGIN_API`` range excluding the core's plugin API
(checked at load, see :mod:`virtplane._plugins`); its hook implementations use
hook arguments that are deprecated (they still work, with a warning, until the
next major plugin API; see :data:`virtplane.hookspecs.DEPRECATED_ARGUMENTS`).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any


def requirement_problems(dist: str) -> list[str]:
    """What in ``dist``'s ``Requires-Dist`` the installed core or API does not satisfy."""
    from packaging.requirements import InvalidRequirement, Requirement

    from virtplane._version import __version__

    try:
        requires = importlib.metadata.distribution(dist).requires or []
    except importlib.metadata.PackageNotFoundError:
        return []
    problems = []
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.name.lower() != "virtplane":
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if req.specifier and not req.specifier.contains(__version__, prereleases=True):
            problems.append(
                f"{dist} requires virtplane{req.specifier}, but virtplane {__version__} "
                "is installed")
    return problems


def deprecated_uses(pm: Any, plugin: Any) -> list[str]:
    """Deprecated hook arguments that ``plugin``'s hook implementations take."""
    from virtplane.hookspecs import DEPRECATED_ARGUMENTS

    found = []
    for caller in pm.get_hookcallers(plugin) or []:
        gone = DEPRECATED_ARGUMENTS.get(caller.name, {})
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            for arg in impl.argnames:
                if arg in gone:
                    found.append(f"hook {caller.name}({arg}=...): {gone[arg]}")
    return found


def unknown_groups() -> list[str]:
    """Installed entry points in a ``virtplane.*`` group virtplane does not read (a typo
    such as ``virtplane.storages`` leaves a plugin silently unused)."""
    from virtplane._plugins import KIND_GROUPS

    known = set(KIND_GROUPS.values())
    out = []
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group.startswith("virtplane.") and ep.group not in known:
                out.append(f"{dist.metadata['Name']} declares entry point {ep.name!r} in group "
                           f"{ep.group!r}, which virtplane does not read; groups: "
                           + ", ".join(sorted(known)))
    return sorted(set(out))
