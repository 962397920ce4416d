"""The core model: attrs classes, serialised losslessly with cattrs.

Every object has a stable UUID (``id``). :func:`to_json` / :func:`from_json`
round-trip any of them; the state store keeps them in that form.

Stored objects also carry ``revision``: the state store's row version the copy was
read at (0 for a copy that never came from the store). It is an attrs field rather
than a side table keyed by object identity because services copy objects with
``attrs.evolve`` and a copy must keep the version its data was read at; a side table
would lose it on every copy and turn honest updates into conflicts. The field is
keyword-only, ignored by ``==`` and ``repr``, and left out of :func:`unstructure` and
:func:`structure`: the version lives in its own column of the store, storage
metadata must not carry one store's counter, and user input cannot set it.
"""

from __future__ import annotations

import enum
import time
import uuid
from typing import Any

import attrs

# the JSON form, in its own module; its names are this module's too (as they always were)
from virtplane.model_codec import converter as converter
from virtplane.model_codec import format_exception as format_exception
from virtplane.model_codec import from_json as from_json
from virtplane.model_codec import structure as structure
from virtplane.model_codec import to_json as to_json
from virtplane.model_codec import unstructure as unstructure


def _new_id() -> str:
    return str(uuid.uuid4())


#: The compatibility version clusters, data centers and OS lookups default to.
DEFAULT_COMPAT = "4.8"

#: The longest description of a data center or cluster, in characters (oVirt's limit).
MAX_DESCRIPTION = 4000


class VmStatus(enum.StrEnum):
    """VM statuses, with VDSM's names (``lib/vdsm/virt/vmstatus.py``)."""

    DOWN = "Down"
    UP = "Up"
    PAUSED = "Paused"
    POWERING_UP = "Powering up"
    POWERING_DOWN = "Powering down"
    MIGRATION_SOURCE = "Migration Source"
    MIGRATION_DESTINATION = "Migration Destination"
    REBOOT_IN_PROGRESS = "RebootInProgress"
    RESTORING_STATE = "Restoring state"
    SAVING_STATE = "Saving State"
    WAIT_FOR_LAUNCH = "WaitForLaunch"
    #: its host stopped answering: it may or may not still run there (oVirt's Unknown);
    #: only a confirmed fence (or the host answering again) settles it
    UNKNOWN = "Unknown"


class HostStatus(enum.StrEnum):
    """Host statuses (the engine's names)."""

    UP = "Up"
    NON_RESPONSIVE = "NonResponsive"
    MAINTENANCE = "Maintenance"
    NON_OPERATIONAL = "NonOperational"
    INSTALLING = "Installing"
    #: polls are being missed, still within the grace period (then NonResponsive)
    CONNECTING = "Connecting"
    #: VMs are being moved away; Maintenance once none is left
    PREPARING_FOR_MAINTENANCE = "PreparingForMaintenance"
    #: host setup (``Installing``) failed; the reason says why
    INSTALL_FAILED = "InstallFailed"


class DomainClass(enum.StrEnum):
    """Storage domain classes."""

    DATA = "data"
    ISO = "iso"
    EXPORT = "export"


class DomainStatus(enum.StrEnum):
    """Storage domain statuses."""

    UNATTACHED = "Unattached"
    ATTACHED = "Attached"
    ACTIVE = "Active"
    INACTIVE = "Inactive"


class VolumeFormat(enum.StrEnum):
    RAW = "raw"
    QCOW2 = "qcow2"


class Allocation(enum.StrEnum):
    THIN = "thin"
    PREALLOCATED = "preallocated"


@attrs.define
class DataCenter:
    """A data center: a set of clusters sharing storage domains."""

    name: str
    description: str = ""
    compat_version: str = "4.8"
    id: str = attrs.field(factory=_new_id)
    revision: int = attrs.field(default=0, eq=False, repr=False, kw_only=True)


@attrs.define
class Cluster:
    """A cluster: hosts of one architecture and CPU model at one compatibility version."""

    name: str
    datacenter_id: str
    architecture: str = "x86_64"
    cpu_model: str | None = None
    compat_version: str = "4.8"
    #: the engine's cluster policy (``virtplane scheduling policy list``) and the
    #: parameters it overrides (oVirt's names: HighUtilization ...), as strings
    scheduling_policy: str = "none"
    scheduling_parameters: dict[str, str] = attrs.field(factory=dict)
    #: the cluster's fencing policy: False never fences its hosts (docs/ha.md)
    fencing_enabled: bool = True
    #: free text for people (at most :data:`MAX_DESCRIPTION` characters, no control
    #: characters but tab and newline: ``Clusters.add``/``update`` check it)
    description: str = ""
    id: str = attrs.field(factory=_new_id)
    revision: int = attrs.field(default=0, eq=False, repr=False, kw_only=True)


