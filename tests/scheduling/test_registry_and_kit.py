"""Units found by name through entry points, and the kit's contracts run on the built-ins."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from virtplane_engine.scheduling.params import PolicyError
from virtplane_engine.scheduling.policies import ClusterPolicy
from virtplane_engine.scheduling.registry import (
    BALANCERS,
    BUILTIN,
    FILTERS,
    WEIGHTS,
    UnitRegistry,
    pyproject_entry_points,
)
from virtplane_engine.scheduling.testing import (
    BalancerContract,
    FilterContract,
    WeightContract,
)

from .conftest import cluster, host, vm

ROOT = Path(__file__).resolve().parents[2]

THIRD_PARTY = '''
import attrs
from virtplane_engine.scheduling.params import int_param
from virtplane_engine.scheduling.units import HostFilter


@attrs.frozen
class GpuParams:
    min_gpus: int = int_param("MinGpus", 1, "GPUs the host must have", 0)


class GpuFilter(HostFilter):
    """Keeps hosts whose name says they carry a GPU (a vendor's example)."""

    name = "HasGpu"
    params_type = GpuParams

    def reject(self, ctx, params, vm, host):
        return None if "gpu" in host.name else "has no GPU"
'''


def test_a_third_party_filter_is_found_through_its_entry_point(plugin_site, service):
    plugin_site.add("vendor-gpu", {"vendor_gpu.py": THIRD_PARTY},
                    {FILTERS: {"HasGpu": "vendor_gpu:GpuFilter"}})
    registry = UnitRegistry()
    assert "HasGpu" in registry.names(FILTERS)
    info = registry.info("filter", "HasGpu")
    assert info.origin == "entry point (vendor-gpu 1.0)"
    assert [p.name for p in info.params] == ["MinGpus"]
    policy = ClusterPolicy("gpu", filters=["HasGpu"], parameters={"MinGpus": 2})
    from virtplane_engine.scheduling.scheduler import SchedulingService

    svc = SchedulingService(registry, service.clock)
    d = svc.schedule(policy, cluster([host("gpu1"), host("plain")]), vm("v"))
    assert d.host_name == "gpu1"
    assert [(v.filtered_by, v.reason) for v in d.filtered] == [("HasGpu", "has no GPU")]


def test_a_third_party_may_not_take_a_builtin_name(plugin_site):
    plugin_site.add("vendor-bad", {"vendor_bad.py": THIRD_PARTY},
                    {FILTERS: {"Memory": "vendor_bad:GpuFilter"}})
    with pytest.raises(PolicyError, match="belongs to the engine but vendor-bad 1.0"):
        UnitRegistry().unit("filter", "Memory")


def test_broken_and_mismatched_entry_points_are_clear_errors(plugin_site):
    plugin_site.add("vendor-broken", {"vendor_broken.py": "raise ImportError('no cuda')\n",
                                      "vendor_gpu2.py": THIRD_PARTY},
                    {FILTERS: {"Broken": "vendor_broken:X", "Renamed": "vendor_gpu2:GpuFilter"},
                     WEIGHTS: {"NotAWeight": "vendor_gpu2:GpuFilter"}})
    reg = UnitRegistry()
    with pytest.raises(PolicyError, match="failed to load: ImportError: no cuda"):
        reg.unit("filter", "Broken")
    with pytest.raises(PolicyError, match="whose name is 'HasGpu'"):
        reg.unit("filter", "Renamed")
    with pytest.raises(PolicyError, match="not a subclass of .*WeightUnit"):
        reg.unit("weight", "NotAWeight")


def test_every_builtin_unit_loads_and_says_where_it_came_from(registry):
    for kind, group in (("filter", FILTERS), ("weight", WEIGHTS), ("balancer", BALANCERS)):
        for name in BUILTIN[group]:
            info = registry.info(kind, name)
            assert info.origin in ("built-in table", "entry point (virtplane-engine 0.1.0)")
            assert info.description


def test_the_engines_pyproject_declares_the_builtin_table():
    """Once plugins/engine/pyproject.toml carries the scheduling entry points, they must
    equal registry.BUILTIN (pyproject_entry_points() prints them)."""
    data = tomllib.loads((ROOT / "plugins/engine/pyproject.toml").read_text())
    eps = data["project"].get("entry-points", {})
    if not any(g in eps for g in BUILTIN):
        pytest.skip("plugins/engine/pyproject.toml does not declare the scheduling entry "
                    "points yet:\n" + pyproject_entry_points())
    for group, names in BUILTIN.items():
        assert eps.get(group) == names, f"{group} differs from registry.BUILTIN"


# ------------------------------------------------------------ the kit on the built-ins

@pytest.mark.parametrize("name", sorted(BUILTIN[FILTERS]))
class TestBuiltinFilters(FilterContract):
    @pytest.fixture(autouse=True)
    def _unit(self, name, monkeypatch):
        monkeypatch.setattr(type(self), "unit", name)


@pytest.mark.parametrize("name", sorted(BUILTIN[WEIGHTS]))
class TestBuiltinWeights(WeightContract):
    @pytest.fixture(autouse=True)
    def _unit(self, name, monkeypatch):
        monkeypatch.setattr(type(self), "unit", name)


@pytest.mark.parametrize("name", sorted(BUILTIN[BALANCERS]))
class TestBuiltinBalancers(BalancerContract):
    @pytest.fixture(autouse=True)
    def _unit(self, name, monkeypatch):
        monkeypatch.setattr(type(self), "unit", name)


class TestTheKitCatchesABrokenFilter(FilterContract):
    """A filter that drops hosts it was not given, without a reason: the kit must fail."""

    unit = "Sloppy"

    @pytest.fixture
    def registry(self):
        from virtplane_engine.scheduling.params import NoParams
        from virtplane_engine.scheduling.units import FilterUnit

        class Sloppy(FilterUnit[NoParams]):
            """Drops a host nobody asked about, with an empty reason (broken on purpose)."""

            name = "Sloppy"

            def filter(self, ctx, params, vm, hosts):
                return {"ghost": ""} if hosts else {"ghost": "x"}

        return UnitRegistry(extra={FILTERS: {"Sloppy": Sloppy}})

    @pytest.mark.xfail(strict=True, reason="the contract must catch this filter")
    def test_drops_only_given_hosts_with_reasons(self, policy_unit, ctx, params, vm, hosts):
        super().test_drops_only_given_hosts_with_reasons(policy_unit, ctx, params, vm, hosts)

    @pytest.mark.xfail(strict=True, reason="the contract must catch this filter")
    def test_no_hosts_no_answer(self, policy_unit, ctx, params, vm):
        super().test_no_hosts_no_answer(policy_unit, ctx, params, vm)
