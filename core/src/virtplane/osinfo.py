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
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from virtplane.errors import ConfigError

_VERSION = re.compile(r"[34]\.[0-9]")
_BOOL = {"true", "false"}

#: attribute -> kind: "str", "int", "bool", or a frozenset of allowed values, or
#: ("list", allowed) for comma lists (items may carry an ``i440fx/``/``q35/`` prefix).
ATTRIBUTES: dict[str, object] = {
    "id": "int", "name": "str", "description": "str", "derivedFrom": "str",
    "family": "str",
    # any architecture name: a new architecture plugin brings its own OS entries
    "cpuArchitecture": "str",
    "bus": frozenset({"32", "64"}), "cpu.unsupported": "str", "cpu.hotplugSupport": "bool",
    "cpu.hotunplugSupport": "bool", "isTimezoneTypeInteger": "bool",
    "q35Support": frozenset({"true", "false", "insecure"}), "sysprepPath": "str",
    "sysprepFileName": "str", "productKey": "str", "vmInitType": "str", "deprecated": "bool",
    "resources.minimum.ram": "int", "resources.maximum.ram": "int",
    "resources.minimum.disksize": "int", "resources.maximum.disksize": "int",
    "resources.minimum.numberOfCpus": "int", "resources.maximum.numberOfCpus": "int",
    "devices.display.protocols": ("list", None), "devices.display.vramMultiplier": "int",
    "devices.display.vgamemMultiplier": "int",
    "devices.watchdog.models": ("list", frozenset({"i6300esb", "diag288"})),
    "devices.network": ("list", frozenset({"rtl8139_pv", "rtl8139", "e1000", "e1000e", "pv",
                                           "spaprVlan", "pciPassthrough"})),
    "devices.network.hotplugSupport": "bool",
    "devices.disk.hotpluggableInterfaces": ("list", frozenset(
        {"IDE", "VirtIO", "VirtIO_SCSI", "SPAPR_VSCSI", "SATA"})),
    "devices.diskInterfaces": ("list", frozenset(
        {"IDE", "VirtIO", "VirtIO_SCSI", "SPAPR_VSCSI", "SATA"})),
    "devices.audio": ("list", frozenset({"ich6", "ich9", "ac97"})),
    "devices.audio.enabled": "bool",
    "devices.cdInterface": ("list", frozenset({"ide", "scsi", "sata"})),
    "devices.maxPciDevices": "int", "devices.hyperv.enabled": "bool",
    "devices.floppy.support": "bool", "devices.usb.controller": ("list", None),
    "devices.console.target.type": frozenset({"serial", "virtio", "sclp"}),
    "devices.memoryHotplug.specialBlock": "bool", "devices.legacyVirtio": "bool",
    "devices.ovirtGuestAgentChannel": "bool",
    "devices.tpm": frozenset({"unsupported", "supported", "required"}),
}
CHIPSETS = ("i440fx", "q35")


@dataclass(frozen=True)
class Retired:
    """An attribute oVirt once read and later removed (from ovirt-engine's history of
    ``packaging/conf/osinfo-defaults.properties`` and ``osinfo.jj``).

    :ivar era: when oVirt had it (dates of the commits adding and removing it).
    :ivar successor: the attribute that replaced it, or None when nothing did.
    :ivar convert: the retired value -> the successor's value (None: the same text).
    :ivar why: what happened to it, shown in the warning.
    """

    era: str
    successor: str | None
    why: str
    convert: Callable[[str], str] | None = None


def _tpm(value: str) -> str:
    # oVirt's own rename (2021-12, "Add Windows 11 support"): true -> supported,
    # false -> unsupported; "required" did not exist before the rename
    return "supported" if value.lower() == "true" else "unsupported"


def _spice(value: str) -> str:
    # oVirt's own replacement (2013-12, "VM Device Type for Display Type") gave OSes
    # with spiceSupport=false VNC only and the others SPICE as well
    return "vnc/cirrus,spice/qxl" if value.lower() == "true" else "vnc/cirrus"


