"""What the engine adds around the shared Manager's services, without changing them.

Two services get a thin wrapper on the engine's one Manager (instance
attributes; the classes and every other Manager are untouched):

* ``vms.mark_down`` — whoever sets a VM Down (a command, the libvirt event
  thread, the monitor) also logs the coded event: VM_DOWN_ERROR (119) when it
  died on its own, VM_DOWN (61) otherwise;
* ``migrations.migrate`` — inside a job, the migration reports its progress to
  the job and aborts when the job is cancelled (libvirt's abortJob: the VM
  stays on its source); VM_MIGRATION_DONE (63) / VM_MIGRATION_FAILED (65).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from virtplane.errors import VirtplaneError
from virtplane_engine import jobs
from virtplane_engine.codes import Code
from virtplane_engine.monitoring import Emit, down_code

if TYPE_CHECKING:
    from virtplane import model
    from virtplane.manager import Manager


def instrument(m: Manager, runner: jobs.JobRunner, emit: Emit) -> None:
    """Wrap the services of ``m`` (call once, on the engine's Manager)."""
    vms = m.vms
    mark_down: Callable[[model.Vm, str], None] = vms.mark_down

    def coded_mark_down(vm: model.Vm, reason: str) -> None:
        mark_down(vm, reason)
        emit(vm.id, down_code(reason), f"VM {vm.name} is down: {reason}", _correlation())

    vms.mark_down = coded_mark_down  # type: ignore[method-assign]

    migrations = m.migrations
    migrate: Callable[..., model.Vm] = migrations.migrate

    def job_migrate(name: str, dest_host: str, **options: Any) -> model.Vm:
        handle = jobs.current()
        if handle is not None:
            caller = options.get("progress")

            def progress(pct: float) -> None:
                runner.progress(handle, pct)
                if caller is not None:
                    caller(pct)

            options["progress"] = progress
            if options.get("cancel") is None:
                options["cancel"] = handle.cancel
        try:
            vm = migrate(name, dest_host, **options)
        except VirtplaneError as exc:
            target = m.vms.get(name)
            emit(target.id, Code.VM_MIGRATION_FAILED,
                 f"migration of VM {name} to {dest_host} failed: {exc}", _correlation())
            raise
        emit(vm.id, Code.VM_MIGRATION_DONE, f"VM {name} migrated to {dest_host}",
             _correlation())
        return vm

    migrations.migrate = job_migrate  # type: ignore[method-assign]


def _correlation() -> str | None:
    handle = jobs.current()
    return handle.job.correlation_id if handle is not None else None