@attrs.define
class Host:
    """A hypervisor host, managed by a hypervisor driver (``kvm``, ``ovm3`` ...)."""

    name: str
    cluster_id: str
    driver: str
    uri: str
    status: HostStatus = HostStatus.UP
    status_reason: str = ""
    capabilities: dict[str, Any] = attrs.field(factory=dict)
    #: power management: the fence agent (``virtplane.fence_agents``) that switches this
    #: host's power, its options, and the agent that soft-fences it (restarts libvirtd);
    #: empty: none (docs/ha.md)
    fence_agent: str = ""
    fence_options: dict[str, str] = attrs.field(factory=dict)
    soft_fence_agent: str = ""
    id: str = attrs.field(factory=_new_id)
    revision: int = attrs.field(default=0, eq=False, repr=False, kw_only=True)


@attrs.define
class StorageDomain:
    """A storage domain: an image repository of one type (``localfs``, ``glusterfs`` ...)."""

    name: str
    type: str
    datacenter_id: str | None = None
    domain_class: DomainClass = DomainClass.DATA
    connection: dict[str, Any] = attrs.field(factory=dict)
    status: DomainStatus = DomainStatus.UNATTACHED
    status_reason: str = ""
    id: str = attrs.field(factory=_new_id)
    revision: int = attrs.field(default=0, eq=False, repr=False, kw_only=True)


@attrs.define
class Volume:
    """One layer of an image: raw or qcow2, thin or preallocated."""

    image_id: str
    format: VolumeFormat = VolumeFormat.QCOW2
    allocation: Allocation = Allocation.THIN
    size_bytes: int = 0
    parent_id: str | None = None
    #: the image holding ``parent_id`` when it is not this one (a template's volume)
    base_image_id: str | None = None
    legal: bool = True
    #: how the storage driver made it (e.g. "array clone (offloaded)", "qcow2 layer (...)")
    created_by: str = ""
    id: str = attrs.field(factory=_new_id)


@attrs.define
class Intent:
    """An operation on an image, recorded before it touched any file, not finished yet.

    The crash-safety journal (:mod:`virtplane.services.volumes`): an operation that
    deletes or merges stores its intent with the image first, then changes files,
    then commits and clears it. ``storage repair`` finishes whatever a killed process
    left, so the store never points at a deleted volume and no file is left that
    nobody knows about.
    """

    #: ``create`` (made for a VM or template not stored yet), ``remove`` (the whole
    #: image), ``merge`` (``child`` into ``parent``), ``revert`` (back to ``frozen``,
    #: ``leaf`` on top), ``extend`` (to ``size_bytes``) or ``drop`` (only ``doomed``
    #: files are left to delete)
    op: str
    child: str | None = None
    parent: str | None = None
    frozen: str | None = None
    leaf: Volume | None = None
    size_bytes: int = 0
    #: the VM snapshot the operation belongs to (deleted by a merge; reverted to)
    snapshot: str | None = None
    #: volumes out of the chain already whose files are still to be deleted
    doomed: list[Volume] = attrs.field(factory=list)


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


#: :attr:`Image.owner` of an image owned by a template whose id is not recorded (an image
#: stored before owners were); the template listing it in ``image_ids`` is its owner
TEMPLATE_OWNER_UNKNOWN = "template:"


def _derived_owner(image: Image) -> str:
    """The owner of an image stored before owners were recorded, read from what virtplane
    0.1 wrote: a named disk has an alias (standalone); a VM's disk is described
    ``<vm id>/<disk name>``; a template's ``template <name>/<disk name>``."""
    if image.alias:
        return ""
    head, sep, _rest = image.description.partition("/")
    if sep and _is_uuid(head):
        return f"vm:{head}"
    if sep and head.startswith("template "):
        return TEMPLATE_OWNER_UNKNOWN
    return ""


