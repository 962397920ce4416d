"""Where a VM runs: the default placement used without an engine's cluster policy.

The engine's scheduler (filters, weights, balancing) replaces :class:`FirstUpHost`
through :class:`Scheduler`; what stays in the core is the minimum a start needs:
a host of the VM's cluster that is Up, and enough memory on it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from virtplane import model
from virtplane.capabilities import HostCapabilities
from virtplane.errors import InvalidInput, InvalidState


class Scheduler(Protocol):
    """Chooses the host for a VM among its cluster's hosts."""

    def pick(self, vm: model.Vm, hosts: list[model.Host]) -> model.Host:
        """The host to run ``vm`` on; raise InvalidState when none fits."""


@runtime_checkable
class SupportsExplain(Protocol):
    """A scheduler that keeps its decisions (the engine's cluster policies)."""

    def explain(self, vm_id: str) -> str:
        """The last decision about a VM, formatted for people."""


def check_memory(vm: model.Vm, host: model.Host) -> None:
    """Refuse a VM that asks for more memory than the host has (when the host says)."""
    total = HostCapabilities.memory_of(host.capabilities)
    if total and vm.spec.memory_mib > total:
        raise InvalidInput(f"VM {vm.name!r} asks for {vm.spec.memory_mib} MiB but host "
                           f"{host.name!r} has {total} MiB")


class FirstUpHost:
    """The first Up host of the VM's cluster (in the store's order) with enough memory."""

    def pick(self, vm: model.Vm, hosts: list[model.Host]) -> model.Host:
        up = [h for h in hosts if h.cluster_id == vm.cluster_id
              and h.status == model.HostStatus.UP]
        if not up:
            raise InvalidState(f"no host is Up in the cluster of VM {vm.name!r}")
        return up[0]
