"""Where a VM runs: the default placement used without an engine's cluster policy.

The engine's scheduler (filters, weights, balancing) replaces :class:`FirstUpHost`
through :class:`Scheduler`; what stays in the core is the minimum a start needs:
a host of the VM's cluster that is Up, and enough memory on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

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
        raise InvalidInput(
            f"VM {vm.name!r} asks for {vm.spec.memory_mib} MiB but host "
            f"{host.name!r} has {total} MiB"
        )


class HostRows(Protocol):
    """What :func:`unreadable_hosts` asks the state store (nothing is parsed)."""

    def versions(
        self,
        cls: type[Any],
        *,
        ids: Iterable[str] | None = None,
        cluster_ids: Iterable[str] | None = None,
    ) -> dict[str, int]: ...

    def object_names(self) -> dict[str, str]: ...


#: at most this many unreadable host rows are named in a message
NAMED_ROWS = 5


def unreadable_hosts(store: HostRows, cluster_id: str, readable: Iterable[model.Host]) -> list[str]:
    """The host rows a listing of hosts left out (a damaged row: see
    :class:`virtplane.state.UnreadableRow`) that may belong to the cluster
    ``cluster_id``, each as ``'NAME' (id ID)``: rows whose ``cluster_id`` column names
    the cluster, and rows whose version column is damaged (the store does not say
    their cluster). ``readable``: the hosts the listing returned."""
    seen = {h.id for h in readable}
    in_cluster = set(store.versions(model.Host, cluster_ids=[cluster_id]))
    names = {
        obj_id: text.removeprefix("host ")
        for obj_id, text in store.object_names().items()
        if text.startswith("host ")
    }
    broken_version = set(names) - set(store.versions(model.Host))
    left_out = sorted(
        (in_cluster | broken_version) - seen, key=lambda obj_id: (names.get(obj_id, ""), obj_id)
    )
    return [f"{names.get(obj_id, '?')!r} (id {obj_id})" for obj_id in left_out]


def no_up_host(vm: model.Vm, unreadable: list[str]) -> InvalidState:
    """The error for a VM whose cluster has no Up host, naming the host rows that
    could not be read (:func:`unreadable_hosts`), which may be the hosts missing."""
    text = f"no host is Up in the cluster of VM {vm.name!r}"
    if unreadable:
        count = len(unreadable)
        shown = ", ".join(unreadable[:NAMED_ROWS])
        more = f" and {count - NAMED_ROWS} more" if count > NAMED_ROWS else ""
        rows = "host row was" if count == 1 else "host rows were"
        them = "it" if count == 1 else "them"
        text += (
            f"; {count} {rows} left out because the state store could not read "
            f"{them}: {shown}{more} (run 'virtplane state check' to list every "
            "unreadable row)"
        )
    return InvalidState(text)


class FirstUpHost:
    """The first Up host of the VM's cluster (in the store's order) with enough memory.

    Given the state store (``store``), a cluster with no Up host is explained with the
    host rows of the cluster that could not be read (:func:`unreadable_hosts`): a
    listing leaves a damaged row out, so the only host may be one of them."""

    def __init__(self, store: HostRows | None = None) -> None:
        self.store = store

    def pick(self, vm: model.Vm, hosts: list[model.Host]) -> model.Host:
        up = [h for h in hosts if h.cluster_id == vm.cluster_id and h.status == model.HostStatus.UP]
        if not up:
            unreadable = (
                [] if self.store is None else unreadable_hosts(self.store, vm.cluster_id, hosts)
            )
            raise no_up_host(vm, unreadable)
        return up[0]
