"""The kit for third-party policy units and fence agents: contract test classes.

A vendor ships a unit in one of the entry-point groups and subclasses the
contract of its kind in their own test suite::

    from virtplane_engine.scheduling.testing import FilterContract

    class TestGpuFilter(FilterContract):
        unit = "GpuPresent"                      # the entry-point name
        parameters = {"MinGpuMemoryMiB": 4096}   # optional policy parameters

The unit is loaded through the registry, the way a cluster policy loads it, so
the contract also proves the packaging. Override the ``cluster`` or ``vm``
fixtures to give the unit a cluster it has something to say about; the default
(:func:`sample_cluster`) has loaded, idle, statistics-less and maintenance hosts,
running VMs and affinity groups. The engine's own units pass the same classes
(tests/scheduling/test_kit.py).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pytest

from virtplane_engine.scheduling.facts import (
    AffinityGroup,
    AffinityRule,
    ClusterFacts,
    HostFacts,
    VmFacts,
)
from virtplane_engine.scheduling.fencing import (
    FenceAction,
    FenceAgent,
    FenceAgents,
    FenceError,
    FenceResult,
    FenceTarget,
    PowerState,
)
from virtplane_engine.scheduling.fencing_rules import confirmed_off
from virtplane_engine.scheduling.params import ParamValue, PolicyError, build, describe
from virtplane_engine.scheduling.registry import UnitRegistry
from virtplane_engine.scheduling.units import (
    BalancerUnit,
    FilterUnit,
    Mode,
    PolicyUnit,
    UnitContext,
    WeightUnit,
)

NOW = 1_000_000.0


def sample_cluster(now: float = NOW) -> ClusterFacts:
    """A small cluster with a bit of everything units look at."""
    def host(i: int, **kw: Any) -> HostFacts:
        base: dict[str, Any] = dict(id=f"h{i}", name=f"host{i}", cpus=4, memory_mib=16384,
                                    free_memory_mib=12000, guest_arches=["x86_64"],
                                    usable_cpu_models=["Westmere", "Skylake-Client"],
                                    networks=["ovirtmgmt", "data"], address=f"10.0.0.{i}")
        base.update(kw)
        return HostFacts(**base)

    vms = [VmFacts(f"v{i}", f"vm{i}", memory_mib=1024, vcpus=1 + i % 2, host_id=f"h{1 + i % 3}",
                   status="Up", cpu_usage_percent=10.0 * (1 + i % 4), networks=["data"])
           for i in range(9)]
    by_host: dict[str, list[VmFacts]] = {}
    for v in vms:
        by_host.setdefault(v.host_id or "", []).append(v)

    def load(h: str) -> dict[str, Any]:
        mine = by_host.get(h, [])
        return dict(vm_ids=[v.id for v in mine], vcpus_committed=sum(v.vcpus for v in mine),
                    committed_memory_mib=sum(v.memory_mib for v in mine))

    hosts = [
        host(1, cpu_usage_percent=92.0, cpu_over_commit_since=now - 600, is_spm=True,
             **load("h1")),
        host(2, cpu_usage_percent=20.0, **load("h2")),
        host(3, cpu_usage_percent=45.0, cpus=2, memory_mib=4096, free_memory_mib=900,
             **load("h3")),
        host(4, cpu_usage_percent=None, networks=None),
        host(5, cpu_usage_percent=5.0, status="Maintenance", power_management=True),
        host(6, cpu_usage_percent=3.0, arch="ppc64le", guest_arches=["ppc64le"],
             usable_cpu_models=["POWER9"]),
    ]
    groups = [
        AffinityGroup("apart", ["v0", "v1", "new"], vm_rule=AffinityRule(False, True)),
        AffinityGroup("near", ["v2", "new"], vm_rule=AffinityRule(True, False)),
        AffinityGroup("rack-a", ["new"], host_ids=["h2", "h3"],
                      host_rule=AffinityRule(True, False)),
    ]
    return ClusterFacts("c1", "cluster1", "x86_64", "Westmere", hosts, vms, groups)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value)


class PolicyUnitContract:
    """Checks every policy unit gets: found by name, described, typed parameters."""

    #: ``filter``, ``weight`` or ``balancer`` (set by the kind's contract)
    kind: ClassVar[str] = ""
    #: the unit's entry-point name
    unit: ClassVar[str] = ""
    #: policy parameters to run the unit with
    parameters: ClassVar[dict[str, ParamValue]] = {}

    @pytest.fixture
    def registry(self) -> UnitRegistry:
        return UnitRegistry()

    @pytest.fixture
    def policy_unit(self, registry: UnitRegistry) -> PolicyUnit:
        if not self.unit:
            pytest.fail(f"{type(self).__name__} does not name the unit under test: set the "
                        "class attribute `unit` to its entry-point name")
        return registry.unit(self.kind, self.unit)

    @pytest.fixture
    def params(self, policy_unit: PolicyUnit) -> Any:
        return build(policy_unit.params_type, self.parameters, f"unit {self.unit}")

    @pytest.fixture
    def cluster(self) -> ClusterFacts:
        return sample_cluster()

    @pytest.fixture
    def vm(self, cluster: ClusterFacts) -> VmFacts:
        """A VM to place (not running yet)."""
        return VmFacts("new", "newvm", memory_mib=2048, vcpus=2, networks=["data"],
                       preferred_hosts=["h2"], highly_available=True)

    @pytest.fixture
    def ctx(self, cluster: ClusterFacts) -> UnitContext:
        return UnitContext(cluster, NOW, Mode.START)

    @pytest.fixture
    def hosts(self, cluster: ClusterFacts) -> list[HostFacts]:
        return [h for h in cluster.hosts if h.status == "Up"]

    # ------------------------------------------------------------ the tests

    def test_found_by_name_as_its_kind(self, policy_unit: PolicyUnit) -> None:
        assert policy_unit.kind == self.kind, (
            f"{self.unit!r} is a {policy_unit.kind or 'unit of no kind'}, registered as a "
            f"{self.kind}")
        assert policy_unit.name == self.unit

    def test_describes_what_it_checks(self, policy_unit: PolicyUnit) -> None:
        assert len(policy_unit.description()) >= 20, (
            f"{self.unit!r} needs a docstring that says what it checks (shown by "
            "`scheduling units` and the docs)")

    def test_parameters_are_declared_with_defaults(self, policy_unit: PolicyUnit) -> None:
        infos = describe(policy_unit.params_type)
        policy_unit.params_type()  # every parameter has a default
        for p in infos:
            assert p.doc, f"parameter {p.name} of {self.unit!r} has no description"

    def test_parameters_refuse_wrong_values(self, policy_unit: PolicyUnit) -> None:
        for p in describe(policy_unit.params_type):
            bad: ParamValue = "maybe" if p.type == "bool" else "not-a-number"
            with pytest.raises(PolicyError, match=p.name):
                build(policy_unit.params_type, {p.name: bad}, self.unit)
            if p.minimum is not None:
                with pytest.raises(PolicyError, match=p.name):
                    build(policy_unit.params_type, {p.name: p.minimum - 1}, self.unit)


class FilterContract(PolicyUnitContract):
    """A filter drops only hosts it was given, always with a reason, the same way twice."""

    kind = "filter"

    def run(self, unit: PolicyUnit, ctx: UnitContext, params: Any, vm: VmFacts,
            hosts: list[HostFacts]) -> dict[str, str]:
        assert isinstance(unit, FilterUnit)
        return unit.filter(ctx, params, vm, hosts)

    def test_drops_only_given_hosts_with_reasons(self, policy_unit: PolicyUnit,
                                                 ctx: UnitContext, params: Any, vm: VmFacts,
                                                 hosts: list[HostFacts]) -> None:
        dropped = self.run(policy_unit, ctx, params, vm, hosts)
        assert set(dropped) <= {h.id for h in hosts}
        for host_id, reason in dropped.items():
            assert isinstance(reason, str) and reason.strip(), (
                f"{self.unit!r} dropped {host_id} without a reason")

    def test_same_answer_whatever_the_order(self, policy_unit: PolicyUnit, ctx: UnitContext,
                                            params: Any, vm: VmFacts,
                                            hosts: list[HostFacts]) -> None:
        first = self.run(policy_unit, ctx, params, vm, hosts)
        assert self.run(policy_unit, ctx, params, vm, list(reversed(hosts))) == first

    def test_no_hosts_no_answer(self, policy_unit: PolicyUnit, ctx: UnitContext, params: Any,
                                vm: VmFacts) -> None:
        assert self.run(policy_unit, ctx, params, vm, []) == {}


class WeightContract(PolicyUnitContract):
    """A weight scores only hosts it was given, with finite numbers, the same way twice."""

    kind = "weight"

    def run(self, unit: PolicyUnit, ctx: UnitContext, params: Any, vm: VmFacts,
            hosts: list[HostFacts]) -> dict[str, float]:
        assert isinstance(unit, WeightUnit)
        return unit.score(ctx, params, vm, hosts)

    def test_scores_given_hosts_with_finite_numbers(self, policy_unit: PolicyUnit,
                                                    ctx: UnitContext, params: Any,
                                                    vm: VmFacts,
                                                    hosts: list[HostFacts]) -> None:
        scores = self.run(policy_unit, ctx, params, vm, hosts)
        assert set(scores) <= {h.id for h in hosts}
        bad = {h: s for h, s in scores.items() if not _finite(s)}
        assert not bad, f"{self.unit!r} gave non-finite or non-numeric weights: {bad}"

    def test_same_answer_whatever_the_order(self, policy_unit: PolicyUnit, ctx: UnitContext,
                                            params: Any, vm: VmFacts,
                                            hosts: list[HostFacts]) -> None:
        first = self.run(policy_unit, ctx, params, vm, hosts)
        assert self.run(policy_unit, ctx, params, vm, list(reversed(hosts))) == first

    def test_no_hosts_no_scores(self, policy_unit: PolicyUnit, ctx: UnitContext, params: Any,
                                vm: VmFacts) -> None:
        assert self.run(policy_unit, ctx, params, vm, []) == {}


class BalancerContract(PolicyUnitContract):
    """A balancer proposes running VMs of the given hosts, each with its own host among
    the candidates, and needs two hosts to propose anything."""

    kind = "balancer"

    def run(self, unit: PolicyUnit, ctx: UnitContext, params: Any,
            hosts: list[HostFacts]) -> list[Any]:
        assert isinstance(unit, BalancerUnit)
        return unit.balance(ctx, params, hosts)

    @pytest.fixture
    def ctx(self, cluster: ClusterFacts) -> UnitContext:
        return UnitContext(cluster, NOW, Mode.BALANCE)

    def test_candidates_are_real_moves(self, policy_unit: PolicyUnit, ctx: UnitContext,
                                       params: Any, hosts: list[HostFacts]) -> None:
        ids = {h.id for h in hosts}
        for c in self.run(policy_unit, ctx, params, hosts):
            vm = ctx.vms_by_id.get(c.vm_id)
            assert vm is not None, f"{self.unit!r} proposed unknown VM {c.vm_id}"
            assert vm.host_id == c.source_host_id, f"{c.vm_id} does not run on its source"
            assert c.source_host_id in c.candidate_host_ids, (
                "the source host must be a candidate (the scheduler may keep the VM there)")
            assert set(c.candidate_host_ids) <= ids
            assert c.reason

    def test_same_answer_twice(self, policy_unit: PolicyUnit, ctx: UnitContext, params: Any,
                               hosts: list[HostFacts]) -> None:
        assert self.run(policy_unit, ctx, params, hosts) == self.run(
            policy_unit, ctx, params, hosts)

    def test_one_host_nothing_to_balance(self, policy_unit: PolicyUnit, ctx: UnitContext,
                                         params: Any, hosts: list[HostFacts]) -> None:
        assert self.run(policy_unit, ctx, params, hosts[:1]) == []

    def test_cost_is_a_finite_figure(self, policy_unit: PolicyUnit, ctx: UnitContext,
                                     params: Any, hosts: list[HostFacts]) -> None:
        assert isinstance(policy_unit, BalancerUnit)
        for metric in ("cpu", "memory", "vm_count", "consolidation"):
            cost = policy_unit.cost(ctx, params, hosts, metric)
            assert _finite(cost) and cost >= 0, f"cost({metric}) = {cost!r}"


class FenceAgentContract:
    """A fence agent reports a power state and switches it, as the fencing flow needs;
    an agent that soft-fences answers with a result, never a crash.

    Override :meth:`target` to point at the lab device the tests may power-cycle
    (the power tests switch it off and on again). Set :attr:`switches_power` False for
    an agent that only soft-fences (the built-in ``ssh``): its power actions must
    then be refused with a :class:`~.fencing.FenceError` that names the host. Set
    :attr:`soft_fence_succeeds` when the target's soft fence is known to succeed
    (True) or to fail (False: e.g. nothing listens there); the result is checked
    against it.
    """

    #: the agent's entry-point name
    agent_name: ClassVar[str] = ""
    #: False: the agent only soft-fences, every power action must raise FenceError
    switches_power: ClassVar[bool] = True
    #: what soft fencing the target must give (None: only the result's form is checked)
    soft_fence_succeeds: ClassVar[bool | None] = None

    @pytest.fixture
    def agent(self) -> FenceAgent:
        if not self.agent_name:
            pytest.fail(f"{type(self).__name__} does not name the agent: set `agent_name`")
        return FenceAgents().agent(self.agent_name)

    @pytest.fixture
    def target(self) -> FenceTarget:
        return FenceTarget("contract-host", "contract-host", address="127.0.0.1")

    def _switches(self, agent: FenceAgent, target: FenceTarget, action: FenceAction) -> bool:
        """True for a power agent; for a soft-only one, checks that ``action`` is refused
        as the contract says, and returns False."""
        if self.switches_power:
            return True
        with pytest.raises(FenceError, match=target.host_name):
            agent.run(target, action)
        return False

    def test_status_reports_a_power_state(self, agent: FenceAgent,
                                          target: FenceTarget) -> None:
        if not self._switches(agent, target, FenceAction.STATUS):
            return
        r = agent.run(target, FenceAction.STATUS)
        assert r.action is FenceAction.STATUS and r.ok
        assert r.power in (PowerState.ON, PowerState.OFF)

    def test_off_is_confirmed_by_status(self, agent: FenceAgent, target: FenceTarget) -> None:
        if not self._switches(agent, target, FenceAction.OFF):
            return
        results = [agent.run(target, FenceAction.OFF), agent.run(target, FenceAction.STATUS)]
        assert all(r.ok for r in results), results
        assert results[-1].power is PowerState.OFF
        assert confirmed_off(results)

    def test_on_brings_it_back(self, agent: FenceAgent, target: FenceTarget) -> None:
        if not self._switches(agent, target, FenceAction.ON):
            return
        agent.run(target, FenceAction.OFF)
        assert agent.run(target, FenceAction.ON).ok
        assert agent.run(target, FenceAction.STATUS).power is PowerState.ON

    def test_results_name_their_action(self, agent: FenceAgent, target: FenceTarget) -> None:
        if not self._switches(agent, target, FenceAction.REBOOT):
            return
        for action in FenceAction:
            assert agent.run(target, action).action is action

    def test_soft_fence_answers_with_a_result(self, agent: FenceAgent,
                                              target: FenceTarget) -> None:
        soft = getattr(agent, "soft_fence", None)
        if soft is None:
            assert self.switches_power, "an agent that switches no power must soft-fence"
            assert self.soft_fence_succeeds is None, (
                f"{self.agent_name} has no soft_fence, yet soft_fence_succeeds is set")
            return
        r = soft(target)
        assert isinstance(r, FenceResult), r
        assert r.action is FenceAction.REBOOT and isinstance(r.ok, bool) and r.message, r
        if self.soft_fence_succeeds is not None:
            assert r.ok is self.soft_fence_succeeds, r


__all__ = ["BalancerContract", "FenceAgentContract", "FilterContract", "PolicyUnitContract",
           "WeightContract", "sample_cluster"]
