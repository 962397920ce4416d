"""Typed contracts for named drivers (resolved with stevedore).

A driver is a class registered under one of the groups
``virtplane.architectures``, ``virtplane.storage`` or ``virtplane.hypervisors``.
It carries ``VIRTPLANE_PLUGIN_API`` (the plugin-API range it supports) and
optionally ``VIRTPLANE_SETTINGS`` (an attrs class for its ``[plugin.<name>]``
config table); the core instantiates it with the validated settings object
(or None). These Protocols are what the core calls; ``mypy`` checks drivers
against them.
"""

from __future__ import annotations

import abc
import sys
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from virtplane.domxml.domain import Domain
    from virtplane.model import Cluster, Image, StorageDomain, VmSpec, Volume


@runtime_checkable
class ArchitectureDriver(Protocol):
    """A CPU architecture strategy (``x86_64``, ``ppc64`` ...).

    Attributes: ``name``, ``default_os`` (the osinfo OS a VmSpec without one
    gets) and ``memory_granularity_mib`` (a driver written for plugin API 1.x
    without it counts as 1, see :class:`DeclaresMemoryGranularity`).

    Optional members the core looks for: ``max_vcpus`` (:class:`DeclaresVcpuLimit`)
    and ``compat_versions()`` (:class:`SupportsCompatVersions`).
    """

    name: str
    default_os: str
    memory_granularity_mib: int

    def chipset(self, spec: VmSpec) -> str | None:
        """The osinfo chipset the spec implies (``i440fx``, ``q35``) or None."""

    def osinfo_files(self) -> list[Path]:
        """The architecture's OS entries (osinfo ``.properties`` files it ships)."""

    def disk_hotplug_refusal(self, interface: str) -> str | None:
        """Why a disk on ``interface`` cannot be hot-plugged, or None."""

    def cpu_models(self) -> list[str]:
        """CPU model names a cluster of this architecture may use."""

    def machine_types(self) -> list[str]:
        """Allowed machine types, the default first."""

    def features(self, compat_version: str) -> dict[str, bool]:
        """Feature name -> supported, at a cluster compatibility version."""

    def validate(self, spec: VmSpec, cluster: Cluster) -> list[str]:
        """Violations of this architecture's rules (each names the rule and what is allowed)."""

    def customize_domain(self, spec: VmSpec, cluster: Cluster, domain: Domain) -> None:
        """Fill in the architecture's parts of the typed domain: ``os`` arch and machine,
        ``cpu`` model, ``features``, controllers and device addresses. The generic part
        (:func:`virtplane.domxml.build_domain`) is there already; edit it in place.
        (Plugin API 1.x had ``render(spec, cluster, domain_dict)``, see
        :class:`LegacyArchitectureRender`.)"""


@runtime_checkable
class CustomizesDomain(Protocol):
    """Plugin API 2.0 member of an :class:`ArchitectureDriver`."""

    def customize_domain(self, spec: VmSpec, cluster: Cluster, domain: Domain) -> None:
        """Fill in the architecture's parts of the typed domain: ``os`` arch and machine,
        ``cpu`` model, ``features``, controllers and device addresses. The generic part
        (:func:`virtplane.domxml.build_domain`) is there already; edit it in place."""


@runtime_checkable
class AdaptsDomain(Protocol):
    """Plugin API 2.0 member of a hypervisor connection (:class:`HypervisorDriver`)."""

    def adapt_domain(self, domain: Domain, arch: str, virt_type: str | None) -> None:
        """Set the hypervisor's parts of the typed domain: ``domain.type`` (the generic
        part leaves it unset), emulator, what this host cannot take (e.g. a CPU model
        under TCG), host values such as ``<sysinfo>`` (:func:`virtplane.domxml.fill_sysinfo`).
        ``virt_type`` is the VM's ``virt_type`` custom property; refuse values it does not
        know with an error naming the allowed ones."""


@runtime_checkable
class LegacyArchitectureRender(Protocol):
    """Plugin API 1.x, deprecated: what architecture drivers implemented before
    ``customize_domain``; still called through an adapter, with a warning."""

    def render(self, spec: VmSpec, cluster: Cluster, domain: dict[str, Any]) -> None:
        """Fill in the architecture's parts of the domain (xmltodict form)."""


@runtime_checkable
class LegacyHypervisorRender(Protocol):
    """Plugin API 1.x, deprecated: what hypervisor connections implemented before
    ``adapt_domain``; still called through an adapter, with a warning."""

    def render(self, domain: dict[str, Any], arch: str, virt_type: str | None = None) -> None:
        """Set the hypervisor's parts of the domain (type, emulator), xmltodict form."""


