"""OS information in oVirt's ``osinfo`` properties format.

Files are Java-style ``.properties`` with these records (oVirt's ``osinfo.jj``)::

    os.<name>.<attribute>.value = <value>
    os.<name>.<attribute>.value.<major.minor> = <value for that compatibility version>
    backwardCompatibility.<OldName> = <id>
    # comment

Sources, later wins key by key:

1. the OS entries each loaded architecture plugin ships (``osinfo_files()``),
2. ``osinfo.conf.d/*.properties`` in ``$XDG_CONFIG_DIRS/virtplane`` then
   ``$XDG_CONFIG_HOME/virtplane``, each folder in file-name order — drop oVirt's
   own ``osinfo-defaults.properties`` there and it loads as it is,
3. files given explicitly (``OsRepository.load(extra=...)``).

Lookup follows oVirt (``OsRepositoryImpl.getValueByVersion``): the versioned
value ``value.<version>`` on the OS, then up its ``derivedFrom`` chain; only if
no OS in the chain has it, the unversioned ``value`` the same way. So a
versioned value on an ancestor beats an unversioned value on a child.

Files of every oVirt era load: attributes oVirt retired over the years
(``RETIRED``: ``devices.tpmAllowed``, ``devices.balloon.enabled``,
``resources.minimum.numberOsCpus``, ``displayProtocols`` ...) were valid in their
day, so they are accepted with a warning (``RetiredAttributeWarning``, and
``OsRepository.retired`` for the CLI) and mapped to their successor where oVirt
had one; so is the 2013 display protocol spelling ``qxl/<video>`` (now
``spice/<video>``).

Load-time checks: a key or value outside the grammar is an error naming the
file, line and what is allowed; two OS names with one id is an error ("colliding
os id"); a ``derivedFrom`` cycle is an error. Every error of every file is
collected and raised together as one ``OsinfoError`` (``.problems``), so an
administrator fixes a file in one pass. An OS whose parent is missing is not an
error: it is dropped and reported in ``OsRepository.dropped`` (oVirt's "Illegal
parent for os"), with its own children; so is an OS no loaded file gives an id
(an override folder written for OSes this installation does not define).

The parts, one module each: ``_rules`` (the attributes and what they allow,
retired attributes), ``_properties`` (the file syntax), ``_entries`` (values,
entries, problems), ``_loading`` (reading and checking files) and ``_lookup``
(oVirt's lookup order); :class:`OsRepository` puts loading and lookups together.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from virtplane.osinfo._entries import (
    OsEntry,
    OsinfoError,
    Problem,
    RetiredAttributeWarning,
    Value,
)
from virtplane.osinfo._loading import LoadingMixin
from virtplane.osinfo._lookup import LookupMixin
from virtplane.osinfo._properties import read_properties
from virtplane.osinfo._rules import ATTRIBUTES, CHIPSETS, RETIRED, Retired, split_list

__all__ = ["ATTRIBUTES", "CHIPSETS", "RETIRED", "OsEntry", "OsRepository", "OsinfoError",
           "Problem", "Retired", "RetiredAttributeWarning", "Value", "env_files", "load",
           "override_files", "read_properties", "split_list"]


class OsRepository(LoadingMixin, LookupMixin):
    """All OS entries, resolved with oVirt's lookup rules."""


def override_files() -> list[Path]:
    """``osinfo.conf.d/*.properties`` under the XDG config dirs, in load order."""
    from virtplane.config import _xdg_config_paths

    files: list[Path] = []
    for toml in _xdg_config_paths():  # system folders first, the user's last
        folder = toml.parent / "osinfo.conf.d"
        if folder.is_dir():
            files.extend(sorted(folder.glob("*.properties")))
    return files


def load(plugin_files: Iterable[Path], extra: Iterable[Path] = ()) -> OsRepository:
    """Build the repository from plugin defaults, override folders and extra files.

    Raises one ``OsinfoError`` with the errors of every file; entries dropped for a
    missing parent are in ``dropped`` and retired attributes in ``retired`` (and
    warned about), for ``virtplane os list`` and ``plugins doctor`` to show.
    """
    repo = OsRepository()
    problems: list[Problem] = []
    for path in [*plugin_files, *override_files(), *extra]:
        try:
            repo.add_file(Path(path))
        except OsinfoError as exc:
            problems.extend(exc.problems)
    if problems:  # checks of the whole set would only repeat these errors' effects
        raise OsinfoError(problems)
    repo.finish()
    return repo


def env_files() -> list[Path]:
    """Extra files named by ``VIRTPLANE_OSINFO`` (``os.pathsep``-separated)."""
    raw = os.environ.get("VIRTPLANE_OSINFO", "")
    return [Path(p) for p in raw.split(os.pathsep) if p]
