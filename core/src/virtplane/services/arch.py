"""Architectures and OS info: what each loaded architecture answers, and VM spec checks."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Collection
from typing import Any, cast

from virtplane import drivers, model, osinfo, osrules
from virtplane.capabilities import ArchFeatures
from virtplane.errors import InvalidInput
from virtplane.names import check_property_name
from virtplane.services._guard import require_hooks
from virtplane.services.context import Context

#: compatibility versions an architecture knows when its driver does not list its own
#: (an optional ``compat_versions()``): the oVirt cluster levels virtplane's rules cover
KNOWN_COMPAT = ("4.2", "4.3", "4.4", "4.5", "4.6", "4.7", "4.8")

#: the vCPU bound of an architecture whose driver declares no ``max_vcpus`` (oVirt's
#: MaxNumOfVmCpus for x86_64; far below what used to be accepted: any number at all)
DEFAULT_MAX_VCPUS = 710


#: VmSpec's whole-number fields: (name, unit, may it be None). Checked before any
#: driver or plugin reads the spec, whatever built it (the Python API takes any object:
#: a float or a string used to reach the domain XML)
_WHOLE_FIELDS = (("memory_mib", "MiB", False), ("vcpus", "vCPUs", False),
                 ("max_memory_mib", "MiB", True), ("max_vcpus", "vCPUs", True),
                 ("ha_priority", "", False))


def type_problems(spec: model.VmSpec) -> builtins.list[str]:
    """VmSpec fields that must be whole numbers (``int``, never ``bool``) and are not."""
    problems = []
    for field, unit, optional in _WHOLE_FIELDS:
        value = getattr(spec, field)
        if optional and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            what = f"a whole number of {unit}" if unit else "a whole number"
            problems.append(f"{field} must be {what}{' or None' if optional else ''}, "
                            f"not {value!r}")
    return problems


def compat_versions(driver: Any) -> builtins.list[str]:
    """The compatibility versions an architecture driver knows (see :data:`KNOWN_COMPAT`)."""
    if isinstance(driver, drivers.SupportsCompatVersions):
        return [str(v) for v in driver.compat_versions()]
    return list(KNOWN_COMPAT)


def check_compat(arch: str, driver: Any, version: str) -> None:
    """Refuse a compatibility version ``arch`` does not know (drivers parse it as numbers:
    ``abc`` used to end in a traceback, ``9.9`` in features nobody defined)."""
    known = compat_versions(driver)
    if version not in known:
        raise InvalidInput(f"compatibility version {version!r} is not one {arch} knows; "
                           f"known: {', '.join(known)}")


class Architectures:
    """The loaded architecture drivers, the OS repository and spec validation."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._osinfo: osinfo.OsRepository | None = None
        self._lock = threading.Lock()

    def driver(self, name: str) -> drivers.ArchitectureDriver:
        return self.ctx.drivers.architecture(name)

    @property
    def osinfo(self) -> osinfo.OsRepository:
        """The OS repository: every loaded architecture's entries, then the
        ``osinfo.conf.d`` override folders, then ``VIRTPLANE_OSINFO`` files."""
        with self._lock:
            if self._osinfo is None:
                files = []
                for name in self.ctx.loaded("architecture"):
                    files.extend(self.driver(name).osinfo_files())
                self._osinfo = osinfo.load(files, osinfo.env_files())
            return self._osinfo

    def list(self, compat_version: str = model.DEFAULT_COMPAT,
             names: Collection[str] | None = None) -> builtins.list[dict[str, Any]]:
        """Every loaded architecture driver (those in ``names`` only, when given) with
        what it answers; the compatibility version is checked against each listed one."""
        out = []
        for name in self.ctx.loaded("architecture"):
            if names is not None and name not in names:
                continue
            drv = self.driver(name)
            rec = self.ctx.plugins.records[name]
            out.append({
                "name": name, "distribution": rec.dist, "version": rec.version,
                "default_os": drv.default_os, "cpu_models": drv.cpu_models(),
                "machine_types": drv.machine_types(),
                "memory_granularity_mib": drivers.memory_granularity_mib(drv),
                "compat_version": compat_version,
                "features": self.features(name, compat_version),
                "oses": len(self.osinfo.list_for(name)),
            })
        return out

    def features(self, arch: str, compat_version: str) -> dict[str, bool]:
        """What an architecture supports at a compatibility version: the driver's answer,
        then the ``extend_architecture_features`` hook (which may switch features off)."""
        check_compat(arch, self.driver(arch), compat_version)
        found = dict(self.driver(arch).features(compat_version))
        self.ctx.hooks.fire("extend_architecture_features", arch=arch,
                            compat_version=compat_version, features=found)
        return found

    def features_of(self, cluster: model.Cluster) -> ArchFeatures:
        """The typed features of a cluster's architecture at its compatibility version."""
        return ArchFeatures(self.features(cluster.architecture, cluster.compat_version))

    def os_list(self, arch: str | None = None) -> builtins.list[dict[str, Any]]:
        """OSes (of one architecture), as an OS chooser shows them."""
        repo = self.osinfo
        return [{"name": n, "id": repo.get_int(n, "id"), "title": repo.get(n, "name"),
                 "arch": repo.arch_of(n), "family": repo.get(n, "family"),
                 "deprecated": repo.get_bool(n, "deprecated")} for n in repo.list_for(arch)]

    def os_info(self, name: str, version: str | None = None,
                chipset: str | None = None) -> dict[str, Any]:
        """Effective values of an OS (at a compatibility version) and where each came from."""
        repo = self.osinfo
        if version is not None and repo.arch_of(name) in self.ctx.loaded("architecture"):
            check_compat(repo.arch_of(name), self.driver(repo.arch_of(name)), version)
        values = {k: {"value": v.text, "source": v.source}
                  for k, v in repo.effective(name, version).items()}
        ver = version or model.DEFAULT_COMPAT
        return {"name": name, "version": version, "chain": [e.name for e in repo.chain(name)],
                "values": values,
                "disk_interfaces": osrules.allowed_disk_interfaces(repo, name, ver, chipset),
                "nic_models": osrules.allowed_nic_models(repo, name, ver)}

    def os_name(self, spec: model.VmSpec, cluster: model.Cluster) -> str:
        """The spec's OS, or its architecture's default."""
        if spec.os:
            return spec.os
        return str(self.driver(cluster.architecture).default_os)

    @staticmethod
    def property_problems(spec: model.VmSpec) -> builtins.list[str]:
        """Custom property names (the VM's, each disk's and NIC's) that must not become
        hook script environment variables (:func:`virtplane.names.check_property_name`).

        Checked on every validation, so a device hot-plugged with a property named
        ``PATH`` is refused like a VM created with one; the hook runner checks again.
        """
        owners = [("VM", spec.custom_properties)]
        owners += [(f"disk {d.name!r}", d.custom_properties) for d in spec.disks]
        owners += [(f"NIC {n.name!r}", n.custom_properties) for n in spec.nics]
        problems = []
        for owner, props in owners:
            for name in props:
                try:
                    check_property_name(name)
                except InvalidInput as exc:
                    problems.append(f"{owner}: {exc}")
        return problems

    def validate(self, spec: model.VmSpec, cluster: model.Cluster) -> None:
        """Check a spec: property names and whole-number fields (before any plugin sees
        it), architecture driver, vCPU limits, ``ha_priority``, OS info rules (memory and
        maximum memory among them), then every validate hook."""
        # a broken hook plugin would skip its validation (declared property patterns)
        require_hooks(self.ctx.plugins, f"accept VM {spec.name!r}")
        bad_names = self.property_problems(spec) + type_problems(spec)
        if bad_names:
            # before any plugin sees the spec: a validate hook must not meet them either
            raise InvalidInput(f"VM {spec.name!r} is not valid: " + "; ".join(bad_names))
        arch = self.driver(cluster.architecture)
        problems = [(cluster.architecture, m) for m in arch.validate(spec, cluster)]
        limit = DEFAULT_MAX_VCPUS
        if drivers.implements(arch, drivers.DeclaresVcpuLimit):
            limit = int(cast("drivers.DeclaresVcpuLimit", arch).max_vcpus)
        for what, count in (("vcpus", spec.vcpus), ("max_vcpus", spec.max_vcpus)):
            if count is not None and not 1 <= count <= limit:
                problems.append((cluster.architecture, f"{what} must be between 1 and {limit} "
                                 f"on {cluster.architecture}; got {count}"))
        if not 0 <= spec.ha_priority <= 100:
            problems.append(("core", f"ha_priority must be from 0 to 100 (higher restarts "
                                     f"first); got {spec.ha_priority}"))
        problems += [("osinfo", m) for m in osrules.check(
            spec, cluster, self.osinfo, self.os_name(spec, cluster), arch.chipset(spec),
            spec.cpu_model or cluster.cpu_model)]
        problems += self.ctx.hooks.collect("validate_vm_spec", spec=spec, cluster=cluster)
        if problems:
            raise InvalidInput(f"VM {spec.name!r} is not valid: "
                               + "; ".join(f"{m} [{p}]" for p, m in problems))
