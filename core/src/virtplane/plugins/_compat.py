"""Does an installed plugin fit the installed core? (loading, ``plugins doctor``, the kit)

Four things decide it, each reported with the versions involved:

* its entry points declare a ``VIRTPLANE_PLUGIN_API`` range. A range admitting
  this core's :data:`~virtplane.PLUGIN_API_VERSION` fits. A range admitting only
  the previous major (``">=1.0,<2"`` under 2.0) still loads, through that
  major's adapter, and the record says so in ``deprecated`` (``plugins doctor``
  prints it as ``[warn]``, the kit fails on it): the adapter goes away with the
  next major. Any other range, or no range, fails the plugin;
* its ``Requires-Dist: virtplane ...`` excludes the installed core;
* its hook implementations take hook arguments that are deprecated (they still
  work, with a warning; see :data:`virtplane.hookspecs.DEPRECATED_ARGUMENTS`);
* it declares entry points in a ``virtplane.*`` group virtplane does not read.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
from typing import Any, Final, NamedTuple, final

from virtplane._version import PLUGIN_API_VERSION
from virtplane.plugins import _discovery
from virtplane.plugins._kinds import API_ATTR, KIND_GROUPS, OTHER_GROUPS

__all__ = [
    "LEGACY_APIS",
    "ApiFit",
    "api_compatible",
    "api_fit",
    "deprecated_uses",
    "requirement_problems",
    "unknown_groups",
]

log = logging.getLogger("virtplane.plugins")

#: Older plugin-API majors this core still runs, through an adapter: adapter name ->
#: the plugin-API version the adapter offers (the last release of that major).
LEGACY_APIS: Final = {"1.x": "1.0"}

#: Bumped when the verdict file's layout changes, so an older layout is never misread.
_VERDICT_FORMAT = 2


@final
class ApiFit(NamedTuple):
    """Whether a declared plugin-API range fits this core, and how."""

    #: the plugin can be used (natively or through an adapter)
    ok: bool
    #: why it cannot be used; or, when ``adapter`` is set, the deprecation to record
    reason: str
    #: the adapter it runs through (``"1.x"``), None when it targets this core's major
    adapter: str | None = None


_VERDICTS: dict[str, ApiFit] | None = None


def _verdict_file() -> str:
    return os.path.join(os.path.dirname(_discovery.cache_dir()),
                        f"api-verdicts-{PLUGIN_API_VERSION}-{_VERDICT_FORMAT}.json")


def api_fit(spec: str) -> ApiFit:
    """How this core can run a plugin that declares the plugin-API range ``spec``.

    Verdicts are remembered per core plugin-API version in the cache folder, so
    ``packaging`` is imported only for a range not seen before.
    """
    global _VERDICTS
    if _VERDICTS is None:
        _VERDICTS = _read_verdicts()
    if spec in _VERDICTS:
        return _VERDICTS[spec]
    verdict = _api_fit(spec)
    _VERDICTS[spec] = verdict
    _write_verdicts(_VERDICTS)
    return verdict


def api_compatible(spec: str) -> tuple[bool, str]:
    """``(fits, why not)`` for ``spec``; a range fitting through an adapter fits."""
    verdict = api_fit(spec)
    return verdict.ok, "" if verdict.ok else verdict.reason


def _read_verdicts() -> dict[str, ApiFit]:
    try:
        with open(_verdict_file(), encoding="utf-8") as f:
            return {k: ApiFit(bool(v[0]), str(v[1]), None if v[2] is None else str(v[2]))
                    for k, v in json.load(f).items()}
    except (OSError, ValueError, TypeError, IndexError, AttributeError):
        return {}  # missing or damaged: verdicts are worked out again


def _write_verdicts(verdicts: dict[str, ApiFit]) -> None:
    import tempfile

    filename = _verdict_file()
    try:
        folder = os.path.dirname(filename)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({k: list(v) for k, v in verdicts.items()}, f)
        os.replace(tmp, filename)
    except OSError as exc:
        # an unwritable cache only costs speed next time
        log.debug("cannot remember plugin-API verdicts in %s: %s", filename, exc)


def _api_fit(spec: str) -> ApiFit:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    major = int(PLUGIN_API_VERSION.split(".")[0])
    try:
        specifier = SpecifierSet(spec)
    except InvalidSpecifier:
        return ApiFit(False, f"declares {API_ATTR} = {spec!r}, which is not a version range "
                             f"(write e.g. '>={major}.0,<{major + 1}')")
    if specifier.contains(PLUGIN_API_VERSION, prereleases=True):
        return ApiFit(True, "")
    for adapter, version in LEGACY_APIS.items():
        if specifier.contains(version, prereleases=True):
            return ApiFit(True, (
                f"plugin API {adapter}: declares {API_ATTR} = {spec!r}, so it runs through "
                f"the {adapter} adapter of plugin API {PLUGIN_API_VERSION}, which plugin API "
                f"{major + 1}.0 removes; port it and declare '>={major}.0,<{major + 1}' "
                "(docs/versioning.md, 'What changed in 2.0')"), adapter)
    return ApiFit(False, f"needs plugin API {spec}, but this virtplane core offers "
                         f"{PLUGIN_API_VERSION}"
                  + (f" (and {', '.join(LEGACY_APIS.values())} through adapters)"
                     if LEGACY_APIS else ""))


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
    known = {*KIND_GROUPS.values(), *OTHER_GROUPS}
    out = []
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group.startswith("virtplane.") and ep.group not in known:
                out.append(f"{dist.metadata['Name']} declares entry point {ep.name!r} in group "
                           f"{ep.group!r}, which virtplane does not read; groups: "
                           + ", ".join(sorted(known)))
    return sorted(set(out))