@runtime_checkable
class StorageDriver(Protocol):
    """A storage domain type (``localfs``, ``nfs``, ``glusterfs``, ``libsm`` ...).

    Optional members the core looks for: ``disconnect``, ``find_domains`` and
    ``read_images`` (attach), ``write_image_metadata`` (metadata on storage),
    ``metadata_lock`` with ``read_image`` (several engines on one domain),
    ``verify``, ``health(domain) -> reason | None`` (Inactive with the reason),
    ``copy_volume`` (templates, clones), ``resize_volume``, ``import_volume`` with
    ``image_file_size(path)`` (disk import),
    ``describe(domain) -> dict`` (``storage show``), ``import_iso``/
    ``list_isos``/``iso_path`` (iso domains). A driver may set
    ``volume.format`` and ``volume.created_by`` while creating a volume (e.g.
    an array clone instead of a qcow2 layer); the core records what it set.
    """

    def connect(self, domain: StorageDomain) -> None:
        """Make the domain's storage reachable from this host (mount, log in ...)."""

    def create_domain(self, domain: StorageDomain) -> None:
        """Initialise a new domain on its storage (metadata, layout)."""

    def remove_domain(self, domain: StorageDomain) -> None:
        """Remove an empty domain from its storage."""

    def create_volume(self, domain: StorageDomain, image: Image, volume: Volume) -> None:
        """Create a volume (a new image's base, or a snapshot layer)."""

    def delete_image(self, domain: StorageDomain, image: Image) -> None:
        """Delete every volume of an image."""

    def delete_volume(self, domain: StorageDomain, image: Image, volume: Volume) -> None:
        """Delete one volume (a layer nothing is based on any more)."""

    def merge_volume(
        self, domain: StorageDomain, image: Image, child: Volume, parent: Volume
    ) -> None:
        """Commit ``child``'s data into its ``parent`` (offline) and rebase the layer above
        ``child``, if any, onto ``parent``. The caller removes ``child`` afterwards."""

    def volume_source(
        self, domain: StorageDomain, image: Image, volume: Volume
    ) -> dict[str, Any]:
        """How the volume reaches the hypervisor, as libvirt ``<disk>`` fields.

        ``{"type": "file", "source": {"@file": path}}``, ``{"type": "block",
        "source": {"@dev": path}}`` or ``{"type": "network", "source":
        {"@protocol": "gluster", "@name": "vol/path", "host": [...]}}``.
        """


@runtime_checkable
class HypervisorDriver(Protocol):
    """A hypervisor backend (``kvm``, ``ovm3`` ...); one instance per host connection.

    Optional members the core looks for:

    * ``config_format`` (e.g. ``"vm.cfg"``) with ``native_config(xml) -> str``,
      ``parse_config(text) -> dict`` and ``render_config(dict) -> str``: a
      hypervisor that does not take libvirt XML. The core still builds the
      domain (architecture and storage drivers fill it in), converts it with
      ``native_config``, and hooks get a
      :class:`virtplane.payloads.ConfigPayload`; ``start`` and ``live_xml``
      then carry that text.
    * ``live_snapshots = False`` (:class:`DeclaresLiveSnapshots`): snapshots of
      running VMs are refused early.
    * ``setup(**options) -> list[str]``: ``Manager.setup_host`` (host preparation).
    * ``watch(callback)``, ``usable_cpu_models(arch)``, ``saved_xml(path)``,
      ``migrate(name, dest_uri, **options)``: events, CPU mapping, memory
      snapshots and migration, when the hypervisor has them.
    """

    def capabilities(self) -> dict[str, Any]:
        """Host capabilities: arch, CPU, memory, NUMA, guest types, versions."""

    def host_stats(self) -> dict[str, Any]:
        """Host CPU, memory and load."""

    def adapt_domain(self, domain: Domain, arch: str, virt_type: str | None) -> None:
        """Set the hypervisor's parts of the typed domain (type, emulator, host values);
        see :class:`AdaptsDomain`. (Plugin API 1.x had ``render(domain_dict, arch,
        virt_type)``, see :class:`LegacyHypervisorRender`.)"""

    def start(self, name: str, xml: str, flags: int = 0) -> str:
        """Create and start a domain from ``xml``; return the live XML.

        On failure nothing may be left defined on the host.
        """

    def shutdown(self, name: str, timeout: float) -> str:
        """Ask the guest to power off; destroy it after ``timeout`` seconds.

        Return ``"shutdown"`` or ``"destroyed"``.
        """

    def destroy(self, name: str) -> None:
        """Power the domain off at once."""

    def pause(self, name: str) -> None: ...

    def resume(self, name: str) -> None: ...

    def reboot(self, name: str) -> None: ...

    def save(self, name: str, path: str) -> None:
        """Save the domain's memory to ``path`` and stop it (hibernate)."""

    def restore(self, name: str, path: str, xml: str | None) -> str:
        """Restore a saved domain; return the live XML."""

    def state(self, name: str) -> tuple[str, str]:
        """The domain's (VDSM status name, reason); ``("Down", ...)`` when absent."""

    def all_vm_stats(self) -> list[dict[str, Any]]:
        """Stats for every domain on the host, in one bulk call."""

    def attach_device(self, name: str, xml: str) -> None: ...

    def detach_device(self, name: str, xml: str) -> None: ...

    def update_device(self, name: str, xml: str) -> None: ...

    def live_xml(self, name: str) -> str: ...

    def snapshot_disks(
        self, name: str, disks: list[tuple[str, dict[str, Any]]], memory_path: str | None
    ) -> None:
        """Switch a running domain's disks to prepared overlays (``(target, volume_source)``),
        atomically, saving its memory to ``memory_path`` when given (the guest keeps running)."""

    def ping(self) -> None:
        """Raise HostUnreachable unless the host answers (reconnecting if needed)."""

    def close(self) -> None: ...