@attrs.define
class Image:
    """A disk image: a chain of volumes in a storage domain (leaf last)."""

    domain_id: str
    description: str = ""
    volumes: list[Volume] = attrs.field(factory=list)
    #: the name of a standalone disk (``virtplane disk create NAME``); unique
    alias: str = ""
    id: str = attrs.field(factory=_new_id)
    #: who owns the image, and so who may delete or change it: ``vm:<id>`` (made for a
    #: VM, deleted with it), ``template:<id>`` (a template's base image: read-only,
    #: deleted with the template) or ``""`` (a standalone, named disk). Records without
    #: one (stored by virtplane 0.1) get it from their description and alias.
    owner: str = attrs.field(
        default=attrs.Factory(_derived_owner, takes_self=True))
    #: VDSM's shareable disk: raw, one volume (never snapshotted), attachable to several
    #: VMs at once; any other disk belongs to one VM at a time
    shareable: bool = False
    #: an operation that started and has not finished (``storage repair`` finishes it)
    intent: Intent | None = None
    revision: int = attrs.field(default=0, eq=False, repr=False, kw_only=True)


@attrs.define
class DiskSpec:
    """A VM disk: an image in a storage domain (or a plain path) on an interface."""

    name: str
    size_bytes: int = 1 << 30
    interface: str = "virtio"
    format: VolumeFormat = VolumeFormat.QCOW2
    allocation: Allocation = Allocation.THIN
    domain_id: str | None = None
    image_id: str | None = None
    path: str | None = None
    bootable: bool = False
    readonly: bool = False
    custom_properties: dict[str, str] = attrs.field(factory=dict)


@attrs.define
class NicSpec:
    """A VM network interface."""

    name: str
    model: str = "virtio"
    network: str = "default"
    mac: str | None = None
    custom_properties: dict[str, str] = attrs.field(factory=dict)


@attrs.define
class DisplaySpec:
    """Graphical console."""

    type: str = "vnc"
    video: str | None = None


@attrs.define
class CdSpec:
    """CD-ROM drive; ``path`` None means an empty drive."""

    path: str | None = None
    interface: str | None = None


@attrs.define
class WatchdogSpec:
    """Watchdog device."""

    model: str = "i6300esb"
    action: str = "reset"


@attrs.define
class BootSpec:
    """Direct kernel boot (no bootloader): kernel, initrd and command line paths."""

    kernel: str
    initrd: str | None = None
    cmdline: str = ""


@attrs.define
class VmSpec:
    """What a VM should be: everything needed to render it for a hypervisor."""

    name: str
    memory_mib: int = 1024
    vcpus: int = 1
    #: memory the VM may grow to by hot-plugging DIMMs (None: no memory hotplug)
    max_memory_mib: int | None = None
    #: vCPUs the VM may grow to while running (None: its vcpus)
    max_vcpus: int | None = None
    #: osinfo OS name; None means the architecture's default OS ("other", "other_ppc64" ...)
    os: str | None = None
    arch: str | None = None
    cpu_model: str | None = None
    machine: str | None = None
    disks: list[DiskSpec] = attrs.field(factory=list)
    nics: list[NicSpec] = attrs.field(factory=list)
    display: DisplaySpec | None = None
    cd: CdSpec | None = None
    watchdog: WatchdogSpec | None = None
    boot: BootSpec | None = None
    serial_log: str | None = None
    tpm: bool = False
    custom_properties: dict[str, str] = attrs.field(factory=dict)
    #: restarted on another host by the engine when its host fails (after a confirmed
    #: fence) or its QEMU dies; higher ``ha_priority`` (0-100) first (docs/ha.md)
    highly_available: bool = False
    ha_priority: int = 0


@attrs.define
class Template:
    """A template: a VmSpec plus the (read-only) images its VMs are based on."""

    name: str
    spec: VmSpec
    image_ids: list[str] = attrs.field(factory=list)
    id: str = attrs.field(factory=_new_id)
    revision: int = attrs.field(default=0, eq=False, repr=False, kw_only=True)


@attrs.define
class Snapshot:
    """A VM snapshot as recorded by virtplane."""

    name: str
    vm_id: str
    created: float
    with_memory: bool = False
    description: str = ""
    #: image id -> the volume frozen by this snapshot (the layer below the new leaf)
    volumes: dict[str, str] = attrs.field(factory=dict)
    #: saved guest memory (snapshots taken with memory of a running VM)
    memory_path: str | None = None
    #: the VM's spec when the snapshot was taken (restored by a revert)
    spec: VmSpec | None = None
    id: str = attrs.field(factory=_new_id)
    revision: int = attrs.field(default=0, eq=False, repr=False, kw_only=True)


