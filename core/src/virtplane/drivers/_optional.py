"""The optional members of drivers, each declared as a protocol of its own
(``SupportsX``, ``DeclaresX``), and :func:`live_snapshots` and
:func:`memory_granularity_mib`, which answer for drivers that do not declare theirs.

Part of :mod:`virtplane.drivers`; import these names from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from virtplane.model import Image, StorageDomain, Volume


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
class SupportsUriPolicy(Protocol):
    """A hypervisor driver (the entry point's factory) that says which parts of a host
    URI only a system administrator may give: parameters naming files or sockets of
    the machine that opens the connection, or weakening how the host is
    authenticated. The core asks before it connects (``Hosts.add``), so a malformed
    URI is refused with nothing made; the REST API refuses the parts to anyone but a
    SuperUser on System."""

    def privileged_uri_parts(self, uri: str) -> list[str]:
        """Each privileged part of ``uri`` as text for a message (``keyfile=/k (an ssh
        private key on this machine)``); [] when there are none.

        :raises InvalidInput: a URI this driver never opens (an unknown parameter ...).
        """


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
