"""Power saving's host plan, the fence agents and oVirt's fencing rules."""

from __future__ import annotations

import attrs
import pytest

from virtplane_engine.scheduling.balancers import PowerParams, PowerSavingBalancer
from virtplane_engine.scheduling.fencing import (
    FenceAction,
    FenceAgents,
    FenceError,
    FenceResult,
    FenceTarget,
    PowerState,
    TestFenceAgent,
)
from virtplane_engine.scheduling.fencing_rules import (
    FencingPolicy,
    HostFenceState,
    Step,
    confirmed_off,
    decide,
)
from virtplane_engine.scheduling.params import PolicyError
from virtplane_engine.scheduling.units import Mode, UnitContext

from .conftest import NOW, cluster, host

# ------------------------------------------------------------ power saving hosts


def plan(hosts, reserve=0, auto=True):
    c = cluster(hosts)
    p = PowerParams(hosts_in_reserve=reserve, automatic_power=auto)
    return PowerSavingBalancer().host_power(UnitContext(c, NOW, Mode.BALANCE), p, list(c.hosts))


def busy(name):
    return host(name, vm_ids=[f"{name}-vm"], power_management=True)


def empty(name, **kw):
    return host(name, power_management=True, **kw)


def maint(name, **kw):
    return host(name, status="Maintenance", power_management=True, **kw)


def test_power_management_off_does_nothing():
    assert plan([busy("a"), empty("b"), empty("c")], auto=False).action is None


def test_more_empty_hosts_than_reserve_one_goes_to_maintenance():
    a = plan([busy("a"), empty("b"), empty("c")], reserve=1)
    assert (a.action, a.host_name) == ("maintenance", "c")


def test_never_the_spm_or_a_host_without_power_management():
    a = plan([busy("a"), empty("b", is_spm=True), host("c")], reserve=0)
    assert a.action is None and "non-SPM" in a.reason


def test_reserve_met_and_a_host_in_maintenance_powers_it_off():
    a = plan([busy("a"), empty("b"), maint("m")], reserve=1)
    assert (a.action, a.host_name) == ("power_off", "m")


def test_two_in_maintenance_and_surplus_powers_one_off():
    a = plan([busy("a"), empty("b"), maint("m1"), maint("m2")], reserve=0)
    assert (a.action, a.host_name) == ("power_off", "m1")


def test_reserve_short_activates_then_powers_on():
    a = plan([busy("a"), maint("m"), host("d", status="Down", power_management=True)], 1)
    assert (a.action, a.host_name) == ("activate", "m")
    a = plan([busy("a"), host("d", status="Down", power_management=True)], reserve=1)
    assert (a.action, a.host_name) == ("power_on", "d")
    a = plan([busy("a")], reserve=1)
    assert a.action is None and "no host in maintenance or down" in a.reason


def test_a_host_with_pending_or_migrating_vms_is_not_empty():
    a = plan([busy("a"), empty("b", pending_vms=1), empty("c", migrating_vms=1)], reserve=0)
    assert a.action is None


# ------------------------------------------------------------ fence agents


def test_test_agent_switches_power_and_can_be_scripted():
    agents = FenceAgents()
    agent = agents.agent("test")
    assert agents.agent("test") is agent and "test" in agents.names()
    t = FenceTarget("h1", "host1")
    assert agent.run(t, FenceAction.STATUS).power is PowerState.ON
    assert agent.run(t, FenceAction.OFF).power is PowerState.OFF
    assert isinstance(agent, TestFenceAgent)
    agent.refuse.add(FenceAction.ON)
    assert not agent.run(t, FenceAction.ON).ok
    agent.unreachable.add("h1")
    with pytest.raises(FenceError, match="host1"):
        agent.run(t, FenceAction.STATUS)
    assert agent.calls[0] == ("h1", FenceAction.STATUS)


def test_unknown_agents_are_named():
    with pytest.raises(PolicyError, match="no fence agent named 'ipmi'.*test"):
        FenceAgents().agent("ipmi")


def test_confirmed_off_needs_an_accepted_off_and_a_power_off_report():
    off = FenceResult(FenceAction.OFF, True, PowerState.UNKNOWN)
    status_off = FenceResult(FenceAction.STATUS, True, PowerState.OFF)
    assert confirmed_off([off, status_off])
    assert confirmed_off([FenceResult(FenceAction.OFF, True, PowerState.OFF)])
    assert not confirmed_off([off])
    assert not confirmed_off([FenceResult(FenceAction.OFF, False), status_off])
    assert not confirmed_off([FenceResult(FenceAction.REBOOT, True, PowerState.ON)])
    assert not confirmed_off([status_off])


# ------------------------------------------------------------ fencing rules

