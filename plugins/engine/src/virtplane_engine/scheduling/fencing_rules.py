"""When to fence a host that stopped answering: oVirt's rules, as a pure function.

Fencing a host that is in fact alive, or restarting its VMs elsewhere while they
still run, corrupts disks; never fencing leaves highly available VMs down. oVirt's
non-responding treatment (``VdsNotRespondingTreatmentCommand``) orders the
checks; :func:`decide` follows that order and returns one step with the rule
that produced it, so the engine can log it as an event and the tests can replay
it on a virtual clock:

1. nothing while the host is not NonResponsive, or is already being fenced;
2. nothing in the first DisableFenceAtStartupInSec (300 s) after the engine
   started (an engine restart must not fence everyone);
3. nothing when the cluster's fencing policy is off, or when at least
   ``connectivity_threshold_percent`` (50) of the cluster's hosts are unreachable
   (the engine's own network is the likelier culprit);
4. nothing before a second, independent failed check confirms the first
   (virtplane's rule: one lost poll never fences);
5. nothing while the host still renews its storage lease (it is alive);
6. soft fencing first (restart the host's agent over ssh, VMs untouched), then
   wait TimeoutToResetVdsInSeconds (60 s) for it to come back;
7. power fencing only with power management, not during a kdump, not while the
   host's external status is bad, not within FenceQuietTimeBetweenOperationsInSec
   (180 s) of another power operation.

Only a confirmed power-off (:func:`confirmed_off`) lets the engine mark the
host's VMs down and restart the highly available ones elsewhere.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import attrs

from virtplane_engine.scheduling.fencing import FenceAction, FenceResult, PowerState


class Step(enum.StrEnum):
    """What the engine should do now about a non-responsive host."""

    NOTHING = "nothing"
    WAIT = "wait"
    CONFIRM = "confirm"
    SKIP = "skip"
    SOFT_FENCE = "soft_fence"
    HARD_FENCE = "hard_fence"


@attrs.frozen
class FencingPolicy:
    """A cluster's fencing policy and oVirt's timings (seconds)."""

    enabled: bool = True
    skip_if_connectivity_broken: bool = True
    connectivity_threshold_percent: int = attrs.field(default=50)
    skip_if_storage_lease_alive: bool = True
    startup_grace: float = 300.0
    soft_fence_timeout: float = 60.0
    storage_lease_timeout: float = 80.0
    quiet_time: float = 180.0
    #: the second failed check must come at least this long after the first
    confirm_interval: float = 10.0

    @connectivity_threshold_percent.validator
    def _check(self, _attr: object, value: int) -> None:
        if not 1 <= value <= 100:
            raise ValueError(f"connectivity_threshold_percent must be 1-100, not {value}")


@attrs.frozen
class HostFenceState:
    """What the engine knows about one host for fencing (it keeps and updates this)."""

    host_id: str
    name: str
    status: str
    #: times of failed checks since the host went NonResponsive (the first one included)
    failed_checks: tuple[float, ...] = ()
    power_management: bool = False
    #: the last power status an agent reported
    power: PowerState = PowerState.UNKNOWN
    kdumping: bool = False
    external_status_ok: bool = True
    storage_lease_renewed_at: float | None = None
    in_fence_flow: bool = False
    soft_fenced_at: float | None = None
    soft_fence_failed: bool = False
    last_power_operation_at: float | None = None


@attrs.frozen
class FenceDecision:
    """One step, the rule that chose it, and when to ask again (None: on the next event)."""

    step: Step
    rule: str
    reason: str
    retry_at: float | None = None


def unreachable_share(statuses: Sequence[str]) -> float:
    """Percentage of hosts Connecting or NonResponsive."""
    if not statuses:
        return 0.0
    bad = sum(s in ("Connecting", "NonResponsive") for s in statuses)
    return 100.0 * bad / len(statuses)


def decide(host: HostFenceState, cluster_statuses: Sequence[str], policy: FencingPolicy,
           engine_started_at: float, now: float) -> FenceDecision:
    """The next step for ``host``; ``cluster_statuses`` are all the cluster's host
    statuses (this host included)."""
    if host.status != "NonResponsive":
        return FenceDecision(Step.NOTHING, "responsive",
                             f"{host.name} is {host.status}; nothing to fence")
    if host.in_fence_flow:
        return FenceDecision(Step.WAIT, "in_progress", f"{host.name} is already being fenced")
    if now - engine_started_at < policy.startup_grace:
        until = engine_started_at + policy.startup_grace
        return FenceDecision(Step.SKIP, "startup",
                             f"the engine started {now - engine_started_at:.0f} s ago; no "
                             f"fencing in the first {policy.startup_grace:.0f} s", until)
    if not policy.enabled:
        return FenceDecision(Step.SKIP, "disabled", "the cluster's fencing policy is off")
    share = unreachable_share(cluster_statuses)
    if policy.skip_if_connectivity_broken and share >= policy.connectivity_threshold_percent:
        return FenceDecision(Step.SKIP, "connectivity",
                             f"{share:.0f}% of the cluster's hosts are unreachable (threshold "
                             f"{policy.connectivity_threshold_percent}%): the engine's network "
                             "is the likelier fault")
    checks = sorted(host.failed_checks)
    if len(checks) < 2 or checks[-1] - checks[0] < policy.confirm_interval:
        due = (checks[0] if checks else now) + policy.confirm_interval
        return FenceDecision(Step.CONFIRM, "unconfirmed",
                             f"{len(checks)} failed check(s) of {host.name}; a second, at least "
                             f"{policy.confirm_interval:.0f} s after the first, must confirm",
                             max(due, now))
    lease = host.storage_lease_renewed_at
    if (policy.skip_if_storage_lease_alive and lease is not None
            and now - lease < policy.storage_lease_timeout):
        return FenceDecision(Step.SKIP, "storage_lease",
                             f"{host.name} renewed its storage lease {now - lease:.0f} s ago: "
                             "it is alive", lease + policy.storage_lease_timeout)
    if host.soft_fenced_at is None:
        if host.power is not PowerState.OFF:
            return FenceDecision(Step.SOFT_FENCE, "soft_first",
                                 f"restart {host.name}'s agent over ssh first (its VMs keep "
                                 "running)")
    elif not host.soft_fence_failed and now - host.soft_fenced_at < policy.soft_fence_timeout:
        return FenceDecision(Step.WAIT, "soft_pending",
                             f"soft fencing of {host.name} {now - host.soft_fenced_at:.0f} s "
                             f"ago; waiting up to {policy.soft_fence_timeout:.0f} s for it",
                             host.soft_fenced_at + policy.soft_fence_timeout)
    if not host.power_management:
        return FenceDecision(Step.NOTHING, "no_power_management",
                             f"{host.name} has no power management: its VMs stay Unknown "
                             "until an administrator confirms it is down")
    if host.kdumping:
        return FenceDecision(Step.WAIT, "kdump", f"{host.name} is writing a kernel dump")
    if not host.external_status_ok:
        return FenceDecision(Step.SKIP, "external_status",
                             f"{host.name}'s external status is not OK")
    last = host.last_power_operation_at
    if last is not None and now - last < policy.quiet_time:
        return FenceDecision(Step.WAIT, "quiet_time",
                             f"a power operation on {host.name} ran {now - last:.0f} s ago "
                             f"(quiet time {policy.quiet_time:.0f} s)", last + policy.quiet_time)
    return FenceDecision(Step.HARD_FENCE, "power_fence",
                         f"power-cycle {host.name} through its fence agent (stop, mark its "
                         "VMs down, start)")


def confirmed_off(results: Sequence[FenceResult]) -> bool:
    """Whether the agent proved the host went off: an accepted ``off`` reporting power
    off, or followed by a ``status`` that does. Nothing else (a timeout, a refused
    action, a ``reboot`` with no status in between) lets the engine treat the host's
    VMs as dead; a later ``on`` does not undo the proof (the VMs died with the power)."""
    off_accepted = False
    for r in results:
        if r.action is FenceAction.OFF and r.ok:
            if r.power is PowerState.OFF:
                return True
            off_accepted = True
        elif (r.action is FenceAction.STATUS and off_accepted and r.ok
              and r.power is PowerState.OFF):
            return True
    return False
