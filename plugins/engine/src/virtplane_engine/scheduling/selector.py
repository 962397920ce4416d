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

import bisect
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
    """Ranks and totals of ``host_ids`` for ``(unit, factor, raw weights)``."""
    ids = list(host_ids)
    n = len(ids)
    totals = [0] * n
    wcols: list[list[float | None]] = []
    rcols: list[list[int]] = []
    for _unit, factor, raw in weights:
        got = [raw.get(h) for h in ids]
        values = [0.0 if w is None else w for w in got]
        ordered = sorted(values)
        ranks = [n - bisect.bisect_right(ordered, w) for w in values]
        if factor:
            totals = [t + factor * r for t, r in zip(totals, ranks, strict=True)]
        wcols.append(got)
        rcols.append(ranks)
    per_w: list[tuple[float | None, ...]] = list(zip(*wcols, strict=True)) if wcols else [()] * n
    per_r: list[tuple[int, ...]] = list(zip(*rcols, strict=True)) if rcols else [()] * n
    return Ranking(ids, totals, per_w, per_r)


def order(ranking: Ranking, names: Mapping[str, str]) -> list[int]:
    """Positions into ``ranking.host_ids``, best first: highest total, then name, then id."""
    ids, totals = ranking.host_ids, ranking.totals
    return sorted(range(len(ids)), key=lambda i: (-totals[i], names.get(ids[i], ids[i]), ids[i]))
