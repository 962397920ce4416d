"""What loading osinfo files produces: values with their source, OS entries, the
problems found (``OsinfoError``, ``RetiredAttributeWarning``), and the state of a
repository that loading fills and lookups read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from virtplane.errors import ConfigError


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


class OsRepositoryCore:
    """The loaded OS entries and what loading recorded about them."""

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
