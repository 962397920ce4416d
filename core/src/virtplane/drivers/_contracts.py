"""The driver contracts themselves: what an architecture, a storage and a hypervisor
driver must have (:class:`ArchitectureDriver`, :class:`StorageDriver`,
:class:`HypervisorDriver`), the plugin API 2.0 members on their own
(:class:`CustomizesDomain`, :class:`AdaptsDomain`) and the deprecated 1.x ``render``
members (:class:`LegacyArchitectureRender`, :class:`LegacyHypervisorRender`).

Part of :mod:`virtplane.drivers`; import these names from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
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
