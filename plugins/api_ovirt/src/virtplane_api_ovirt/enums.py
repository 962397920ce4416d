"""virtplane's statuses as the oVirt model spells them.

The SDK reads an enum value it does not know (or an upper-case one) as None,
and its users' polling loops (``while vm.status != VmStatus.UP``) then never
end. So every virtplane status maps to a value of the SDK's own enum, and
anything unforeseen maps to ``unknown``, never to a made-up word; a test
checks each table against the installed SDK's enums.
"""

from __future__ import annotations

from virtplane import model

VM_STATUS = {
    model.VmStatus.DOWN: "down",
    model.VmStatus.UP: "up",
    model.VmStatus.PAUSED: "paused",
    model.VmStatus.POWERING_UP: "powering_up",
    model.VmStatus.POWERING_DOWN: "powering_down",
    model.VmStatus.MIGRATION_SOURCE: "migrating",
    model.VmStatus.MIGRATION_DESTINATION: "migrating",
    model.VmStatus.REBOOT_IN_PROGRESS: "reboot_in_progress",
    model.VmStatus.RESTORING_STATE: "restoring_state",
    model.VmStatus.SAVING_STATE: "saving_state",
    model.VmStatus.WAIT_FOR_LAUNCH: "wait_for_launch",
    model.VmStatus.UNKNOWN: "unknown",
}

HOST_STATUS = {
    model.HostStatus.UP: "up",
    model.HostStatus.NON_RESPONSIVE: "non_responsive",
    model.HostStatus.MAINTENANCE: "maintenance",
    model.HostStatus.NON_OPERATIONAL: "non_operational",
    model.HostStatus.INSTALLING: "installing",
    model.HostStatus.CONNECTING: "connecting",
    model.HostStatus.PREPARING_FOR_MAINTENANCE: "preparing_for_maintenance",
    model.HostStatus.INSTALL_FAILED: "install_failed",
}

#: in a data center: an attached domain that is not active is in maintenance
DOMAIN_STATUS = {
    model.DomainStatus.UNATTACHED: "unattached",
    model.DomainStatus.ATTACHED: "maintenance",
    model.DomainStatus.ACTIVE: "active",
    model.DomainStatus.INACTIVE: "maintenance",
}

JOB_STATUS = {
    model.JobStatus.QUEUED: "started",
    model.JobStatus.STARTED: "started",
    model.JobStatus.FINISHED: "finished",
    model.JobStatus.FAILED: "failed",
    model.JobStatus.ABORTED: "aborted",
}

#: virtplane event levels -> LogSeverity
SEVERITY = {"info": "normal", "warning": "warning", "error": "error", "critical": "alert"}

#: virtplane volume formats -> DiskFormat
DISK_FORMAT = {model.VolumeFormat.RAW: "raw", model.VolumeFormat.QCOW2: "cow"}
FORMAT_OF = {"raw": model.VolumeFormat.RAW, "cow": model.VolumeFormat.QCOW2}

#: storage driver names -> StorageType (oVirt has no other names for these)
STORAGE_TYPE = {"localfs": "localfs", "nfs": "nfs", "posixfs": "posixfs",
                "glusterfs": "glusterfs", "libsm": "iscsi"}


def vm_status(vm: model.Vm) -> str:
    """A VM's status; a hibernated VM (Down with saved memory) is ``suspended``."""
    if vm.status == model.VmStatus.DOWN and vm.saved_state:
        return "suspended"
    return VM_STATUS.get(vm.status, "unknown")


def host_status(host: model.Host) -> str:
    return HOST_STATUS.get(host.status, "unassigned")
