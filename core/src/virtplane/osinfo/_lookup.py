"""Looking values up the way oVirt does: the versioned value up the ``derivedFrom``
chain first, then the unversioned one."""

from __future__ import annotations

from virtplane.osinfo._entries import OsEntry, OsRepositoryCore, Value
from virtplane.osinfo._rules import ATTRIBUTES, split_list


class LookupMixin(OsRepositoryCore):
    """Lookups of the loaded entries (memoised: entries never change after loading)."""

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
