"""Typed contracts for named drivers (resolved with stevedore).

A driver is a class registered under one of the groups
``virtplane.architectures``, ``virtplane.storage`` or ``virtplane.hypervisors``.
It carries ``VIRTPLANE_PLUGIN_API`` (the plugin-API range it supports) and
optionally ``VIRTPLANE_SETTINGS`` (an attrs class for its ``[plugin.<name>]``
config table); the core instantiates it with the validated settings object
(or None). These Protocols are what the core calls; ``mypy`` checks drivers
against them.

The parts, one module each: ``_contracts`` (the architecture, storage and
hypervisor contracts, with the 2.0 and 1.x ``customize_domain``/``adapt_domain``/
``render`` members on their own), ``_optional`` (the optional members, declared)
``_implements`` (:func:`implements`, a cheap ``isinstance`` for these
protocols) and ``_domain`` (:func:`apply_architecture`, :func:`apply_hypervisor`: a
driver's part of the domain XML through whichever plugin API it implements); the 2.0 names of the hypervisor contracts (:data:`HypervisorConnection`,
:class:`HypervisorFactory`) and what every contract declares (:data:`OPTIONAL`,
:func:`undeclared_members`) are here. Import every name from ``virtplane.drivers``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from virtplane.drivers._contracts import (
    AdaptsDomain,
    ArchitectureDriver,
    CustomizesDomain,
    HypervisorDriver,
    LegacyArchitectureRender,
    LegacyHypervisorRender,
    StorageDriver,
)
from virtplane.drivers._domain import apply_architecture, apply_hypervisor
from virtplane.drivers._implements import implements
from virtplane.drivers._optional import (
    DeclaresLiveSnapshots,
    DeclaresMemoryGranularity,
    DeclaresVcpuLimit,
    NativeConfig,
    SupportsAttach,
    SupportsCompatVersions,
    SupportsCopy,
    SupportsCpuModels,
    SupportsDescribe,
    SupportsDestinationXml,
    SupportsDisconnect,
    SupportsEvents,
    SupportsHealth,
    SupportsHostSetup,
    SupportsImageMetadata,
    SupportsImport,
    SupportsIso,
    SupportsMemorySnapshots,
    SupportsMetadataLock,
    SupportsMigration,
    SupportsResize,
    SupportsUriPolicy,
    SupportsVcpuHotplug,
    SupportsVerify,
    live_snapshots,
    memory_granularity_mib,
)

# in the order the names were defined when this was one module (the reference lists them so)
__all__ = [
    "ArchitectureDriver", "CustomizesDomain", "AdaptsDomain", "LegacyArchitectureRender",
    "LegacyHypervisorRender", "StorageDriver", "HypervisorDriver", "HypervisorConnection",
    "HypervisorFactory",
    "SupportsDisconnect", "SupportsAttach", "SupportsImageMetadata", "SupportsMetadataLock",
    "SupportsVerify", "SupportsHealth", "SupportsCopy", "SupportsResize", "SupportsImport",
    "SupportsDescribe", "SupportsIso", "NativeConfig", "SupportsHostSetup", "SupportsEvents",
    "SupportsCpuModels", "SupportsMemorySnapshots", "SupportsMigration", "SupportsVcpuHotplug",
    "SupportsUriPolicy", "DeclaresLiveSnapshots", "DeclaresVcpuLimit", "SupportsCompatVersions",
    "DeclaresMemoryGranularity", "SupportsDestinationXml", "live_snapshots",
    "memory_granularity_mib",
    "OPTIONAL", "undeclared_members", "implements", "apply_architecture", "apply_hypervisor",
]


#: The 2.0 name of the host connection contract (1.x called it ``HypervisorDriver``,
#: although the entry-point object is the factory :class:`HypervisorFactory`).
HypervisorConnection = HypervisorDriver


@runtime_checkable
class HypervisorFactory(Protocol):
    """The object a ``virtplane.hypervisors`` entry point names: it opens host connections."""

    def connect(self, uri: str) -> HypervisorConnection:
        """Open a connection to the host at ``uri`` (raise HostUnreachable if it does not
        answer)."""


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

