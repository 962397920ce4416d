"""Reconciling the store with what hosts report: VMs that died on their own go Down."""

from __future__ import annotations

import threading

from virtplane import drivers, model
from virtplane.errors import Conflict, NotFound
from virtplane.services.context import Context
from virtplane.services.vms import Vms
from virtplane.state import MODIFY_ATTEMPTS


class Monitor:
    """Lifecycle events and host refreshes (the engine's monitoring builds on this)."""

    def __init__(self, ctx: Context, vms: Vms) -> None:
        self.ctx = ctx
        self.vms = vms
        self._watching: set[str] = set()
        self._lock = threading.Lock()
        ctx.connections.on_drop(self.forget)

    def watch_events(self, host_name: str | None = None) -> None:
        """Subscribe to the hypervisor's lifecycle events (all hosts, or one).

        From then on, a VM that stops without virtplane asking (QEMU killed,
        guest crashed, powered off from inside) goes Down with the
        hypervisor's reason and ``after_vm_destroy`` fires, on the event
        thread. Hosts whose driver has no events are left to :meth:`refresh_host`.
        """
        hosts = ([self.ctx.store.find(model.Host, host_name)] if host_name
                 else self.ctx.store.list(model.Host))
        for host in hosts:
            conn = self.ctx.connections.get(host)
            with self._lock:
                if host.id in self._watching or not isinstance(conn, drivers.SupportsEvents):
                    continue
                self._watching.add(host.id)
            conn.watch(lambda name, reason, h=host: self.on_stopped(h, name, reason))

    def forget(self, host_id: str) -> None:
        """The host's connection was dropped: watch it again when asked."""
        with self._lock:
            self._watching.discard(host_id)

    def on_stopped(self, host: model.Host, name: str, reason: str) -> None:
        """A hypervisor event: the VM ``name`` on ``host`` stopped for ``reason``."""
        if name in self.ctx.expected_stops or reason in ("migrated", "saved", "from snapshot"):
            return  # virtplane's own operation; it updates the store itself
        why = "crashed" if reason in ("crashed", "failed", "destroyed") else reason
        # this runs on the hypervisor's event thread, where an exception only ends up in
        # the driver's log: a write that loses a race (a poll, a command) is re-read and
        # judged again, and after a few tries left to the next poll
        for _attempt in range(MODIFY_ATTEMPTS):
            try:
                vm = self.ctx.store.find(model.Vm, name)
            except NotFound:
                return  # not a virtplane VM
            if vm.host_id != host.id or vm.status == model.VmStatus.DOWN:
                return
            try:
                self.vms.mark_down(vm, f"{why}: stopped on its own ({reason})")
                return
            except Conflict:
                continue
        self.ctx.log.warning("VM %s stopped on host %s (%s), but every write conflicted; "
                             "the next host poll records it", name, host.name, reason)

    def refresh_host(self, host_name: str) -> list[model.Vm]:
        """Reconcile the store with the host: VMs that died on their own go Down.

        A VM the store has as running but the hypervisor reports Down (QEMU
        killed, crashed) is set Down with the hypervisor's reason, and
        ``after_vm_destroy`` fires. Returns the VMs that changed.
        """
        host = self.ctx.store.find(model.Host, host_name)
        conn = self.ctx.connections.get(host)
        changed = []
        for vm in self.ctx.store.list(model.Vm):
            if vm.host_id != host.id or vm.status == model.VmStatus.DOWN:
                continue
            status, reason = conn.state(vm.name)
            if status == "Down":
                self.vms.mark_down(vm, f"crashed: {reason}" if reason else "crashed")
                changed.append(vm)
            elif status != vm.status.value:
                vm.status = model.VmStatus(status)
                self.ctx.store.update(vm)
                changed.append(vm)
        return changed