#: The 2.0 name of the host connection contract (1.x called it ``HypervisorDriver``,
#: although the entry-point object is the factory :class:`HypervisorFactory`).
HypervisorConnection = HypervisorDriver


@runtime_checkable
class HypervisorFactory(Protocol):
    """The object a ``virtplane.hypervisors`` entry point names: it opens host connections."""

    def connect(self, uri: str) -> HypervisorConnection:
        """Open a connection to the host at ``uri`` (raise HostUnreachable if it does not
        answer)."""


# --------------------------------------------------------------------------
# Optional members, declared (plugin API 2.0).
#
# The core asks ``isinstance(driver, SupportsX)`` instead of probing with
# ``hasattr``, so mypy checks the calls; :func:`undeclared_members` lets the
# plugin author kit report a public member that belongs to no contract (a
# misspelt optional member would otherwise be a silently missing feature).
# --------------------------------------------------------------------------


@runtime_checkable
class SupportsDisconnect(Protocol):
    def disconnect(self, domain: StorageDomain) -> None:
        """Undo :meth:`StorageDriver.connect` (unmount, log out)."""


@runtime_checkable
class SupportsAttach(Protocol):
    def find_domains(self, probe: StorageDomain) -> list[dict[str, Any]]:
        """Domains found on the storage ``probe.connection`` names (name, uuid, class)."""

    def read_images(self, domain: StorageDomain) -> list[dict[str, Any]]:
        """The images recorded in a domain's metadata (unstructured :class:`Image`)."""


@runtime_checkable
class SupportsImageMetadata(Protocol):
    def write_image_metadata(self, domain: StorageDomain, image: Image) -> None:
        """Write an image's chain to the domain's own metadata."""


@runtime_checkable
class SupportsMetadataLock(Protocol):
    """Metadata that several engines may write (a domain on shared storage): the core
    holds the lock around every change of an image's chain and first compares the
    chain on the storage with its own (docs/security.md)."""

    def metadata_lock(self, domain: StorageDomain) -> AbstractContextManager[None]:
        """Hold the domain's metadata lock (bounded wait; re-entrant in a thread)."""

    def read_image(self, domain: StorageDomain, image_id: str) -> dict[str, Any] | None:
        """An image's metadata as the storage has it now (unstructured :class:`Image`),
        or None when it has none."""


@runtime_checkable
class SupportsVerify(Protocol):
    def verify(self, domain: StorageDomain, images: list[Image]) -> list[str]:
        """Mismatches between storage, metadata and ``images``."""


@runtime_checkable
class SupportsHealth(Protocol):
    def health(self, domain: StorageDomain) -> str | None:
        """None when the domain answers, else the reason (it goes Inactive)."""


@runtime_checkable
class SupportsCopy(Protocol):
    def copy_volume(self, domain: StorageDomain, src_image: Image, src: Volume,
                    image: Image, volume: Volume) -> None:
        """Make ``volume`` a standalone copy of ``src`` (its chain collapsed)."""


