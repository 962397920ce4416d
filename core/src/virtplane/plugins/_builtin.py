"""The core's own hook implementations, registered as the built-in plugin ``core``.

Like tox 4's built-in plugins, the core's generic rules go through the same
hooks as any third-party plugin, so they show in ``virtplane plugins list``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from virtplane import hookimpl
from virtplane._version import PLUGIN_API_VERSION, __version__

if TYPE_CHECKING:
    from virtplane.model import Cluster, Host, VmSpec

__all__ = ["VIRTPLANE_PLUGIN_API", "extend_host_capabilities", "validate_vm_spec"]

#: The core ships with itself: it supports exactly the plugin API it offers.
VIRTPLANE_PLUGIN_API = f"=={PLUGIN_API_VERSION}"

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@hookimpl(tryfirst=True)
def validate_vm_spec(spec: VmSpec, cluster: Cluster) -> list[str]:
    """Rules every VM spec must satisfy, whatever the architecture."""
    problems = []
    if not spec.name or not set(spec.name) <= _NAME_CHARS or len(spec.name) > 64:
        problems.append(
            f"VM name {spec.name!r} is not allowed: use 1-64 letters, digits, '-', '_' or '.'"
        )
    if spec.memory_mib < 1:
        problems.append(f"memory_mib must be at least 1 (got {spec.memory_mib})")
    if spec.vcpus < 1:
        problems.append(f"vcpus must be at least 1 (got {spec.vcpus})")
    for label, items in (("disk", spec.disks), ("nic", spec.nics)):
        seen: set[str] = set()
        for item in items:
            if item.name in seen:
                problems.append(f"two {label}s are named {item.name!r}; {label} names must be unique")
            seen.add(item.name)
    if spec.arch is not None and spec.arch != cluster.architecture:
        problems.append(
            f"VM architecture {spec.arch} does not match cluster {cluster.name!r} "
            f"({cluster.architecture})"
        )
    return problems


@hookimpl
def extend_host_capabilities(host: Host, caps: dict[str, Any]) -> None:
    """Report the managing core's version and plugin API with every host."""
    caps["virtplane"] = {"version": __version__, "plugin_api": PLUGIN_API_VERSION}
