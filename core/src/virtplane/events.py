"""Event log entries from inside a hook call.

A hook implementation (in-process, or the hook-scripts plugin relaying a
script's stderr) calls :func:`record` to add a line to the event log of the
object the hook is about (the VM, else the host), which ``virtplane vm events``
shows. Outside a hook call, or for hooks about no stored object, the message
goes to the ``virtplane.events`` logger instead.

It also holds the core services' event codes (:class:`Code`: oVirt's
``AuditLogType`` numbers where one fits, the engine's table is
``virtplane_engine.codes``) and the correlation id of the job running in the
current context (:func:`correlation`): the engine's job runner sets it, and the
state store's ``add_event`` records it with every event written meanwhile that
names no correlation id of its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import logging
from collections.abc import Callable, Iterator

Sink = Callable[[str, str], None]

_SINK: contextvars.ContextVar[Sink | None] = contextvars.ContextVar("virtplane_event_sink",
                                                                    default=None)
_CORRELATION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "virtplane_correlation_id", default=None)
_log = logging.getLogger("virtplane.events")
LEVELS = ("debug", "info", "warning", "error")


@enum.unique
class Code(enum.IntEnum):
    """Codes of the events the core services write (``Context.event``).

    oVirt's ``AuditLogType`` number where oVirt logs the same thing; the few events
    oVirt has no equivalent for use virtplane's range 100100-100199 (the engine's own
    codes are 100000-100029 and 100050-100099, the REST API's 100030-100049). A
    number never changes meaning once released; the engine's table
    (``virtplane_engine.codes``) uses the same number for the same event.
    """

    # ---- hosts
    #: VDS_DETECTED: "Status of host ... was set to Up"
    HOST_UP = 13
    #: VDS_INSTALL: host setup finished
    HOST_INSTALLED = 504
    #: VDS_INSTALL_FAILED: host setup failed (the host is InstallFailed)
    HOST_INSTALL_FAILED = 505
    #: VDS_INSTALL_IN_PROGRESS: a setup step (the host is Installing)
    HOST_INSTALLING = 509
    #: VDS_SET_NONOPERATIONAL: the host cannot serve its cluster (architecture, CPU)
    HOST_NON_OPERATIONAL = 517
    #: VDS_SET_NONOPERATIONAL_DOMAIN: the host cannot reach a data domain of its
    #: data center
    HOST_NON_OPERATIONAL_STORAGE = 522
    # ---- VM lifecycle
    #: USER_RUN_VM: a hibernated VM runs again (restored)
    VM_RESTORED = 32
    #: USER_STOP_VM: powered off on request (destroy)
    VM_STOPPED = 33
    #: USER_PAUSE_VM / USER_FAILED_PAUSE_VM
    VM_PAUSED = 39
    VM_PAUSE_FAILED = 55
    #: USER_RESUME_VM / USER_FAILED_RESUME_VM
    VM_RESUMED = 40
    VM_RESUME_FAILED = 103
    #: USER_FAILED_RUN_VM
    VM_START_FAILED = 54
    #: USER_FAILED_STOP_VM
    VM_STOP_FAILED = 56
    #: VM_DOWN: stopped normally (shut down, destroyed, hibernated on request)
    VM_DOWN = 61
    #: USER_INITIATED_SHUTDOWN_VM / USER_FAILED_SHUTDOWN_VM
    VM_SHUTDOWN = 73
    VM_SHUTDOWN_FAILED = 74
    #: VM_DOWN_ERROR: QEMU died, crashed, killed behind virtplane's back
    VM_DOWN_ERROR = 119
    #: USER_STARTED_VM: "VM ... was started"
    VM_STARTED = 153
    #: USER_REBOOT_VM
    VM_REBOOT = 157
    #: USER_SUSPEND_VM / USER_FAILED_SUSPEND_VM (oVirt's suspend is virtplane's
    #: hibernate: memory saved, VM Down)
    VM_HIBERNATED = 501
    VM_HIBERNATE_FAILED = 502
    #: USER_UPDATE_VM: a property changed (high availability, custom properties)
    VM_UPDATED = 35
    # ---- snapshots, migration, devices (for the services that write them)
    #: USER_CREATE_SNAPSHOT_FINISHED_SUCCESS / USER_FAILED_CREATE_SNAPSHOT
    SNAPSHOT_TAKEN = 68
    SNAPSHOT_FAILED = 117
    #: USER_RESTORE_FROM_SNAPSHOT_FINISH_SUCCESS
    SNAPSHOT_REVERTED = 100
    #: USER_REMOVE_SNAPSHOT_FINISHED_SUCCESS
    SNAPSHOT_DELETED = 356
    #: VM_MIGRATION_START / VM_MIGRATION_DONE / VM_MIGRATION_FAILED
    VM_MIGRATION_START = 62
    VM_MIGRATION_DONE = 63
    VM_MIGRATION_FAILED = 65
    #: HOT_SET_NUMBER_OF_CPUS / FAILED_HOT_SET_NUMBER_OF_CPUS
    VM_CPUS_SET = 2033
    VM_CPUS_SET_FAILED = 2034
    #: SYSTEM_DEACTIVATED_STORAGE_DOMAIN / STORAGE_ACTIVATE_ASYNC: a domain's probe
    #: failed (Inactive) / succeeded again (Active)
    STORAGE_INACTIVE = 970
    STORAGE_ACTIVE = 9504
    # ---- virtplane's own (no oVirt equivalent)
    #: an operation with no code of its own failed (the message names it)
    OPERATION_FAILED = 100101


_CODE_ERROR = {Code.HOST_INSTALL_FAILED, Code.HOST_NON_OPERATIONAL,
               Code.VM_PAUSE_FAILED, Code.VM_RESUME_FAILED, Code.VM_START_FAILED,
               Code.VM_STOP_FAILED, Code.VM_SHUTDOWN_FAILED, Code.VM_DOWN_ERROR,
               Code.VM_HIBERNATE_FAILED, Code.SNAPSHOT_FAILED, Code.VM_MIGRATION_FAILED,
               Code.VM_CPUS_SET_FAILED, Code.STORAGE_INACTIVE, Code.OPERATION_FAILED}
_CODE_WARNING = {Code.HOST_NON_OPERATIONAL_STORAGE}

#: code -> the level its events are stored with when the writer names none
LEVEL: dict[int, str] = {c: "error" if c in _CODE_ERROR else "warning"
                          if c in _CODE_WARNING else "info" for c in Code}


def correlation_id() -> str | None:
    """The correlation id of the job running in this context (None: none)."""
    return _CORRELATION.get()


@contextlib.contextmanager
def correlation(cid: str | None) -> Iterator[None]:
    """Events written inside the block carry ``cid`` unless they name their own (the
    engine's job runner wraps each job's body in it)."""
    token = _CORRELATION.set(cid)
    try:
        yield
    finally:
        _CORRELATION.reset(token)


def record(message: str, level: str = "info") -> None:
    """Add ``message`` to the event log of the object the running hook is about."""
    if level not in LEVELS:
        raise ValueError(f"event level {level!r} is not allowed; use one of {', '.join(LEVELS)}")
    sink = _SINK.get()
    if sink is None:
        _log.log(getattr(logging, level.upper()), "%s", message)
    else:
        sink(message, level)


@contextlib.contextmanager
def sink(target: Sink | None) -> Iterator[None]:
    """Route :func:`record` to ``target`` inside the block (used by the core)."""
    token = _SINK.set(target)
    try:
        yield
    finally:
        _SINK.reset(token)
