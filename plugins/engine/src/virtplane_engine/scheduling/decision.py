"""Decisions as records: which host, and for every other host why not.

A placement that fails with "no valid host" and nothing else is the most
common scheduler complaint (nova grew per-filter reporting for it). Every
scheduling here returns a :class:`Decision`: for each host of the cluster
either the filter that dropped it and its reason, or its score from each
weight unit. The engine stores it (``to_dict``/``from_dict`` are plain JSON)
and ``virtplane vm start --explain`` / ``virtplane scheduling explain VM`` print
:func:`format_decision`.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any, NamedTuple

import attrs

from virtplane_engine.scheduling.selector import UnitScore


class HostVerdict(NamedTuple):
    """One host in one decision: dropped (by what, why) or scored.

    A named tuple, not an attrs class: a decision over a thousand hosts makes a
    thousand of these; a tuple of plain values is built in a third of the time of a
    frozen attrs object and, once the garbage collector has seen it, is no longer
    tracked by it (a kept decision does not make every later collection longer).
    Stored as a JSON object all the same (:meth:`Decision.to_dict`)."""

    host_id: str
    host_name: str
    #: ``chosen``, ``candidate`` (survived the filters, lost on score) or ``filtered``
    outcome: str
    #: the filter (or ``status``, ``excluded``, ``not a candidate``) that dropped it
    filtered_by: str | None = None
    reason: str | None = None
    total: int | None = None
    #: each weight unit's raw weight for this host, in :attr:`Decision.units` order
    weights: tuple[float | None, ...] = ()
    #: each weight unit's rank for this host (hosts it weighs strictly worse)
    ranks: tuple[int, ...] = ()
    #: resources held there for VMs still starting: MiB, vCPUs, VMs
    pending_memory_mib: int = 0
    pending_vcpus: int = 0
    pending_vms: int = 0


@attrs.frozen
class Decision:
    """The outcome of one scheduling, with everything needed to explain it later."""

    vm_id: str
    vm_name: str
    cluster_id: str
    cluster_name: str
    policy: str
    mode: str
    at: float
    host_id: str | None
    host_name: str | None
    summary: str
    hosts: tuple[HostVerdict, ...] = ()
    #: hosts that tied for the best score (names), when the tie-break decided
    tied: tuple[str, ...] = ()
    #: every host was dropped only because of VMs still starting: try again shortly
    retry_after_pending: bool = False
    #: the source host when migrating or balancing
    source_host_id: str | None = None
    #: the weight units that scored the hosts: (name, factor)
    units: tuple[tuple[str, int], ...] = ()

    def scores(self, verdict: HostVerdict) -> tuple[UnitScore, ...]:
        """How each weight unit scored one host of this decision."""
        return tuple(UnitScore(u, f, w, r, f * r) for (u, f), w, r
                     in zip(self.units, verdict.weights, verdict.ranks, strict=True))

    @property
    def placed(self) -> bool:
        return self.host_id is not None

    @property
    def filtered(self) -> tuple[HostVerdict, ...]:
        return tuple(h for h in self.hosts if h.outcome == "filtered")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the engine stores)."""
        out: dict[str, Any] = _converter().unstructure(self)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        """The record back from :meth:`to_dict` (unknown keys are an error)."""
        decision: Decision = _converter().structure(data, cls)
        return decision


@functools.cache
def _converter() -> Any:
    import cattrs

    conv = cattrs.Converter(forbid_extra_keys=True)

    def verdict_out(v: HostVerdict) -> dict[str, Any]:
        out = v._asdict()
        out["reason"] = None if v.reason is None else str(v.reason)
        out["weights"], out["ranks"] = list(v.weights), list(v.ranks)
        return out

    def verdict_in(data: Any, _type: Any) -> HostVerdict:
        if not isinstance(data, dict) or not set(data) <= set(HostVerdict._fields):
            raise ValueError(f"not a host verdict: {data!r}")
        return HostVerdict(**{**data, "weights": tuple(data.get("weights", ())),
                              "ranks": tuple(data.get("ranks", ()))})

    conv.register_unstructure_hook(HostVerdict, verdict_out)
    conv.register_structure_hook(HostVerdict, verdict_in)
    return conv


def _when(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _num(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def format_decision(d: Decision, *, show_scores: bool = True) -> str:
    """The decision as an administrator reads it (``--explain``)."""
    lines = [f"VM {d.vm_name!r} ({d.mode}) in cluster {d.cluster_name or d.cluster_id!r}, "
             f"policy {d.policy!r}, {_when(d.at)}"]
    lines.append(("-> " if d.placed else "-> no host: ") + d.summary)
    if d.retry_after_pending:
        lines.append("   hosts lack room only because of VMs still starting; retry shortly")
    scored = [h for h in d.hosts if h.outcome != "filtered"]
    if scored and show_scores and any(h.ranks for h in scored):
        lines.append("Scores (rank selector: each unit gives factor x the number of hosts "
                     "it weighs worse; highest total wins):")
        width = max(len(h.host_name) for h in scored)
        for h in scored:
            mark = "*" if h.outcome == "chosen" else " "
            parts = []
            for s in d.scores(h):
                w = "-" if s.weight is None else _num(s.weight)
                parts.append(f"{s.unit} {w} r{s.rank}x{s.factor}={s.points}")
            lines.append(f" {mark}{h.host_name:<{width}}  {h.total:>4}  " + "; ".join(parts))
    elif scored:
        lines.append("Hosts left: " + ", ".join(h.host_name for h in scored))
    dropped = d.filtered
    if dropped:
        lines.append(f"Filtered out ({len(dropped)}):")
        width = max(len(h.host_name) for h in dropped)
        for h in dropped:
            lines.append(f"  {h.host_name:<{width}}  {h.filtered_by}: {h.reason}")
    pend = [h for h in d.hosts if h.pending_vms]
    if pend:
        lines.append("Pending (VMs placed, not yet seen running): " + ", ".join(
            f"{h.host_name} {h.pending_vms} VM/{h.pending_memory_mib} MiB/"
            f"{h.pending_vcpus} vCPU" for h in pend))
    return "\n".join(lines)
