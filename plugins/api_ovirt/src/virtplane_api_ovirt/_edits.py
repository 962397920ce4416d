"""Changes to a Down VM's devices, until the core has a service for them.

The services hot-plug NICs and disks into running VMs (``Devices``) but have
no call that adds or removes a device of a VM that is Down, which is what
the SDK's ``add_vm_disk.py``/``add_vm_nic.py`` and Ansible's ``ovirt_disk``/
``ovirt_nic`` do most. Until a ``Vms.edit`` (or ``Devices.add_nic``/``add_disk``
for Down VMs) exists, this module does it the way the services would: the new
spec is validated by the architecture service first, the disk image is made
by the volumes service, and the VM record is changed with the store's
compare-and-set ``modify`` (which re-reads it and refuses a VM that started
meanwhile). Listed in docs/api-ovirt.md under "changes needed in the core".
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from virtplane import model
from virtplane.errors import InvalidState
from virtplane_api_ovirt.base import Call


def _require_down(vm: model.Vm, what: str) -> None:
    if vm.status != model.VmStatus.DOWN:
        raise InvalidState(f"VM {vm.name!r} is {vm.status.value}; {what}")


def edit_down_vm(call: Call, vm_id: str, change: Callable[[model.VmSpec], None],
                 what: str) -> model.Vm:
    """Apply ``change`` to a copy of a Down VM's spec, validate it, and store it."""
    vm = call.m.vms.get(vm_id)
    _require_down(vm, f"{what} needs it Down here (or running, for hot-plug)")
    spec = attrs.evolve(vm.spec, disks=list(vm.spec.disks), nics=list(vm.spec.nics))
    change(spec)
    call.m.arch.validate(spec, call.m.vms.cluster(vm))

    def apply(current: model.Vm) -> model.Vm:
        _require_down(current, what)
        current.spec = spec
        return current

    return call.m.store.modify(model.Vm, vm.id, apply)


def add_disk(call: Call, vm_id: str, disk: model.DiskSpec) -> model.Vm:
    """Add a disk to a Down VM: its image is made first, and dropped if recording fails."""
    vm = call.m.vms.get(vm_id)
    _require_down(vm, "adding a disk needs it Down here (or running, for hot-plug)")
    check = attrs.evolve(vm.spec, disks=[*vm.spec.disks, disk])
    call.m.arch.validate(check, call.m.vms.cluster(vm))
    made = call.m.volumes.new_disk(vm.id, disk)
    try:
        return edit_down_vm(call, vm.id, lambda s: s.disks.append(disk), "adding a disk")
    except BaseException:
        if made is not None:
            call.m.volumes.drop([made], [])
        raise
