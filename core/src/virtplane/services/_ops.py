"""The one operation skeleton every VM, device, snapshot and migration operation uses.

VDSM's order, written once (nova lifts the same dance into decorators such as
``@reverts_task_state``; here it is a context manager)::

    before_<point> hook (may veto; policy declared at the spec)
    status -> transitional status (optional), stored
    the operation itself; compensations registered on ``op.undo`` (an ExitStack)
    success: undo discarded, event recorded, after_<point> hook (failures logged)
    failure (any exception): compensations run in reverse, status restored and
             stored, the error recorded as an event, after_<point>_fail hook when the
             point has one; the exception goes on to the caller

Usage::

    with operation(ctx, vm, "vm_pause", before_args={"domxml": payload}) as op:
        conn.pause(vm.name)
        op.status = VmStatus.PAUSED
        op.after_args = {"domxml": XmlPayload(conn.live_xml(vm.name))}
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from virtplane.errors import VirtplaneError
from virtplane.events import Code
from virtplane.services._guard import require_hooks

if TYPE_CHECKING:
    from virtplane import model
    from virtplane.services.context import Context


class Op:
    """What an operation body tells the skeleton."""

    def __init__(self, vm: model.Vm) -> None:
        self.vm = vm
        #: compensations, run in reverse when the body fails
        self.undo = contextlib.ExitStack()
        #: the status to record on success (None: leave as the body set it)
        self.status: model.VmStatus | None = None
        #: the event line to record on success ("" for none), and its code
        #: (:class:`virtplane.events.Code`; None: none)
        self.event = ""
        self.code: int | None = None
        #: keyword arguments for the after (and fail) hook besides ``vm``
        self.after_args: dict[str, Any] = {}
        #: whether to store the VM on success (bodies that stored it themselves say False)
        self.store = True


def _reason(exc: BaseException) -> str:
    """An error as the VM's status reason and event say it: a VirtplaneError's own
    message; anything else with its type (it was not meant for users)."""
    if isinstance(exc, VirtplaneError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@contextlib.contextmanager
def operation(ctx: Context, vm: model.Vm, point: str | None, *,
              before_args: dict[str, Any] | None = None,
              transitional: model.VmStatus | None = None,
              fail_point: str | None = None,
              failure_event: str | None = None,
              keep_status_on_failure: bool = False,
              record_reason: bool = False,
              code: int | None = None,
              failure_code: int | None = None) -> Iterator[Op]:
    """Run one operation on ``vm`` with its hooks, events, status and undo.

    :param point: the hook point without its ``before_``/``after_`` prefix
        (``vm_pause``, ``nic_hotplug`` ...); None for operations without hooks.
    :param before_args: keyword arguments of the before hook besides ``vm``
        (they are also the after/fail hook's unless the body sets ``after_args``).
    :param transitional: a status to store before the body runs (Saving state,
        Migration source ...); on failure the previous status comes back.
    :param fail_point: the ``after_*_fail`` point to fire when the body fails.
    :param failure_event: the event text prefix on failure (default: the point).
    :param keep_status_on_failure: the body decides the status on failure itself.
    :param record_reason: store the error as the VM's status reason even when the status
        did not change (a start that failed before the VM left Down).
    :param code: the success event's code (the body may set ``op.code`` instead).
    :param failure_code: the failure event's code (default: ``OPERATION_FAILED``).
    """
    args = dict(before_args or {})
    if point is not None:
        # a broken hook plugin would skip a veto: refuse instead (services/_guard.py)
        require_hooks(ctx.plugins, f"{point.removeprefix('vm_').replace('_', ' ')} VM "
                      f"{vm.name!r}")
        # a before point whose spec says LOG reports to the VM's event log (FAIL raises)
        ctx.hooks.fire(f"before_{point}", on_error=ctx.hook_error_sink(vm.id), vm=vm, **args)
    op = Op(vm)
    op.after_args = args
    op.code = code
    previous = (vm.status, vm.status_reason)
    if transitional is not None:
        vm.status = transitional
        ctx.store.update(vm)
    try:
        with op.undo:
            yield op
            op.undo.pop_all()
    except BaseException as exc:
        if isinstance(exc, GeneratorExit):
            raise
        # anything, not only VirtplaneError: a driver's own exception, a bug, Ctrl-C
        # must not leave the VM in a transitional status nobody will ever clear
        changed = not keep_status_on_failure and vm.status != previous[0]
        if changed:
            vm.status = previous[0]
        what = failure_event or (point or "operation").removeprefix("vm_")
        failed = f"{what} failed: {_reason(exc)}"
        fcode = failure_code if failure_code is not None else Code.OPERATION_FAILED
        if changed or keep_status_on_failure or record_reason:
            # the status is back where it was (or the body's undo set it from the
            # hypervisor): say why the operation did not happen, with its event
            vm.status_reason = _reason(exc)
            ctx.record(vm, failed, "error", code=fcode)
        else:
            ctx.event(vm.id, failed, "error", code=fcode)
        if fail_point is not None:
            ctx.hooks.fire(fail_point, on_error=ctx.hook_error_sink(vm.id), vm=vm,
                           **op.after_args, error=_reason(exc))
        raise
    if op.status is not None:
        vm.status = op.status
        vm.status_reason = ""
    if op.store and op.event:
        ctx.record(vm, op.event, code=op.code)  # the change and its event, or neither
    elif op.store:
        ctx.store.update(vm)
    elif op.event:
        ctx.event(vm.id, op.event, code=op.code)
    if point is not None:
        ctx.hooks.fire(f"after_{point}", on_error=ctx.hook_error_sink(vm.id), vm=vm,
                       **op.after_args)


