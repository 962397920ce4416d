"""oVirt's host state machine, pure: what one poll result does to a host's status.

Kept free of I/O and of the clock (the caller passes ``now``) so that the rules
are tested on a fake clock (tests/engine/test_hoststate.py):

* a good poll: Up; a host that was Connecting or NonResponsive recovers (to
  NonOperational again if that is what it was, with its reason);
* a missed poll within the grace period — at most ``grace_polls`` missed polls
  **or** less than ``grace_seconds + grace_per_vm × VMs`` since the last good
  poll (oVirt's ``isHostInGracePeriod``) — Connecting;
* after it, NonResponsive;
* Maintenance, PreparingForMaintenance, Installing and InstallFailed belong to
  the administrator's flows: polls never change them.
"""

from __future__ import annotations

import attrs

from virtplane.model import HostStatus
from virtplane_engine.codes import Code
from virtplane_engine.settings import EngineSettings

#: statuses the monitor never changes
UNTOUCHED = frozenset({HostStatus.MAINTENANCE, HostStatus.PREPARING_FOR_MAINTENANCE,
                       HostStatus.INSTALLING, HostStatus.INSTALL_FAILED})


@attrs.define
class HostHealth:
    """What the monitor remembers about one host between polls."""

    status: HostStatus
    reason: str = ""
    #: consecutive missed polls
    missed: int = 0
    #: time of the last good poll (the caller's clock); None: none yet
    last_ok: float | None = None
    #: the status to return to on recovery (Up, or NonOperational with ``settled_reason``)
    settled: HostStatus = HostStatus.UP
    settled_reason: str = ""


@attrs.frozen
class Transition:
    """A status change to record, with its event."""

    status: HostStatus
    reason: str
    code: Code
    message: str


def _settle(health: HostHealth) -> None:
    if health.status in (HostStatus.UP, HostStatus.NON_OPERATIONAL):
        health.settled, health.settled_reason = health.status, health.reason


def poll_ok(health: HostHealth, now: float, name: str) -> Transition | None:
    """The host answered a poll at ``now``."""
    health.missed = 0
    health.last_ok = now
    if health.status in UNTOUCHED or health.status in (HostStatus.UP,
                                                       HostStatus.NON_OPERATIONAL):
        _settle(health)
        return None
    was = health.status
    health.status, health.reason = health.settled, health.settled_reason
    if health.status == HostStatus.NON_OPERATIONAL:
        return Transition(health.status, health.reason, Code.HOST_NON_OPERATIONAL,
                          f"host {name} answers again after being {was.value}; it stays "
                          f"NonOperational: {health.reason}")
    return Transition(health.status, "", Code.HOST_RECOVERED,
                      f"host {name} answers again after being {was.value}; status set to Up")


def in_grace(health: HostHealth, now: float, settings: EngineSettings, vm_count: int) -> bool:
    """oVirt's rule: few missed polls, or little time since the last good one."""
    if health.missed <= settings.grace_polls:
        return True
    if health.last_ok is None:
        return False
    return now - health.last_ok <= settings.grace(vm_count)


def poll_failed(health: HostHealth, now: float, settings: EngineSettings, vm_count: int,
                name: str, error: str) -> Transition | None:
    """A poll at ``now`` failed with ``error`` (the host has ``vm_count`` VMs)."""
    if health.status in UNTOUCHED:
        return None
    _settle(health)
    health.missed += 1
    if health.last_ok is None:
        health.last_ok = now  # never seen answering by this engine: the grace starts now
    if in_grace(health, now, settings, vm_count):
        if health.status == HostStatus.CONNECTING:
            return None
        health.status, health.reason = HostStatus.CONNECTING, error
        grace = settings.grace(vm_count)
        return Transition(health.status, error, Code.HOST_CONNECTING,
                          f"host {name} is not responding ({error}); it stays Connecting for "
                          f"a grace period of {grace:g} s or {settings.grace_polls} missed "
                          "polls")
    if health.status == HostStatus.NON_RESPONSIVE:
        return None
    health.status, health.reason = HostStatus.NON_RESPONSIVE, error
    return Transition(health.status, error, Code.HOST_NON_RESPONSIVE,
                      f"host {name} is non responsive: {error}")
