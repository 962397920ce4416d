"""Loading osinfo files into a repository: each record checked against the grammar
(retired attributes mapped to their successors), then the whole set checked
(entries without an id or parent dropped, ``derivedFrom`` cycles, colliding ids)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from virtplane.osinfo._entries import (
    OsEntry,
    OsinfoError,
    OsRepositoryCore,
    Problem,
    RetiredAttributeWarning,
    Value,
    _Bad,
)
from virtplane.osinfo._properties import read_properties
from virtplane.osinfo._rules import (
    _BOOL,
    _RETIRED_GRAPHICS,
    _VERSION,
    ATTRIBUTES,
    RETIRED,
    Retired,
    split_list,
)


class LoadingMixin(OsRepositoryCore):
    """Reading files into the repository and checking the result."""

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


def _split_source(source: str) -> tuple[str, int]:
    """``"path:12"`` -> ``("path", 12)``."""
    file, _sep, line = source.rpartition(":")
    return (file, int(line)) if line.isdigit() else (source, 0)


def _first_source(entry: OsEntry) -> str:
    """Where an entry first appears (for errors about the entry as a whole)."""
    sources = [v.source for values in entry.keys.values() for v in values.values()]
    return min(sources, key=lambda s: _split_source(s)[1]) if sources else ""