#: retired attribute -> what became of it
RETIRED: dict[str, Retired] = {
    "resources.minimum.numberOsCpus": Retired(
        "2013-05..2014-08 (oVirt 3.3-3.4)", None,
        "never read by the engine and removed as unused; resources.minimum.numberOfCpus "
        "(2021-12) is a new, enforced rule, so it is not carried over"),
    "resources.recommended.ram": Retired(
        "2013-05..2013-07 (oVirt 3.3)", None, "never read by the engine"),
    "spiceSupport": Retired(
        "2013-05..2014-01 (oVirt 3.3-3.4)", "devices.display.protocols",
        "replaced by the display protocol list", _spice),
    "displayProtocols": Retired(
        "2013-12..2014-01 (oVirt 3.4)", "devices.display.protocols", "renamed"),
    "watchDogModels": Retired(
        "2013-11..2014-01 (oVirt 3.4)", "devices.watchdog.models", "renamed"),
    "devices.balloon.enabled": Retired(
        "2014-06..2021-02 (oVirt 3.5-4.4.4)", None,
        "the memory balloon is allowed for every OS since (oVirt 'refactor ballooning "
        "support')"),
    "devices.tpmAllowed": Retired(
        "2021-04..2021-12 (oVirt 4.4.6-4.4.9)", "devices.tpm",
        "became devices.tpm (true -> supported, false -> unsupported)", _tpm),
}
#: retired spellings of display protocol items (graphics part): 2013's "qxl" was SPICE
_RETIRED_GRAPHICS = {"qxl": "spice"}


class Problem(NamedTuple):
    """One load-time error, or one dropped entry or retired attribute (``name`` is the
    OS, or "" when the problem is not about one OS)."""

    file: str
    line: int
    name: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file else "osinfo: "
        return where + self.message


class OsinfoError(ConfigError):
    """Every error found in the osinfo files, listed together (``problems``)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        if len(problems) == 1:
            text = str(problems[0])
        else:
            text = f"osinfo: {len(problems)} errors:\n" + "\n".join(
                f"  {p}" for p in problems)
        super().__init__(text)


class RetiredAttributeWarning(UserWarning):
    """An osinfo file uses attributes oVirt retired; they were accepted (see
    ``virtplane.osinfo.RETIRED``)."""


class _Bad(Exception):
    """One record's error inside ``add_file`` (collected, not raised to callers)."""


@dataclass
class Value:
    """One value with where it came from."""

    text: str
    source: str
    #: the retired attribute this value was mapped from (an explicit value beats it)
    mapped_from: str | None = None


@dataclass
class OsEntry:
    """The raw keys of one OS: attribute -> version (None = unversioned) -> value."""

    name: str
    keys: dict[str, dict[str | None, Value]] = field(default_factory=dict)

    def own(self, attr: str, version: str | None = None) -> Value | None:
        return self.keys.get(attr, {}).get(version)


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


def split_list(text: str, chipset: str | None = None) -> list[str]:
    """Items of a comma list; ``i440fx/X``/``q35/X`` items only for that chipset."""
    out = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        prefix, sep, rest = item.partition("/")
        if sep and prefix in CHIPSETS:
            if chipset is None or chipset == prefix:
                out.append(rest.strip())
            continue
        out.append(item)
    return out


