"""oVirt's search language, the part the SDK examples and the Ansible modules send.

    name=myvm                    name="my vm"          name=web*
    name=x and cluster=c1        status=up or status=down
    Clusters.name=c1             vm_names=vm1          correlation_id=abc
    mycluster                    (free text: the name)  page 2 (with max=)
    sortby name desc

``and`` binds tighter than ``or``. Values may be quoted; ``*`` matches any run
of characters. Matching is case-sensitive unless the request says
``case_sensitive=false`` (the engine's default, whatever its docs say). A key a
collection does not know is a 400 that lists the keys it does know, rather
than an empty result a client would take for "absent" and then create again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from virtplane.errors import InvalidInput

T = TypeVar("T")

#: key (lower case) -> the values of an object that key matches against
Fields = dict[str, Callable[[T], Iterable[str]]]

_TOKEN = re.compile(r'\s*(?:"(?P<q>[^"]*)"|(?P<op>!=|>=|<=|=|<|>)|(?P<w>[^\s=!<>"]+))')
_PREFIX = re.compile(r"^\s*[A-Za-z]+\s*:\s*")


@dataclass
class Term:
    key: str | None  # None: free text against the name
    op: str
    value: str


@dataclass
class Query:
    """A parsed search: OR of AND groups, optional sort and page."""

    groups: list[list[Term]] = field(default_factory=list)
    sortby: str | None = None
    descending: bool = False
    page: int | None = None


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise InvalidInput(f"cannot read the search {text!r} at {text[pos:]!r}")
        pos = m.end()
        if m.group("q") is not None:
            out.append(("value", m.group("q")))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        else:
            out.append(("word", m.group("w")))
    return out


def parse(text: str) -> Query:
    """Parse a search expression (an empty one matches everything)."""
    query = Query()
    tokens = _tokens(_PREFIX.sub("", text, count=1))
    group: list[Term] = []
    i = 0
    while i < len(tokens):
        kind, word = tokens[i]
        low = word.lower() if kind == "word" else ""
        if low == "and":
            i += 1
            continue
        if low == "or":
            query.groups.append(group)
            group = []
            i += 1
            continue
        if low == "sortby" and i + 1 < len(tokens):
            query.sortby = tokens[i + 1][1].lower()
            i += 2
            if i < len(tokens) and tokens[i][1].lower() in ("asc", "desc"):
                query.descending = tokens[i][1].lower() == "desc"
                i += 1
            continue
        if low == "page" and i + 1 < len(tokens):
            try:
                query.page = int(tokens[i + 1][1])
            except ValueError:
                raise InvalidInput(f"page needs a number, not {tokens[i + 1][1]!r}") from None
            if query.page < 1:
                raise InvalidInput("pages are numbered from 1")
            i += 2
            continue
        if i + 1 < len(tokens) and tokens[i + 1][0] == "op":
            if i + 2 >= len(tokens):
                raise InvalidInput(f"the search term {word}{tokens[i + 1][1]} has no value")
            group.append(Term(word.lower(), tokens[i + 1][1], tokens[i + 2][1]))
            i += 3
            continue
        group.append(Term(None, "=", word))
        i += 1
    query.groups.append(group)
    return query


def _matcher(value: str, case_sensitive: bool) -> Callable[[str], bool]:
    if not case_sensitive:
        value = value.casefold()
    if "*" in value:
        regex = re.compile(".*".join(re.escape(part) for part in value.split("*")) + r"\Z",
                           re.DOTALL)
        if case_sensitive:
            return lambda s: regex.match(s) is not None
        return lambda s: regex.match(s.casefold()) is not None
    if case_sensitive:
        return lambda s: s == value
    return lambda s: s.casefold() == value


class Searcher(Generic[T]):
    """The search keys of one collection."""

    def __init__(self, kind: str, fields: Fields[T], sort_key: Callable[[T], str]) -> None:
        self.kind = kind
        self.fields = {k.lower(): v for k, v in fields.items()}
        self.sort_key = sort_key

    def _term(self, term: Term, case_sensitive: bool) -> Callable[[T], bool]:
        key = term.key or "name"
        get = self.fields.get(key)
        if get is None:
            raise InvalidInput(f"the {self.kind} search has no key {term.key!r}; known: "
                               + ", ".join(sorted(self.fields)))
        if term.op not in ("=", "!="):
            raise InvalidInput(f"search operator {term.op!r} is not supported here; use = or !=")
        match = _matcher(term.value, case_sensitive)
        if term.op == "=":
            return lambda obj: any(match(v) for v in get(obj))
        return lambda obj: not any(match(v) for v in get(obj))

    def apply(self, objects: Sequence[T], search: str | None, *, case_sensitive: bool = True,
              max_results: int | None = None) -> list[T]:
        """The objects matching ``search``, sorted and paged as it asks, at most ``max``."""
        found = list(objects)
        if search:
            query = parse(search)
            groups = [[self._term(t, case_sensitive) for t in g] for g in query.groups if g]
            if groups:
                found = [o for o in found if any(all(t(o) for t in g) for g in groups)]
            if query.sortby is not None:
                get = self.fields.get(query.sortby)
                if get is None:
                    raise InvalidInput(f"cannot sort {self.kind} by {query.sortby!r}; known: "
                                       + ", ".join(sorted(self.fields)))
                found.sort(key=lambda o: sorted(get(o)) or [""], reverse=query.descending)
            if query.page is not None and max_results:
                start = (query.page - 1) * max_results
                found = found[start:start + max_results]
        if max_results is not None and max_results >= 0:
            found = found[:max_results]
        return found
