"""Finding policy units and cluster policies by name: entry points, through stevedore.

Groups (one per kind):

================================  ==================================================
``virtplane.policy_units.filters``    filter units (:class:`~.units.FilterUnit`)
``virtplane.policy_units.weights``    weight units (:class:`~.units.WeightUnit`)
``virtplane.policy_units.balancers``  balancers (:class:`~.units.BalancerUnit`)
``virtplane.cluster_policies``        ready-made :class:`~.policies.ClusterPolicy` objects
================================  ==================================================

The engine's own units are declared in these groups like anybody else's
(:data:`BUILTIN` is the table its ``pyproject.toml`` lists). Until that
distribution's entry points are installed, the table itself stands in for them,
and :meth:`UnitRegistry.info` says so ("built-in table"), so a broken install
is visible rather than silently papered over. A third-party distribution that
declares a name the engine already uses is refused with both names in the
message: one name, one unit.

Only the names a policy asks for are imported (stevedore's
``NamedExtensionManager``); listing names reads entry-point metadata only.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from virtplane_engine.scheduling.cluster_policy import ClusterPolicy
from virtplane_engine.scheduling.params import ParamInfo, PolicyError, describe
from virtplane_engine.scheduling.units import (
    BalancerUnit,
    FilterUnit,
    PolicyUnit,
    WeightUnit,
)

FILTERS: Final = "virtplane.policy_units.filters"
WEIGHTS: Final = "virtplane.policy_units.weights"
BALANCERS: Final = "virtplane.policy_units.balancers"
POLICIES: Final = "virtplane.cluster_policies"

#: unit kind -> entry-point group
KIND_GROUPS: Final = {"filter": FILTERS, "weight": WEIGHTS, "balancer": BALANCERS}
_BASES: Final[dict[str, type[PolicyUnit]]] = {
    "filter": FilterUnit, "weight": WeightUnit, "balancer": BalancerUnit}

#: the distribution whose entry points may carry the built-in names
ENGINE_DIST: Final = "virtplane-engine"

_P = "virtplane_engine.scheduling"

#: The engine's own units and policies: group -> name -> ``module:attribute``.
BUILTIN: Final[dict[str, dict[str, str]]] = {
    FILTERS: {
        "Architecture": f"{_P}.filters_compat:ArchitectureFilter",
        "CPU-Level": f"{_P}.filters_compat:CpuLevelFilter",
        "Memory": f"{_P}.filters_resources:MemoryFilter",
        "CPU": f"{_P}.filters_resources:CpuFilter",
        "CPUOverloaded": f"{_P}.filters_resources:CpuOverloadedFilter",
        "PinToHost": f"{_P}.filters_placement:PinToHostFilter",
        "Migration": f"{_P}.filters_placement:MigrationFilter",
        "Network": f"{_P}.filters_placement:NetworkFilter",
        "ClusterInMaintenance": f"{_P}.filters_placement:ClusterInMaintenanceFilter",
        "VmAffinityGroups": f"{_P}.affinity:VmAffinityFilter",
        "VmToHostsAffinityGroups": f"{_P}.affinity:VmToHostsAffinityFilter",
    },
    WEIGHTS: {
        "OptimalForCpuEvenDistribution": f"{_P}.weights_load:CpuEvenDistributionWeight",
        "OptimalForMemoryEvenDistribution": f"{_P}.weights_load:MemoryEvenDistributionWeight",
        "OptimalForCpuPowerSaving": f"{_P}.weights_load:CpuPowerSavingWeight",
        "OptimalForMemoryPowerSaving": f"{_P}.weights_load:MemoryPowerSavingWeight",
        "OptimalForEvenGuestDistribution": f"{_P}.weights_guests:EvenGuestDistributionWeight",
        "PreferredHosts": f"{_P}.weights_guests:PreferredHostsWeight",
        "OptimalForHaReservation": f"{_P}.weights_guests:HaReservationWeight",
        "VmAffinityGroups": f"{_P}.affinity:VmAffinityWeight",
        "VmToHostsAffinityGroups": f"{_P}.affinity:VmToHostsAffinityWeight",
    },
    BALANCERS: {
        "None": f"{_P}.balancers:NoBalancer",
        "OptimalForEvenDistribution": f"{_P}.balancers:EvenDistributionBalancer",
        "OptimalForPowerSaving": f"{_P}.balancers:PowerSavingBalancer",
        "OptimalForEvenGuestDistribution": f"{_P}.balancers:EvenGuestDistributionBalancer",
    },
    POLICIES: {
        "none": f"{_P}.policies:NONE",
        "evenly_distributed": f"{_P}.policies:EVENLY_DISTRIBUTED",
        "power_saving": f"{_P}.policies:POWER_SAVING",
        "vm_evenly_distributed": f"{_P}.policies:VM_EVENLY_DISTRIBUTED",
        "cluster_maintenance": f"{_P}.policies:CLUSTER_MAINTENANCE",
    },
}


def pyproject_entry_points() -> str:
    """The ``[project.entry-points.*]`` tables declaring :data:`BUILTIN` (for the
    engine's ``pyproject.toml``; a test keeps the two equal)."""
    out = []
    for group, names in BUILTIN.items():
        out.append(f'[project.entry-points."{group}"]')
        out += [f'"{name}" = "{value}"' for name, value in names.items()]
        out.append("")
    return "\n".join(out)


@attrs.frozen
class UnitInfo:
    """A unit as ``scheduling units`` lists it."""

    kind: str
    name: str
    description: str
    params: tuple[ParamInfo, ...]
    #: ``entry point (dist version)`` or ``built-in table``
    origin: str


@attrs.frozen
class _Entry:
    name: str
    value: str
    dist: str


def _load_value(value: str) -> Any:
    module, _, attr = value.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class UnitRegistry:
    """Policy units and cluster policies by name.

    ``entry_points=False`` uses the built-in table only (a hermetic unit test);
    ``extra`` adds objects directly: group -> name -> class or policy (tests and
    embedders that do not ship a distribution).
    """

    def __init__(self, *, entry_points: bool = True,
                 extra: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._use_eps = entry_points
        self._extra = {g: dict(v) for g, v in (extra or {}).items()}
        self._entries: dict[str, dict[str, list[_Entry]]] = {}
        self._loaded: dict[tuple[str, str], tuple[Any, str]] = {}
        self._lock = threading.RLock()
        self._scanned = False
        #: other groups read through this registry (the fence agents')
        self._more_groups: set[str] = {"virtplane.fence_agents"}

    # ------------------------------------------------------------ discovery

    def _group_entries(self, group: str) -> dict[str, list[_Entry]]:
        if not self._scanned:
            self._scan()
        return self._entries.setdefault(group, {})

    def _scan(self) -> None:
        """Read every distribution's entry points once, for all groups of interest."""
        self._scanned = True
        if not self._use_eps:
            return
        groups = {*KIND_GROUPS.values(), POLICIES, *self._more_groups}
        for dist in importlib.metadata.distributions():
            try:
                eps = [ep for ep in dist.entry_points if ep.group in groups]
            except Exception:  # noqa: BLE001 - unreadable metadata cannot declare units
                continue
            for ep in eps:
                self._entries.setdefault(ep.group, {}).setdefault(ep.name, []).append(
                    _Entry(ep.name, ep.value, f"{dist.metadata['Name']} {dist.version}"))

    def names(self, group: str) -> list[str]:
        """Every name known in ``group`` (built-in, installed, extra), sorted."""
        return sorted({*BUILTIN.get(group, {}), *self._group_entries(group),
                       *self._extra.get(group, {})})

    def _resolve(self, group: str, name: str) -> tuple[Any, str]:
        if name in self._extra.get(group, {}):
            return self._extra[group][name], "given directly"
        entries = self._group_entries(group).get(name, [])
        builtin = BUILTIN.get(group, {}).get(name)
        foreign = [e for e in entries if e.dist.split()[0] != ENGINE_DIST]
        if builtin is not None and foreign:
            raise PolicyError(
                f"{group} name {name!r} belongs to the engine but {foreign[0].dist} declares "
                f"it too ({foreign[0].value}); rename the entry point of that distribution")
        if len({e.value for e in entries}) > 1:
            raise PolicyError(
                f"{group} name {name!r} is declared by several distributions: "
                + ", ".join(f"{e.dist} ({e.value})" for e in entries) + "; uninstall one")
        if entries:
            return self._load_entry_point(group, entries[0]), f"entry point ({entries[0].dist})"
        if builtin is not None:
            return _load_value(builtin), "built-in table"
        known = ", ".join(self.names(group)) or "none"
        raise PolicyError(f"no {group} entry point named {name!r} (known: {known})")

    def _load_entry_point(self, group: str, entry: _Entry) -> Any:
        from stevedore import NamedExtensionManager

        errors: list[str] = []
        ep = importlib.metadata.EntryPoint(entry.name, entry.value, group)

        class _Manager(NamedExtensionManager):  # type: ignore[type-arg]
            # stevedore caches entry points per namespace for the whole process; read
            # the list this registry found instead (distributions installed later count)
            def list_entry_points(self) -> list[importlib.metadata.EntryPoint]:
                return [ep]

        def failed(_mgr: Any, _ep: Any, exc: BaseException) -> None:
            errors.append(f"{type(exc).__name__}: {exc}")

        mgr = _Manager(group, names=[entry.name], invoke_on_load=False,
                       on_load_failure_callback=failed)
        if errors or not mgr.extensions:
            raise PolicyError(f"{group} entry point {entry.name} = {entry.value} "
                              f"({entry.dist}) failed to load: "
                              f"{errors[0] if errors else 'not found by stevedore'}")
        return mgr.extensions[0].plugin

    def lookup(self, group: str, name: str, check: Callable[[Any], None]) -> tuple[Any, str]:
        with self._lock:
            key = (group, name)
            if key not in self._loaded:
                obj, origin = self._resolve(group, name)
                check(obj)
                self._loaded[key] = (obj, origin)
            return self._loaded[key]

    # ------------------------------------------------------------ units

    def unit(self, kind: str, name: str) -> PolicyUnit:
        """An instance of the ``kind`` (filter, weight, balancer) unit called ``name``."""
        group = KIND_GROUPS.get(kind)
        if group is None:
            raise PolicyError(f"no policy unit kind {kind!r}; kinds: {', '.join(KIND_GROUPS)}")
        base = _BASES[kind]

        def check(obj: Any) -> None:
            if not (isinstance(obj, type) and issubclass(obj, base)):
                raise PolicyError(f"{group} entry point {name!r} is {obj!r}, not a subclass "
                                  f"of {base.__module__}.{base.__qualname__}")
            if obj.name != name:
                raise PolicyError(f"{group} entry point {name!r} points to "
                                  f"{obj.__qualname__}, whose name is {obj.name!r}; "
                                  "the two must match")
            if not attrs.has(obj.params_type):
                raise PolicyError(f"{obj.__qualname__}.params_type must be an attrs class")
            describe(obj.params_type)

        cls, _origin = self.lookup(group, name, check)
        with self._lock:
            inst_key = ("instance:" + group, name)
            if inst_key not in self._loaded:
                self._loaded[inst_key] = (cls(), _origin)
            unit: PolicyUnit = self._loaded[inst_key][0]
        return unit

    def info(self, kind: str, name: str) -> UnitInfo:
        """Name, description, parameters and where the unit came from."""
        unit = self.unit(kind, name)
        origin = self._loaded[(KIND_GROUPS[kind], name)][1]
        return UnitInfo(kind, name, unit.description(), tuple(describe(unit.params_type)),
                        origin)

    def units(self, kind: str) -> list[UnitInfo]:
        """Every unit of a kind (importing each)."""
        return [self.info(kind, n) for n in self.names(KIND_GROUPS[kind])]

    # ------------------------------------------------------------ policies

    def policy(self, name: str) -> Any:
        """A :class:`~.policies.ClusterPolicy` by name."""
        def check(obj: Any) -> None:
            if not isinstance(obj, ClusterPolicy):
                raise PolicyError(f"{POLICIES} entry point {name!r} is {obj!r}, not a "
                                  "ClusterPolicy")
            if obj.name != name:
                raise PolicyError(f"{POLICIES} entry point {name!r} holds policy "
                                  f"{obj.name!r}; the two names must match")

        return self.lookup(POLICIES, name, check)[0]