STARTED = NOW - 3600
UP4 = ["Up", "Up", "Up", "NonResponsive"]


def nr(**kw) -> HostFenceState:
    base = dict(host_id="h", name="h", status="NonResponsive",
                failed_checks=(NOW - 30, NOW - 10), power_management=True)
    base.update(kw)
    return HostFenceState(**base)


DEFAULT_POLICY = FencingPolicy()


def step(state, statuses=UP4, policy=DEFAULT_POLICY, started=STARTED, now=NOW):
    return decide(state, statuses, policy, started, now)


def test_responsive_hosts_are_left_alone():
    assert step(nr(status="Up")).step is Step.NOTHING
    assert step(nr(status="Connecting")).step is Step.NOTHING


def test_no_fencing_in_the_first_five_minutes_after_engine_start():
    d = step(nr(), started=NOW - 100)
    assert (d.step, d.rule, d.retry_at) == (Step.SKIP, "startup", NOW + 200)


def test_policy_off_and_half_the_cluster_unreachable_skip():
    assert step(nr(), policy=FencingPolicy(enabled=False)).rule == "disabled"
    d = step(nr(), statuses=["Up", "Connecting", "NonResponsive", "Up"])
    assert (d.step, d.rule) == (Step.SKIP, "connectivity") and "50%" in d.reason
    assert step(nr(), statuses=["Up", "Connecting", "NonResponsive", "Up"],
                policy=FencingPolicy(connectivity_threshold_percent=75)).step is Step.SOFT_FENCE


def test_never_fence_without_a_second_confirmation():
    d = step(nr(failed_checks=(NOW,)))
    assert (d.step, d.retry_at) == (Step.CONFIRM, NOW + 10)
    assert step(nr(failed_checks=(NOW - 3, NOW))).step is Step.CONFIRM
    assert step(nr(failed_checks=(NOW - 10, NOW))).step is Step.SOFT_FENCE


def test_a_live_storage_lease_means_alive():
    d = step(nr(storage_lease_renewed_at=NOW - 20))
    assert (d.step, d.rule, d.retry_at) == (Step.SKIP, "storage_lease", NOW + 60)
    assert step(nr(storage_lease_renewed_at=NOW - 90)).step is Step.SOFT_FENCE


def test_soft_fencing_first_then_wait_then_power():
    assert step(nr()).step is Step.SOFT_FENCE
    d = step(nr(soft_fenced_at=NOW - 20))
    assert (d.step, d.retry_at) == (Step.WAIT, NOW + 40)
    assert step(nr(soft_fenced_at=NOW - 61)).step is Step.HARD_FENCE
    assert step(nr(soft_fenced_at=NOW - 5, soft_fence_failed=True)).step is Step.HARD_FENCE
    # a host the agent reports off gets no ssh attempt
    assert step(nr(power=PowerState.OFF)).step is Step.HARD_FENCE


def test_power_fencing_needs_power_management_and_waits_for_kdump_and_quiet_time():
    after_soft = dict(soft_fenced_at=NOW - 120)
    d = step(nr(power_management=False, **after_soft))
    assert (d.step, d.rule) == (Step.NOTHING, "no_power_management")
    assert "stay Unknown" in d.reason
    assert step(nr(kdumping=True, **after_soft)).rule == "kdump"
    assert step(nr(external_status_ok=False, **after_soft)).rule == "external_status"
    d = step(nr(last_power_operation_at=NOW - 100, **after_soft))
    assert (d.rule, d.retry_at) == ("quiet_time", NOW + 80)
    assert step(nr(in_fence_flow=True)).rule == "in_progress"


def test_a_full_treatment_on_a_virtual_clock():
    """Host goes NonResponsive; checks every 10 s; soft fence fails to help; power fence;
    the agent proves the host off."""
    now = NOW
    state = nr(failed_checks=(now,))
    steps = []
    agent = TestFenceAgent()
    target = FenceTarget("h", "h")
    results: list[FenceResult] = []
    for _ in range(12):
        d = step(state, now=now)
        steps.append(d.step)
        if d.step is Step.CONFIRM:
            state = attrs.evolve(state, failed_checks=(*state.failed_checks, now))
        elif d.step is Step.SOFT_FENCE:
            state = attrs.evolve(state, soft_fenced_at=now)
        elif d.step is Step.HARD_FENCE:
            results = [agent.run(target, FenceAction.OFF), agent.run(target, FenceAction.STATUS)]
            break
        now += 10
    assert steps[0] is Step.CONFIRM and Step.SOFT_FENCE in steps
    assert steps[-1] is Step.HARD_FENCE
    assert steps.count(Step.WAIT) >= 5  # 60 s waiting for the soft fence
    assert confirmed_off(results)