@runtime_checkable
class SupportsResize(Protocol):
    def resize_volume(self, domain: StorageDomain, image: Image, volume: Volume,
                      size_bytes: int) -> None:
        """Grow a volume."""


@runtime_checkable
class SupportsImport(Protocol):
    def image_file_size(self, path: str) -> int:
        """The virtual size of an image file about to be imported."""

    def import_volume(self, domain: StorageDomain, image: Image, volume: Volume,
                      path: str) -> None:
        """Fill a new volume from an image file."""


@runtime_checkable
class SupportsDescribe(Protocol):
    def describe(self, domain: StorageDomain) -> dict[str, Any]:
        """Driver facts for ``storage show`` (array capabilities ...)."""


@runtime_checkable
class SupportsIso(Protocol):
    def import_iso(self, domain: StorageDomain, src: Path, name: str) -> Path:
        """Copy an ISO onto an iso-class domain; returns where it went."""

    def list_isos(self, domain: StorageDomain) -> list[str]: ...

    def iso_path(self, domain: StorageDomain, name: str) -> Path:
        """The host path of an ISO on the domain."""


@runtime_checkable
class NativeConfig(Protocol):
    """A hypervisor that does not take libvirt XML (OVM3's vm.cfg)."""

    config_format: str

    def native_config(self, xml: str) -> str: ...

    def parse_config(self, text: str) -> dict[str, Any]: ...

    def render_config(self, data: dict[str, Any]) -> str: ...


@runtime_checkable
class SupportsHostSetup(Protocol):
    def setup(self, **options: Any) -> list[str]:
        """Prepare the host (OVM3: roles, repository, pool ...); one line per step."""


@runtime_checkable
class SupportsEvents(Protocol):
    def watch(self, on_stopped: Any) -> None:
        """Call ``on_stopped(vm_name, reason)`` when a VM stops on its own."""


@runtime_checkable
class SupportsCpuModels(Protocol):
    def usable_cpu_models(self, arch: str) -> list[str]:
        """CPU models this host can give guests of ``arch``."""


@runtime_checkable
class SupportsMemorySnapshots(Protocol):
    def saved_xml(self, path: str) -> str:
        """The domain XML stored in a saved memory image."""


@runtime_checkable
class SupportsMigration(Protocol):
    def migrate(self, name: str, dest_uri: str, **options: Any) -> None:
        """Live-migrate a VM to the host at ``dest_uri``."""


@runtime_checkable
class SupportsVcpuHotplug(Protocol):
    def set_vcpus(self, name: str, count: int) -> None:
        """Set a running VM's online vCPUs (up to its maximum)."""


@runtime_checkable
class DeclaresLiveSnapshots(Protocol):
    """A hypervisor connection that says whether it can snapshot a running VM.

    ``live_snapshots = False`` (OVM3): a snapshot of a running VM is refused before
    anything is created. A connection without the member can (see :func:`live_snapshots`).
    """

    live_snapshots: bool


@runtime_checkable
class DeclaresVcpuLimit(Protocol):
    """An architecture's bound on ``vcpus`` and ``max_vcpus`` (x86_64: 710, ppc64: 384);
    without it the core applies ``virtplane.services.arch.DEFAULT_MAX_VCPUS``."""

    max_vcpus: int


@runtime_checkable
class SupportsCompatVersions(Protocol):
    def compat_versions(self) -> list[str]:
        """The cluster compatibility versions the architecture knows; without it the
        core's ``virtplane.services.arch.KNOWN_COMPAT``."""


@runtime_checkable
class DeclaresMemoryGranularity(Protocol):
    """``memory_granularity_mib`` of :class:`ArchitectureDriver` on its own: the core
    asks for it with ``isinstance`` because a driver written for plugin API 1.x may
    lack it (it then counts as 1, see :func:`memory_granularity_mib`)."""

    memory_granularity_mib: int


@runtime_checkable
class SupportsDestinationXml(Protocol):
    """A hypervisor connection that can start the destination of a migration from a
    domain XML of the core's (libvirt's ``VIR_MIGRATE_PARAM_DEST_XML``): the core edits
    the XML :meth:`migratable_xml` gives (libvirt checks the destination's XML against
    that form, not against the live XML) and passes it as ``migrate(..., dest_xml=...)``.
    """

    def migratable_xml(self, name: str) -> str:
        """The running domain's XML as libvirt migrates it (``VIR_DOMAIN_XML_MIGRATABLE``)."""

    def migrate(self, name: str, dest_uri: str, *, dest_xml: str | None = None,
                **options: Any) -> None:
        """Live-migrate; with ``dest_xml`` the destination runs that domain XML."""


