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

import attrs


@attrs.frozen
class UnitScore:
    """How one weight unit scored one host."""

    unit: str
    factor: int
    #: the raw weight (lower is better); None when the unit did not score the host (0)
    weight: float | None
    rank: int
    points: int


def rank(weights: Sequence[tuple[str, int, Mapping[str, float]]],
         host_ids: Sequence[str]) -> dict[str, tuple[int, tuple[UnitScore, ...]]]:
    """Host id -> (total points, per-unit scores), for ``(unit, factor, weights)``."""
    totals = dict.fromkeys(host_ids, 0)
    scores: dict[str, list[UnitScore]] = {h: [] for h in host_ids}
    n = len(host_ids)
    for unit, factor, raw in weights:
        values = [raw.get(h, 0.0) for h in host_ids]
        ordered = sorted(values)
        for h, w in zip(host_ids, values, strict=True):
            r = n - bisect.bisect_right(ordered, w)
            pts = factor * r
            totals[h] += pts
            scores[h].append(UnitScore(unit, factor, raw.get(h), r, pts))
    return {h: (totals[h], tuple(scores[h])) for h in host_ids}


def order(ranked: Mapping[str, tuple[int, object]], names: Mapping[str, str]) -> list[str]:
    """Host ids best first: highest total, then name, then id."""
    return sorted(ranked, key=lambda h: (-ranked[h][0], names.get(h, h), h))
