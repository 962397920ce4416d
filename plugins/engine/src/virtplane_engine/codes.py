"""Event codes: one table, stable numbers, oVirt's audit-log codes where one fits.

Tests and administrators key on these numbers (oVirt's QE waits for code 506),
so a code never changes meaning once released. Codes taken from oVirt's
``AuditLogType`` keep its number; events oVirt has no equivalent for use
virtplane's own range, 100000 and up.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from virtplane.state import StateStore


class Code(enum.IntEnum):
    """An event code; :data:`LEVEL` gives its severity."""

    #: VDC_START / VDC_STOP
    ENGINE_STARTED = 1
    ENGINE_STOPPED = 2
    #: VDS_FAILURE: "Host ... is non responsive"
    HOST_NON_RESPONSIVE = 12
    #: VDS_DETECTED: "Status of host ... was set to Up"
    HOST_UP = 13
    #: VDS_RECOVER: a Connecting/NonResponsive host answers again
    HOST_RECOVERED = 14
    #: VDS_SET_NONOPERATIONAL
    HOST_NON_OPERATIONAL = 517
    #: VDS_HOST_NOT_RESPONDING_CONNECTING: polls missed, within the grace period
    HOST_CONNECTING = 9008
    #: VM_DOWN: stopped normally (shutdown from inside, destroyed on request)
    VM_DOWN = 61
    #: VM_MIGRATION_DONE / VM_MIGRATION_FAILED
    VM_MIGRATION_DONE = 63
    VM_MIGRATION_FAILED = 65
    #: VM_DOWN_ERROR: QEMU died, crashed, killed behind virtplane's back
    VM_DOWN_ERROR = 119
    #: VM_PAUSED_EIO: the host reports the VM paused on an I/O error
    VM_PAUSED_EIO = 145
    #: SYSTEM_DEACTIVATED_STORAGE_DOMAIN: the probe failed, the domain is Inactive
    STORAGE_INACTIVE = 970
    #: STORAGE_ACTIVATE_ASYNC: the domain recovered by itself
    STORAGE_ACTIVE = 9504
    #: VDS_INITIATED_RUN_VM: the engine restarts a highly available VM (oVirt's QE waits
    #: for this one)
    HA_VM_RESTART = 506
    #: HA_VM_FAILED: a highly available VM went down with its host or crashed
    HA_VM_FAILED = 9602
    #: HA_VM_RESTART_FAILED: a restart attempt failed (retried with backoff)
    HA_VM_RESTART_FAILED = 9603
    #: MIGRATION_REASON_LOAD_BALANCING: the balancer moved a VM
    VM_BALANCED = 12001
    # ---- virtplane's own
    #: a VM the store had Down (or elsewhere) runs on a host: the store follows the host
    VM_ADOPTED = 100001
    #: a domain no virtplane VM corresponds to runs on a host
    VM_EXTERNAL = 100002
    #: the host reports another runtime status than the store had (e.g. Paused)
    VM_STATUS_FROM_HOST = 100003
    #: a running VM has a disk on an Inactive storage domain
    VM_STORAGE_INACTIVE = 100004
    #: the VM's storage is Active again
    VM_STORAGE_BACK = 100005
    JOB_STARTED = 100010
    JOB_FINISHED = 100011
    JOB_FAILED = 100012
    JOB_ABORTED = 100013
    #: a job that was running when the engine died is failed at the next start
    JOB_FAILED_ON_RESTART = 100014
    # ---- fencing and high availability (docs/ha.md)
    #: a VM's host is NonResponsive: the VM may or may not run (Unknown)
    VM_UNKNOWN = 100020
    #: the fencing rules hold off (startup grace, connectivity, no power management ...)
    FENCE_SKIPPED = 100021
    #: soft fencing: the host's libvirtd is restarted, its VMs untouched
    SOFT_FENCE = 100022
    SOFT_FENCE_FAILED = 100023
    #: power fencing: the host's power is off, confirmed by its agent
    HOST_FENCED = 100024
    #: a fence agent failed or did not confirm the power off: the VMs stay Unknown
    FENCE_FAILED = 100025
    #: a host powered back on after fencing (or by power saving)
    HOST_POWERED_ON = 100026
    #: a VM of a fenced host is set Down (it died with the power)
    VM_DOWN_FENCED = 100027
    #: a highly available VM waits for higher-priority ones to be Up before its restart
    HA_VM_WAITS = 100028
    # ---- maintenance, scheduling, balancing, power saving (100030-100049 are the
    # REST API's authorization events: virtplane_api_ovirt.authz.codes)
    HOST_PREPARING_MAINTENANCE = 100050
    HOST_MAINTENANCE = 100051
    #: a VM cannot leave a host going to maintenance (the reason names it)
    MAINTENANCE_BLOCKED = 100052
    HOST_ACTIVATED = 100053
    #: a scheduling decision (its explanation is the message)
    SCHEDULING_DECISION = 100060
    #: a balancing migration failed
    BALANCE_FAILED = 100061
    #: power saving acts on a host (maintenance, power off/on, activate)
    POWER_SAVING = 100062


_ERROR = {Code.HOST_NON_RESPONSIVE, Code.HOST_NON_OPERATIONAL, Code.VM_DOWN_ERROR,
          Code.VM_MIGRATION_FAILED, Code.STORAGE_INACTIVE, Code.JOB_FAILED,
          Code.JOB_FAILED_ON_RESTART, Code.HA_VM_FAILED, Code.HA_VM_RESTART_FAILED,
          Code.SOFT_FENCE_FAILED, Code.FENCE_FAILED, Code.VM_DOWN_FENCED,
          Code.BALANCE_FAILED}
_WARNING = {Code.HOST_CONNECTING, Code.VM_PAUSED_EIO, Code.VM_EXTERNAL,
            Code.VM_STORAGE_INACTIVE, Code.JOB_ABORTED, Code.VM_UNKNOWN, Code.FENCE_SKIPPED,
            Code.SOFT_FENCE, Code.HOST_FENCED, Code.MAINTENANCE_BLOCKED}

#: code -> the level stored with the event (``info``, ``warning``, ``error``)
LEVEL: dict[Code, str] = {c: "error" if c in _ERROR else "warning" if c in _WARNING else "info"
                          for c in Code}


def store_event(store: StateStore, object_id: str, code: Code, message: str,
                correlation_id: str | None = None, *,
                log: logging.Logger | None = None) -> bool:
    """Store a coded event; whether it was stored.

    Inside the calling thread's transaction (a status change the event says, in
    ``keeper.fenced`` or ``store.transaction``) it is part of that transaction: a
    failure raises, so the change and its event land together or not at all. Outside
    one, a failure is logged (on ``log``) and False returned: a lone event that cannot
    be stored does not stop what reported it.
    """
    if store.in_transaction():
        store.add_event(object_id, message, level=LEVEL[code], code=int(code),
                        correlation_id=correlation_id)
        return True
    try:
        store.add_event(object_id, message, level=LEVEL[code], code=int(code),
                        correlation_id=correlation_id)
    except Exception as exc:  # noqa: BLE001 - an event that cannot be stored is logged
        (log or logging.getLogger("virtplane.engine")).error(
            "event %d not stored: %s (%s)", int(code), message, exc)
        return False
    return True