def live_snapshots(conn: object) -> bool:
    """Whether a hypervisor connection can snapshot a running VM (True unless it
    declares ``live_snapshots = False``, :class:`DeclaresLiveSnapshots`)."""
    return conn.live_snapshots if isinstance(conn, DeclaresLiveSnapshots) else True


def memory_granularity_mib(driver: object) -> int:
    """An architecture's memory granularity in MiB (1 when a 1.x driver has none)."""
    return driver.memory_granularity_mib if isinstance(driver, DeclaresMemoryGranularity) else 1


#: Every optional contract, per driver kind.
OPTIONAL: dict[str, tuple[type, ...]] = {
    "storage": (SupportsDisconnect, SupportsAttach, SupportsImageMetadata,
                SupportsMetadataLock, SupportsVerify, SupportsHealth, SupportsCopy,
                SupportsResize, SupportsImport, SupportsDescribe, SupportsIso),
    "hypervisor": (NativeConfig, SupportsHostSetup, SupportsEvents, SupportsCpuModels,
                   SupportsMemorySnapshots, SupportsMigration, SupportsVcpuHotplug,
                   DeclaresLiveSnapshots, SupportsDestinationXml),
    "architecture": (DeclaresVcpuLimit, SupportsCompatVersions),
}
_REQUIRED: dict[str, tuple[type, ...]] = {
    "storage": (StorageDriver,), "hypervisor": (HypervisorConnection,),
    "architecture": (ArchitectureDriver,),
}
#: Attributes every driver may carry besides its contract members (``render``: the 1.x
#: wrappers first-party drivers keep for one release).
_ALWAYS = {"render", "name", "settings", "VIRTPLANE_PLUGIN_API", "VIRTPLANE_SETTINGS",
           "VIRTPLANE_CONNECTION", "uri"}


def _members(proto: type) -> set[str]:
    return {n for n in vars(proto) if not n.startswith("_")} | set(
        getattr(proto, "__annotations__", {}))


def undeclared_members(driver: object, kind: str) -> list[str]:
    """Public members of ``driver`` that no contract of ``kind`` declares.

    A plugin author kit check: ``import_volumes`` (for ``import_volume``) would
    otherwise simply never be called. Members a driver keeps for itself should
    start with ``_``.
    """
    declared = set(_ALWAYS)
    for proto in (*_REQUIRED[kind], *OPTIONAL[kind]):
        declared |= _members(proto)
    return sorted(n for n in dir(type(driver)) if not n.startswith("_") and n not in declared)


# ------------------------------------------------------------- protocol checks

#: per runtime protocol: its members, each with whether the protocol's is a method
_PROTOCOL_MEMBERS: dict[type, tuple[tuple[str, bool], ...]] = {}
#: (class, protocol) -> (ABC cache token, answer) for objects that lack a member
_LACKING: dict[tuple[type, type], tuple[object, bool]] = {}
_ABSENT = object()


def _protocol_members(proto: type) -> tuple[tuple[str, bool], ...]:
    members = _PROTOCOL_MEMBERS.get(proto)
    if members is None:
        if sys.version_info >= (3, 13):
            names: Any = typing.get_protocol_members(proto)
        else:  # 3.12 keeps them on the class; 3.11 works them out on every isinstance
            names = (proto.__dict__.get("__protocol_attrs__")
                     or typing._get_protocol_attrs(proto))  # type: ignore[attr-defined]
        members = tuple((n, callable(getattr(proto, n, None))) for n in sorted(names))
        _PROTOCOL_MEMBERS[proto] = members
    return members


def implements(obj: object, proto: type) -> bool:
    """``isinstance(obj, proto)`` for a runtime-checkable protocol, at a fraction of
    the cost: Python 3.11 walks the protocol's classes for its members on every check.

    The answer is ``isinstance``'s. An object with every member (a method not None)
    implements the protocol; that is looked at on the object each time, so a class
    that gains a method later is answered right. An object lacking one implements it
    only as a subclass or a registered class (``typing``'s own fallbacks): that answer
    is kept per class, until any class is registered with an ABC.

    :param proto: a :func:`~typing.runtime_checkable` protocol.
    """
    for name, method in _protocol_members(proto):
        value = getattr(obj, name, _ABSENT)
        if value is _ABSENT or (method and value is None):
            key = (type(obj), proto)
            token = abc.get_cache_token()
            known = _LACKING.get(key)
            if known is None or known[0] != token:
                known = (token, isinstance(obj, proto))
                _LACKING[key] = known
            return known[1]
    return True
