"""Cluster policies: what one is (:class:`ClusterPolicy`), the mandatory filters and
the compiled form the scheduler runs. oVirt's five built-in policies are in
:mod:`~.policies`, which re-exports everything here.

A policy names its units; :meth:`ClusterPolicy.compile` resolves them through
anything with ``unit(kind, name)`` (:class:`UnitSource`; the engine passes a
:class:`~.registry.UnitRegistry`) and checks the parameters once (every key must
be read by some unit of the policy, every value must fit), so a typo such as
``HighUtilisation`` is an error when the policy is set, not a silently ignored
setting.

The mandatory filters (:data:`MANDATORY_FILTERS`) run first in every policy,
whatever it lists: a policy can add constraints, never remove the ones that
keep a VM from landing where it cannot run.

A leaf below both ``policies`` and ``registry``: it imports neither, so the
registry can check what it loads against :class:`ClusterPolicy` without an
import cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import attrs

from virtplane_engine.scheduling.params import (
    ParamValue,
    PolicyError,
    build,
    int_param,
    parameter_names,
)
from virtplane_engine.scheduling.units import BalancerUnit, FilterUnit, PolicyUnit, WeightUnit


class UnitSource(Protocol):
    """Policy units by kind and name (what :meth:`ClusterPolicy.compile` needs of a
    :class:`~.registry.UnitRegistry`)."""

    def unit(self, kind: str, name: str) -> PolicyUnit: ...


#: run in every policy, in this order, before the policy's own filters
MANDATORY_FILTERS: tuple[str, ...] = (
    "Architecture", "CPU-Level", "PinToHost", "CPU", "Memory", "VmAffinityGroups",
    "VmToHostsAffinityGroups",
)


@attrs.frozen
class BalancingParams:
    """What virtplane adds to oVirt's balancing against oscillation (policy-wide)."""

    cooldown_minutes: int = int_param(
        "MigrationCooldownMinutes", 10, "a VM moved by the balancer (or anyone) is not "
        "moved again by the balancer for this long", 0)
    margin_percent: int = int_param(
        "ImprovementMarginPercent", 10, "a balancing move must lower the cluster's "
        "imbalance by at least this percentage", 0, 100)


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


def _params(value: Mapping[str, ParamValue]) -> dict[str, ParamValue]:
    return dict(value)


def _weights(value: Any) -> tuple[tuple[str, int], ...]:
    return tuple((str(n), f) for n, f in value)


@attrs.frozen
class ClusterPolicy:
    """A named scheduling policy (oVirt's ``ClusterPolicy``)."""

    name: str
    description: str = ""
    filters: tuple[str, ...] = attrs.field(default=(), converter=_names)
    weights: tuple[tuple[str, int], ...] = attrs.field(default=(), converter=_weights)
    balancer: str = "None"
    parameters: dict[str, ParamValue] = attrs.field(factory=dict, converter=_params,
                                                    hash=False)

    def with_parameters(self, **values: ParamValue) -> ClusterPolicy:
        """The same policy with some parameters set (a cluster's overrides)."""
        return attrs.evolve(self, parameters={**self.parameters, **values})

    def compile(self, registry: UnitSource) -> CompiledPolicy:
        """Resolve the units and check the parameters (raises :class:`PolicyError`)."""
        where = f"policy {self.name!r}"
        filters: list[tuple[FilterUnit[Any], Any]] = []
        for fname in dict.fromkeys((*MANDATORY_FILTERS, *self.filters)):
            unit = registry.unit("filter", fname)
            assert isinstance(unit, FilterUnit)
            filters.append((unit, build(unit.params_type, self.parameters,
                                        f"{where}, filter {fname}")))
        weights: list[tuple[WeightUnit[Any], int, Any]] = []
        seen = set()
        for wname, factor in self.weights:
            if isinstance(factor, bool) or not isinstance(factor, int) or factor < 0:
                raise PolicyError(f"{where}: weight {wname} needs a whole factor of 0 or "
                                  f"more, not {factor!r}")
            if wname in seen:
                raise PolicyError(f"{where}: weight {wname} is listed twice")
            seen.add(wname)
            unit = registry.unit("weight", wname)
            assert isinstance(unit, WeightUnit)
            weights.append((unit, factor, build(unit.params_type, self.parameters,
                                                f"{where}, weight {wname}")))
        bal = registry.unit("balancer", self.balancer)
        assert isinstance(bal, BalancerUnit)
        bal_params = build(bal.params_type, self.parameters,
                           f"{where}, balancer {self.balancer}")
        balancing = build(BalancingParams, self.parameters, where)
        read = set(parameter_names(BalancingParams)) | parameter_names(bal.params_type)
        for unit, _p in filters:
            read |= parameter_names(unit.params_type)
        for wunit, _f, _p in weights:
            read |= parameter_names(wunit.params_type)
        unknown = sorted(set(self.parameters) - read)
        if unknown:
            raise PolicyError(f"{where}: no unit of this policy reads "
                              f"{', '.join(unknown)}; parameters it reads: "
                              f"{', '.join(sorted(read))}")
        return CompiledPolicy(self, tuple(filters), tuple(weights), (bal, bal_params),
                              balancing)


@attrs.frozen
class CompiledPolicy:
    """A policy with its units resolved and parameters built (what the scheduler runs)."""

    policy: ClusterPolicy
    filters: tuple[tuple[FilterUnit[Any], Any], ...]
    weights: tuple[tuple[WeightUnit[Any], int, Any], ...]
    balancer: tuple[BalancerUnit[Any], Any]
    balancing: BalancingParams
