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

Load-time checks: a key or value outside the grammar is an error naming the
file, line and what is allowed; two OS names with one id is an error ("colliding
os id"); an OS whose parent is missing is dropped and reported (oVirt's
"Illegal parent for os"); a ``derivedFrom`` cycle is an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class Value:
    """One value with where it came from."""

    text: str
    source: str


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
        #: entries dropped at load time, with the reason (e.g. missing parent)
        self.dropped: dict[str, str] = {}

    # ------------------------------------------------------------- loading

    def add_file(self, path: Path) -> None:
        """Read one file on top of what is loaded (later wins, key by key)."""
        try:
            records = read_properties(path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        for line, key, value in records:
            where = f"{path}:{line}"
            self._add_record(where, key, value)
        self.files.append(str(path))

    def _add_record(self, where: str, key: str, value: str) -> None:
        if key.startswith("backwardCompatibility."):
            if not value.isdigit():
                raise ConfigError(f"{where}: {key} = {value!r}: the value must be an OS id")
            self.backward_compatibility[key.partition(".")[2]] = Value(value, where)
            return
        parts = key.split(".")
        if len(parts) < 4 or parts[0] != "os":
            raise ConfigError(
                f"{where}: {key!r} is not an osinfo key; allowed: "
                "os.<name>.<attribute>.value[.<version>] or backwardCompatibility.<Name>")
        version = None
        if "value" not in parts[2:]:
            raise ConfigError(f"{where}: {key!r} has no '.value' part "
                              "(os.<name>.<attribute>.value[.<version>])")
        vi = len(parts) - 1 - parts[::-1].index("value")
        tail = parts[vi + 1:]
        if tail:
            version = ".".join(tail)
            if not _VERSION.fullmatch(version):
                raise ConfigError(f"{where}: {key!r}: version {version!r} is not allowed; "
                                  "use <3|4>.<digit>, e.g. value.4.8")
        name, attr = parts[1], ".".join(parts[2:vi])
        kind = ATTRIBUTES.get(attr)
        if kind is None:
            raise ConfigError(f"{where}: unknown osinfo attribute {attr!r} of os {name}; "
                              f"allowed: {', '.join(sorted(ATTRIBUTES))}")
        self._check_value(where, attr, kind, value)
        entry = self.entries.setdefault(name, OsEntry(name))
        entry.keys.setdefault(attr, {})[version] = Value(value, where)

    @staticmethod
    def _check_value(where: str, attr: str, kind: object, value: str) -> None:
        def bad(allowed: str) -> ConfigError:
            return ConfigError(f"{where}: {attr} = {value!r} is not allowed; "
                               f"allowed: {allowed}")

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
        """Check the loaded entries: ids, parents, cycles (call after the last file)."""
        changed = True
        while changed:  # dropping a parent can orphan its children in turn
            changed = False
            for name, entry in list(self.entries.items()):
                parent = entry.own("derivedFrom")
                if parent is not None and parent.text not in self.entries:
                    self.dropped[name] = (
                        f"derivedFrom {parent.text!r} ({parent.source}) names no loaded OS; "
                        f"{name} was dropped (oVirt: 'Illegal parent for os')")
                    del self.entries[name]
                    changed = True
        for name in self.entries:
            seen = [name]
            current = name
            while True:
                parent = self.entries[current].own("derivedFrom")
                if parent is None:
                    break
                if parent.text in seen:
                    raise ConfigError(f"osinfo: derivedFrom cycle: {' -> '.join(seen)} -> "
                                      f"{parent.text} ({parent.source})")
                seen.append(parent.text)
                current = parent.text
        ids: dict[int, str] = {}
        for name, entry in self.entries.items():
            own = entry.own("id")
            if own is None:
                raise ConfigError(f"osinfo: os {name} has no id (os.{name}.id.value)")
            os_id = int(own.text)
            if os_id in ids:
                other = self.entries[ids[os_id]].own("id")
                raise ConfigError(
                    f"osinfo: colliding os id {os_id}: {ids[os_id]} ({other.source if other else '?'}) "
                    f"and {name} ({own.source})")
            ids[os_id] = name

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
    """Build the repository from plugin defaults, override folders and extra files."""
    repo = OsRepository()
    for path in [*plugin_files, *override_files(), *extra]:
        repo.add_file(Path(path))
    repo.finish()
    return repo


def env_files() -> list[Path]:
    """Extra files named by ``VIRTPLANE_OSINFO`` (``os.pathsep``-separated)."""
    raw = os.environ.get("VIRTPLANE_OSINFO", "")
    return [Path(p) for p in raw.split(os.pathsep) if p]