class OsRepository:
    """All OS entries, resolved with oVirt's lookup rules."""

    def __init__(self) -> None:
        self.entries: dict[str, OsEntry] = {}
        self.backward_compatibility: dict[str, Value] = {}
        self.files: list[str] = []
        #: entries dropped at load time: ``(file, line, name, reason)`` of the
        #: ``derivedFrom`` that names no loaded OS (or a dropped one)
        self.dropped: list[Problem] = []
        #: retired attributes accepted: ``(file, line, name, what became of it)``
        self.retired: list[Problem] = []
        #: (name, attr, version) -> lookup result; entries never change after loading
        self._memo: dict[tuple[str, str, str | None], Value | None] = {}

    # ------------------------------------------------------------- loading

    def add_file(self, path: Path) -> None:
        """Read one file on top of what is loaded (later wins, key by key).

        Raises one ``OsinfoError`` listing every bad record of the file (its good
        records are loaded); retired attributes give one ``RetiredAttributeWarning``
        per file and land in ``retired``.
        """
        self._memo.clear()
        try:
            records = read_properties(path)
        except OSError as exc:
            raise OsinfoError([Problem(str(path), 0, "", f"cannot read: {exc.strerror}")]
                              ) from None
        problems: list[Problem] = []
        first_retired = len(self.retired)
        for line, key, value in records:
            try:
                self._add_record(str(path), line, key, value)
            except _Bad as bad:
                name = key.split(".")[1] if key.startswith("os.") and "." in key else ""
                problems.append(Problem(str(path), line, name, str(bad)))
        self.files.append(str(path))
        retired = self.retired[first_retired:]
        if retired:
            warnings.warn(RetiredAttributeWarning(
                f"{path}: {len(retired)} retired osinfo attribute(s) accepted: "
                + "; ".join(f"line {r.line} {r.message}" for r in retired)), stacklevel=2)
        if problems:
            raise OsinfoError(problems)

    def _add_record(self, file: str, line: int, key: str, value: str) -> None:
        where = f"{file}:{line}"
        if key.startswith("backwardCompatibility."):
            if not value.isdigit():
                raise _Bad(f"{key} = {value!r}: the value must be an OS id")
            self.backward_compatibility[key.partition(".")[2]] = Value(value, where)
            return
        parts = key.split(".")
        if len(parts) < 4 or parts[0] != "os":
            raise _Bad(f"{key!r} is not an osinfo key; allowed: "
                       "os.<name>.<attribute>.value[.<version>] or backwardCompatibility.<Name>")
        version = None
        if "value" not in parts[2:]:
            raise _Bad(f"{key!r} has no '.value' part (os.<name>.<attribute>.value[.<version>])")
        vi = len(parts) - 1 - parts[::-1].index("value")
        tail = parts[vi + 1:]
        if tail:
            version = ".".join(tail)
            if not _VERSION.fullmatch(version):
                raise _Bad(f"{key!r}: version {version!r} is not allowed; "
                           "use <3|4>.<digit>, e.g. value.4.8")
        name, attr = parts[1], ".".join(parts[2:vi])
        mapped_from = None
        retired = RETIRED.get(attr)
        if retired is not None:
            mapped_from, value = self._retire(file, line, name, attr, retired, value)
            if retired.successor is None:
                return
            attr = retired.successor
        kind = ATTRIBUTES.get(attr)
        if kind is None:
            raise _Bad(f"unknown osinfo attribute {attr!r} of os {name}; allowed: "
                       f"{', '.join(sorted(ATTRIBUTES))}; retired (accepted with a warning): "
                       f"{', '.join(sorted(RETIRED))}")
        if attr == "devices.display.protocols":
            value = self._display_protocols(file, line, name, value)
        self._check_value(attr, kind, value, mapped_from)
        entry = self.entries.setdefault(name, OsEntry(name))
        slot = entry.keys.setdefault(attr, {})
        current = slot.get(version)
        if mapped_from is not None and current is not None and current.mapped_from is None:
            return  # the successor written out beats a mapped retired attribute
        slot[version] = Value(value, where, mapped_from)

    def _retire(self, file: str, line: int, name: str, attr: str, retired: Retired,
                value: str) -> tuple[str, str]:
        """Record a retired attribute; return it and the value for its successor."""
        if retired.successor is None:
            what = f"{attr} ({retired.era}) is ignored: {retired.why}"
            self.retired.append(Problem(file, line, name, what))
            return attr, value
        if retired.convert is not None:
            if value.lower() not in _BOOL:
                raise _Bad(f"{attr} = {value!r} is not allowed; allowed: true or false "
                           f"(retired attribute, {retired.era})")
            new = retired.convert(value)
        else:
            new = value
        what = (f"{attr} ({retired.era}) read as {retired.successor} = {new!r}: "
                f"{retired.why}")
        self.retired.append(Problem(file, line, name, what))
        return attr, new

    def _display_protocols(self, file: str, line: int, name: str, value: str) -> str:
        """Map 2013's ``qxl/<video>`` items (SPICE was called qxl) to ``spice/<video>``."""
        items = [i.strip() for i in value.split(",") if i.strip()]
        new = []
        for item in items:
            graphics, sep, video = item.partition("/")
            if sep and graphics in _RETIRED_GRAPHICS:
                item = f"{_RETIRED_GRAPHICS[graphics]}/{video}"
            new.append(item)
        text = ",".join(new)
        if new != items:
            self.retired.append(Problem(file, line, name, (
                f"devices.display.protocols = {value!r} (2013-12..2014-07, oVirt 3.4) "
                f"read as {text!r}: the graphics type 'qxl' is SPICE")))
        return text if new != items else value

    @staticmethod
    def _check_value(attr: str, kind: object, value: str, mapped_from: str | None) -> None:
        def bad(allowed: str) -> _Bad:
            shown = f"{attr} = {value!r}"
            if mapped_from is not None:
                shown += f" (from retired {mapped_from})"
            return _Bad(f"{shown} is not allowed; allowed: {allowed}")

        if kind == "int":
            if not re.fullmatch(r"-?\d+", value):
                raise bad("an integer")
        elif kind == "bool":
            if value.lower() not in _BOOL:
                raise bad("true or false")
        elif isinstance(kind, frozenset):
            if value not in kind:
                raise bad(", ".join(sorted(kind)))
        elif isinstance(kind, tuple):
            allowed = kind[1]
            if allowed is not None:
                for item in split_list(value):
                    if item not in allowed:
                        raise bad(f"a comma list of {', '.join(sorted(allowed))} (items may "
                                  "carry an i440fx/ or q35/ prefix)")

    def finish(self) -> None:
        """Check the loaded entries (call after the last file): drop entries without an
        id or whose parent is missing (recorded in ``dropped``), then raise one
        ``OsinfoError`` listing every ``derivedFrom`` cycle and colliding id."""
        self._memo.clear()
        dropped_names: set[str] = set()
        for name, entry in list(self.entries.items()):
            if entry.own("id") is None:  # only overrides: no loaded file defines this OS
                file, line = _split_source(_first_source(entry))
                self.dropped.append(Problem(file, line, name, (
                    f"os {name} dropped: no loaded file gives it an id (os.{name}.id.value); "
                    "its keys only override an OS no loaded file defines")))
                dropped_names.add(name)
                del self.entries[name]
        changed = True
        while changed:  # dropping a parent can orphan its children in turn
            changed = False
            for name, entry in list(self.entries.items()):
                parent = entry.own("derivedFrom")
                if parent is None or parent.text in self.entries:
                    continue
                file, line = _split_source(parent.source)
                why = ("names an OS that was dropped itself" if parent.text in dropped_names
                       else "names no loaded OS")
                self.dropped.append(Problem(file, line, name, (
                    f"os {name} dropped: derivedFrom {parent.text!r} {why} "
                    "(oVirt: 'Illegal parent for os')")))
                dropped_names.add(name)
                del self.entries[name]
                changed = True
        problems: list[Problem] = []
        cycles: set[frozenset[str]] = set()
        for name in self.entries:
            seen = [name]
            current = name
            while True:
                parent = self.entries[current].own("derivedFrom")
                if parent is None:
                    break
                if parent.text in seen:
                    members = frozenset(seen[seen.index(parent.text):])
                    if members not in cycles:
                        cycles.add(members)
                        file, line = _split_source(parent.source)
                        problems.append(Problem(file, line, current, (
                            f"derivedFrom cycle: {' -> '.join(seen)} -> {parent.text}")))
                    break
                seen.append(parent.text)
                current = parent.text
        ids: dict[int, str] = {}
        for name, entry in self.entries.items():
            own = entry.own("id")
            if own is None:  # dropped above; kept for type narrowing
                continue
            os_id = int(own.text)
            if os_id in ids:
                other = self.entries[ids[os_id]].own("id")
                file, line = _split_source(own.source)
                problems.append(Problem(file, line, name, (
                    f"colliding os id {os_id}: {ids[os_id]} "
                    f"({other.source if other else '?'}) and {name} ({own.source})")))
                continue
            ids[os_id] = name
        if problems:
            raise OsinfoError(problems)

    # ------------------------------------------------------------- lookups

    def names(self) -> list[str]:
        return sorted(self.entries)

    def chain(self, name: str) -> list[OsEntry]:
        """The OS and its ancestors, nearest first."""
        if name not in self.entries:
            from virtplane.errors import NotFound

            raise NotFound(f"no OS named {name!r} in osinfo")
        out = []
        current: str | None = name
        while current is not None:
            entry = self.entries[current]
            out.append(entry)
            parent = entry.own("derivedFrom")
            current = parent.text if parent else None
        return out

    def lookup(self, name: str, attr: str, version: str | None = None) -> Value | None:
        """oVirt's lookup: versioned up the chain first, then unversioned up the chain."""
        key = (name, attr, version)
        try:
            return self._memo[key]
        except KeyError:
            pass
        found = self._lookup(name, attr, version)
        self._memo[key] = found
        return found

    def _lookup(self, name: str, attr: str, version: str | None) -> Value | None:
        chain = self.chain(name)
        if version is not None:
            for entry in chain:
                found = entry.own(attr, version)
                if found is not None:
                    return found
        for entry in chain:
            found = entry.own(attr)
            if found is not None:
                return found
        return None

    def get(self, name: str, attr: str, version: str | None = None, default: str = "") -> str:
        found = self.lookup(name, attr, version)
        return found.text if found is not None else default

    def get_list(self, name: str, attr: str, version: str | None = None,
                 chipset: str | None = None) -> list[str]:
        return split_list(self.get(name, attr, version), chipset)

    def get_bool(self, name: str, attr: str, version: str | None = None) -> bool:
        return self.get(name, attr, version).lower() == "true"

    def get_int(self, name: str, attr: str, version: str | None = None,
                default: int = 0) -> int:
        text = self.get(name, attr, version)
        return int(text) if text else default

    def arch_of(self, name: str) -> str:
        return self.get(name, "cpuArchitecture") or "x86_64"

    def list_for(self, arch: str | None = None) -> list[str]:
        """OS names, optionally only those of an architecture (what oVirt's UI lists)."""
        return [n for n in self.names() if arch is None or self.arch_of(n) == arch]

    def effective(self, name: str, version: str | None = None) -> dict[str, Value]:
        """Every attribute's effective value for an OS, with its source."""
        out: dict[str, Value] = {}
        for attr in ATTRIBUTES:
            found = self.lookup(name, attr, version)
            if found is not None:
                out[attr] = found
        return out


def _split_source(source: str) -> tuple[str, int]:
    """``"path:12"`` -> ``("path", 12)``."""
    file, _sep, line = source.rpartition(":")
    return (file, int(line)) if line.isdigit() else (source, 0)


def _first_source(entry: OsEntry) -> str:
    """Where an entry first appears (for errors about the entry as a whole)."""
    sources = [v.source for values in entry.keys.values() for v in values.values()]
    return min(sources, key=lambda s: _split_source(s)[1]) if sources else ""


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
