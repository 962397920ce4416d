"""The three kinds of policy unit and what they are given.

A unit is a small stateless class registered under a name in an entry-point
group (:mod:`.registry`): a **filter** removes hosts that cannot take the VM
and says why, a **weight** scores hosts (lower is better, as in oVirt), a
**balancer** proposes VMs to move with candidate hosts. Each declares its
parameters as an attrs class (:mod:`.params`), and its docstring is its
description (what ``scheduling units`` and the docs show).

Units see a :class:`UnitContext`: the cluster snapshot, the clock's time, the
mode (start, migration, balancing) and where every VM runs or is about to run.
They must not keep state between calls: the same inputs give the same answer,
which is what makes a decision explainable after the fact.
"""

from __future__ import annotations

import abc
import enum
import functools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import attrs

from virtplane_engine.scheduling.facts import UP, ClusterFacts, HostFacts, VmFacts, spread
from virtplane_engine.scheduling.params import NoParams

P = TypeVar("P")


class Mode(enum.StrEnum):
    """Why the scheduler runs."""

    START = "start"
    MIGRATE = "migrate"
    BALANCE = "balance"


class UnitContext:
    """The cluster as units see it during one scheduling (indexes built once, lazily)."""

    def __init__(self, cluster: ClusterFacts, now: float, mode: Mode = Mode.START,
                 source_host_id: str | None = None,
                 pending_placements: Mapping[str, str] | None = None) -> None:
        self.cluster = cluster
        self.now = now
        self.mode = mode
        #: the host the VM runs on when migrating or balancing
        self.source_host_id = source_host_id
        self._pending = dict(pending_placements or {})

    @functools.cached_property
    def hosts_by_id(self) -> dict[str, HostFacts]:
        return {h.id: h for h in self.cluster.hosts}

    @functools.cached_property
    def vms_by_id(self) -> dict[str, VmFacts]:
        return {v.id: v for v in self.cluster.vms}

    @functools.cached_property
    def placements(self) -> dict[str, str]:
        """VM id -> host id for every VM that runs or is pending somewhere."""
        out = {v.id: v.host_id for v in self.cluster.vms if v.host_id is not None}
        out.update(self._pending)
        return out

    @functools.cached_property
    def up_hosts(self) -> list[HostFacts]:
        return [h for h in self.cluster.hosts if h.status == UP]

    def vms_on(self, host_id: str) -> list[VmFacts]:
        """The VMs running on a host, from the cluster snapshot."""
        return [v for v in self.cluster.vms if v.host_id == host_id]


class PolicyUnit:
    """What every unit has: a name, a description (its docstring), a params class."""

    #: the entry-point name (oVirt's unit name for the built-ins)
    name: ClassVar[str] = ""
    #: the attrs class of the parameters the unit reads (see :mod:`.params`)
    params_type: ClassVar[type[Any]] = NoParams
    #: ``filter``, ``weight`` or ``balancer`` (set by the kind's base class)
    kind: ClassVar[str] = ""

    @classmethod
    def description(cls) -> str:
        """The first paragraph of the docstring."""
        doc = (cls.__doc__ or "").strip()
        return " ".join(doc.split("\n\n", 1)[0].split())


class FilterUnit(PolicyUnit, Generic[P]):
    """Removes the hosts that cannot take the VM and says why, host by host."""

    kind: ClassVar[str] = "filter"

    @abc.abstractmethod
    def filter(self, ctx: UnitContext, params: P, vm: VmFacts,
               hosts: Sequence[HostFacts]) -> dict[str, str]:
        """The hosts to drop: host id -> reason (a sentence an administrator reads)."""


class HostFilter(FilterUnit[P]):
    """A filter that judges each host on its own: implement :meth:`reject`."""

    def filter(self, ctx: UnitContext, params: P, vm: VmFacts,
               hosts: Sequence[HostFacts]) -> dict[str, str]:
        out: dict[str, str] = {}
        for h in hosts:
            reason = self.reject(ctx, params, vm, h)
            if reason is not None:
                out[h.id] = reason
        return out

    @abc.abstractmethod
    def reject(self, ctx: UnitContext, params: P, vm: VmFacts, host: HostFacts) -> str | None:
        """Why ``host`` cannot take ``vm``, or None when it can."""


class WeightUnit(PolicyUnit, Generic[P]):
    """Scores hosts; lower is better. Hosts left out of the answer count as 0 (best),
    as in oVirt's rank selector."""

    kind: ClassVar[str] = "weight"

    @abc.abstractmethod
    def score(self, ctx: UnitContext, params: P, vm: VmFacts,
              hosts: Sequence[HostFacts]) -> dict[str, float]:
        """Host id -> raw weight (lower is better)."""


@attrs.frozen
class BalanceCandidate:
    """A VM a balancer would move, with the hosts it may go to (its own included, so
    the full scheduler can conclude that it should stay)."""

    vm_id: str
    source_host_id: str
    candidate_host_ids: tuple[str, ...]
    #: which figure the move is meant to improve: ``cpu``, ``memory``, ``vm_count``,
    #: ``consolidation``, ``memory_consolidation`` (the balancer's :meth:`cost` reads it)
    metric: str
    reason: str


@attrs.frozen
class PowerAction:
    """One host power step (power saving takes at most one per cycle).

    ``action`` is ``maintenance`` (Up to Maintenance), ``power_off`` (Maintenance to
    Down through the fence agent), ``activate`` (Maintenance to Up) or ``power_on``
    (Down to Up); None with a reason when nothing is to be done.
    """

    action: str | None
    host_id: str | None
    host_name: str | None
    reason: str


class BalancerUnit(PolicyUnit, Generic[P]):
    """Proposes VMs to move, best first; the balancing cycle tries them in order and
    performs at most one (oVirt's rule)."""

    kind: ClassVar[str] = "balancer"

    @abc.abstractmethod
    def balance(self, ctx: UnitContext, params: P,
                hosts: Sequence[HostFacts]) -> list[BalanceCandidate]:
        """Ordered candidates over ``hosts`` (Up hosts with nothing migrating or pending)."""

    def cost(self, ctx: UnitContext, params: P, hosts: Sequence[HostFacts],
             metric: str) -> float:
        """How unbalanced the cluster is on ``metric`` (lower is better); the cycle asks it
        before and after a predicted move and requires an improvement margin. The default
        is the spread (population standard deviation) of host CPU load."""
        return spread(hosts, metric)

    def host_power(self, ctx: UnitContext, params: P,
                   hosts: Sequence[HostFacts]) -> PowerAction | None:
        """Which host to power up or down this cycle; None for balancers that do not
        manage host power (all but power saving)."""
        return None