@attrs.define
class Vm:
    """A VM: its spec, where it runs and its status."""

    spec: VmSpec
    cluster_id: str
    host_id: str | None = None
    status: VmStatus = VmStatus.DOWN
    status_reason: str = ""
    started_xml: str | None = None
    saved_state: str | None = None
    id: str = attrs.field(factory=_new_id)
    revision: int = attrs.field(default=0, eq=False, repr=False, kw_only=True)

    @property
    def name(self) -> str:
        return self.spec.name


class JobStatus(enum.StrEnum):
    """Job and step statuses (the engine's names, lower-cased as its REST API shows them)."""

    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    ABORTED = "aborted"

    @property
    def done(self) -> bool:
        """Whether the job can no longer change (finished, failed or aborted)."""
        return self in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.ABORTED)


def _percent(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 100:
        raise ValueError(f"{attribute.name} must be between 0 and 100, not {value}")


@attrs.define
class JobStep:
    """One step of a job (e.g. "create the volume", "define the domain")."""

    description: str
    status: JobStatus = JobStatus.STARTED
    progress: int = attrs.field(default=0, validator=_percent)


@attrs.define
class Job:
    """A long operation run by the engine, persisted so that it outlives the process.

    ``correlation_id`` ties a job to the request that caused it and to the events it
    logs (oVirt's ``correlation_id`` query parameter); ``object_id`` is the object it
    works on. ``result`` (when finished) and ``error`` (when failed) say how it ended.
    The store keeps ``revision`` like for the other stored objects, so two writers
    cannot both move a job on from the same state.
    """

    kind: str
    object_id: str | None = None
    correlation_id: str = attrs.field(factory=_new_id)
    steps: list[JobStep] = attrs.field(factory=list)
    progress: int = attrs.field(default=0, validator=_percent)
    status: JobStatus = JobStatus.QUEUED
    result: dict[str, Any] | None = None
    error: str | None = None
    created: float = attrs.field(factory=time.time)
    updated: float = attrs.field(factory=time.time)
    id: str = attrs.field(factory=_new_id)
    revision: int = attrs.field(default=0, eq=False, repr=False, kw_only=True)


#: the namespace annotation ids are derived in (see :class:`Annotation`)
_ANNOTATION_NS = uuid.UUID("9f4c2d3e-61a8-4b57-8f0e-2c7d5a1b9e40")


def annotation_id(namespace: str, target_id: str) -> str:
    """The id of the annotation of ``target_id`` in ``namespace`` (always the same)."""
    return str(uuid.uuid5(_ANNOTATION_NS, f"{namespace}/{target_id}"))


def _namespace(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or "/" in value or len(value) > 64:
        raise ValueError(f"an annotation's namespace must be 1-64 characters without '/', "
                         f"not {value!r}")


def _target(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or len(value) > 255:
        raise ValueError(f"an annotation's target must be 1-255 characters, not {value!r}")


@attrs.define
class Annotation:
    """String values a frontend keeps about something, for attributes the model has
    no field for (the oVirt API's descriptions and comments, a VM's CPU topology, its
    tags, users' SSH keys).

    Kept in the state store like any object (kind ``annotation``), so it lives
    wherever the state lives and ``virtplane state copy`` carries it. One record per
    (``namespace``, ``target_id``): ``namespace`` names the frontend and what it
    keeps (``ovirt``, ``ovirt.tag`` ...), ``target_id`` what is annotated, usually a
    stored object's id, or something only the frontend knows (a user of its own user
    file, a tag). ``values`` are plain string key/values whose meaning is the
    frontend's. The store names it ``NAMESPACE/TARGET`` and its id is derived from
    both (:func:`annotation_id`), so two writers creating the same annotation collide
    instead of making two; write through :meth:`~virtplane.state.StateStore.modify`.

    The core never reads annotations and does not remove them with their object: a
    frontend drops them when it removes the object, and ignores (and may clean up)
    those of objects that no longer exist; ids are UUIDs, so they never show up on
    another object.
    """

    namespace: str = attrs.field(validator=_namespace)
    target_id: str = attrs.field(validator=_target)
    values: dict[str, str] = attrs.field(factory=dict)
    id: str = attrs.field()
    revision: int = attrs.field(default=0, eq=False, repr=False, kw_only=True)

    @id.default
    def _derived_id(self) -> str:
        return annotation_id(self.namespace, self.target_id)

    @property
    def name(self) -> str:
        """The store's name for it: ``NAMESPACE/TARGET``."""
        return f"{self.namespace}/{self.target_id}"
