"""Typed host capabilities and architecture features (plugin API 2.0).

In plugin API 1.x a hypervisor reported its host as a free dict and the core
read magic keys from it; a driver that spelt memory ``memory_bytes`` instead of
``memory_mib`` (OVM3) silently turned the memory admission check off. 2.0
drivers return :class:`HostCapabilities`; a 1.x dict goes through
:meth:`HostCapabilities.from_legacy`, which knows both spellings.

The host record keeps the capabilities as a JSON object (VDSM's ``get_caps``
payload, which hooks may extend); :meth:`HostCapabilities.of` reads the typed
view back from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

_MIB = 1024 * 1024


@attrs.define
class HostCapabilities:
    """What a host offers, as the core reads it.

    :ivar arch: the host CPU architecture (``x86_64``, ``ppc64le`` ...).
    :ivar guest_arches: guest architectures the host can run.
    :ivar memory_mib: physical memory; 0 when the driver cannot tell (no admission check).
    :ivar any_guest_arch: the host runs guests of any architecture (libvirt's test
        driver runs a mock guest whatever the cluster asks for).
    :ivar usable_cpu_models: CPU models the host can give guests, when known.
    :ivar extra: everything else the driver or hooks report (VDSM's keys among them).
    """

    arch: str = ""
    guest_arches: list[str] = attrs.field(factory=list)
    memory_mib: int = 0
    cpu_model: str | None = None
    cpu_vendor: str | None = None
    cpus: int = 0
    any_guest_arch: bool = False
    usable_cpu_models: list[str] = attrs.field(factory=list)
    extra: dict[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_legacy(cls, data: Mapping[str, Any]) -> HostCapabilities:
        """The typed view of a 1.x capabilities dict (or a stored ``get_caps`` payload)."""
        memory = data.get("memory_mib")
        if not memory and data.get("memory_bytes"):
            memory = int(data["memory_bytes"]) // _MIB
        cpu = data.get("cpu") if isinstance(data.get("cpu"), Mapping) else {}
        known = {"arch", "guest_arches", "memory_mib", "memory_bytes", "cpu_model",
                 "cpu_vendor", "cpus", "accepts_any_arch", "any_guest_arch",
                 "usable_cpu_models"}
        return cls(
            arch=str(data.get("arch") or ""),
            guest_arches=[str(a) for a in data.get("guest_arches") or []],
            memory_mib=int(memory or 0),
            cpu_model=data.get("cpu_model") or (cpu or {}).get("model"),
            cpu_vendor=data.get("cpu_vendor"),
            cpus=int(data.get("cpus") or 0),
            any_guest_arch=bool(data.get("any_guest_arch") or data.get("accepts_any_arch")),
            usable_cpu_models=[str(m) for m in data.get("usable_cpu_models") or []],
            extra={k: v for k, v in data.items() if k not in known},
        )

    @staticmethod
    def memory_of(data: HostCapabilities | Mapping[str, Any]) -> int:
        """The host's memory in MiB from typed or 1.x capabilities, without building the
        whole typed view (asked on every VM start)."""
        if isinstance(data, HostCapabilities):
            return data.memory_mib
        memory = data.get("memory_mib")
        if not memory and data.get("memory_bytes"):
            return int(data["memory_bytes"]) // _MIB
        return int(memory or 0)

    @classmethod
    def of(cls, data: HostCapabilities | Mapping[str, Any]) -> HostCapabilities:
        """Typed capabilities from what a driver returned or a host record holds."""
        if isinstance(data, HostCapabilities):
            return data
        return cls.from_legacy(data)

    def to_payload(self) -> dict[str, Any]:
        """The JSON object stored on the host and handed to ``get_caps`` hooks.

        The typed fields keep their names; ``memory_mib`` and ``guest_arches`` are the
        keys 1.x readers used, and ``extra`` is merged at the top level.
        """
        out: dict[str, Any] = dict(self.extra)
        out.update({
            "arch": self.arch, "guest_arches": list(self.guest_arches),
            "memory_mib": self.memory_mib, "cpu_model": self.cpu_model,
            "cpu_vendor": self.cpu_vendor, "cpus": self.cpus,
            "any_guest_arch": self.any_guest_arch,
        })
        if self.usable_cpu_models:
            out["usable_cpu_models"] = list(self.usable_cpu_models)
        return out


#: Feature flags the core itself reads; architectures may report more.
KNOWN_FEATURES = (
    "live_migration", "memory_snapshot", "hibernate", "cpu_hotplug", "cpu_hotunplug",
    "memory_hotplug", "memory_hotunplug", "nic_hotplug", "disk_hotplug", "tpm",
)


@attrs.define
class ArchFeatures:
    """What an architecture supports at a compatibility version (typed view).

    Architecture drivers and ``extend_architecture_features`` hooks work on a
    ``dict[str, bool]``; the core reads it through this class, so a feature the
    core asks about and nobody reported reads as False, never as a KeyError.
    """

    flags: dict[str, bool] = attrs.field(factory=dict)

    def supports(self, feature: str) -> bool:
        """Whether ``feature`` is on."""
        return bool(self.flags.get(feature, False))

    @property
    def live_migration(self) -> bool:
        return self.supports("live_migration")

    @property
    def memory_snapshot(self) -> bool:
        return self.supports("memory_snapshot")

    @property
    def cpu_hotplug(self) -> bool:
        return self.supports("cpu_hotplug")

    @property
    def cpu_hotunplug(self) -> bool:
        return self.supports("cpu_hotunplug")

    @property
    def memory_hotplug(self) -> bool:
        return self.supports("memory_hotplug")

    @property
    def memory_hotunplug(self) -> bool:
        return self.supports("memory_hotunplug")
