"""oVirt's rank selector, with a deterministic tie-break.

For each weight unit, a host's rank is the number of hosts with a strictly worse
(higher) weight; hosts the unit did not score weigh 0, the best. A host earns
factor x rank from each unit; the highest total wins. Ranks, not raw weights,
are summed, so a unit that scores in thousands does not drown one that scores
in ones: the factor alone says how much a unit matters.

oVirt breaks ties by hash-map order, so the same cluster can place the same VM
on different hosts from one run to the next. Here a tie goes to the host whose
name sorts first (then id): the same inputs always give the same host, and the
explanation says a tie was broken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple


class UnitScore(NamedTuple):
    """How one weight unit scored one host (a named tuple: a decision over a thousand
    hosts holds thousands of these, and a tuple costs a fifth of an attrs object)."""

    unit: str
    factor: int
    #: the raw weight (lower is better); None when the unit did not score the host (0)
    weight: float | None
    rank: int
    points: int


class Ranking(NamedTuple):
    """Rank selector output, column by column (compact: a decision over a thousand hosts
    keeps two small tuples per host rather than one record per host and unit)."""

    host_ids: list[str]
    totals: list[int]
    #: per host: each unit's raw weight (None: not scored, counted as 0)
    weights: list[tuple[float | None, ...]]
    #: per host: each unit's rank (hosts it weighs strictly worse)
    ranks: list[tuple[int, ...]]


def rank(weights: Sequence[tuple[str, int, Mapping[str, float]]],
         host_ids: Sequence[str]) -> Ranking:
    """Ranks and totals of ``host_ids`` for ``(unit, factor, raw weights)``.

    Linear but for one sort per unit that scored anything: a unit that scored no
    host ranks every host 0 (all weigh 0) without sorting, and a host's rank is read
    from a table of "how many weigh this much or less" built from the sorted
    weights (no search per host)."""
    ids = list(host_ids)
    n = len(ids)
    totals = [0] * n
    wcols: list[list[float | None]] = []
    rcols: list[list[int]] = []
    for _unit, factor, raw in weights:
        if not raw:
            wcols.append([None] * n)
            rcols.append([0] * n)
            continue
        got: list[float | None] = list(map(raw.get, ids))
        values = [0.0 if w is None else w for w in got]
        # weight -> how many hosts weigh it or less (dict() keeps the last position of
        # equal weights); the rank is how many weigh strictly more
        at_most = dict(zip(sorted(values), range(1, n + 1), strict=True))
        ranks = [n - at_most[w] for w in values]
        if factor:
            totals = [t + factor * r for t, r in zip(totals, ranks, strict=True)]
        wcols.append(got)
        rcols.append(ranks)
    per_w: list[tuple[float | None, ...]] = list(zip(*wcols, strict=True)) if wcols else [()] * n
    per_r: list[tuple[int, ...]] = list(zip(*rcols, strict=True)) if rcols else [()] * n
    return Ranking(ids, totals, per_w, per_r)


def order(ranking: Ranking, names: Mapping[str, str] | Sequence[str]) -> list[int]:
    """Positions into ``ranking.host_ids``, best first: highest total, then name, then id.
    ``names`` maps host ids to names, or lists the names in ``host_ids`` order."""
    ids, totals = ranking.host_ids, ranking.totals
    if isinstance(names, Mapping):
        by_pos = [names.get(i, i) for i in ids]
    else:
        by_pos = list(names)
    n = len(ids)
    if all(by_pos[i] < by_pos[i + 1] or (by_pos[i] == by_pos[i + 1] and ids[i] <= ids[i + 1])
           for i in range(n - 1)):
        # already in (name, id) order (a snapshot usually is): a stable sort by total
        # alone keeps that order among equal totals
        return sorted(range(n), key=totals.__getitem__, reverse=True)
    keys = list(zip([-t for t in totals], by_pos, ids, strict=True))
    return sorted(range(n), key=keys.__getitem__)
