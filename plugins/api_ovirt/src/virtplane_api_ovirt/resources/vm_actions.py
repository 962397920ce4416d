"""The lifecycle actions of ``/vms/{id}``: start (or restore a suspended VM), stop,
shutdown, suspend, reboot and migrate, each run as a job under the VM's lock.
:mod:`virtplane_api_ovirt.resources.vms` serves their routes with its own.
"""

from __future__ import annotations

from virtplane import model
from virtplane.errors import InvalidInput
from virtplane_api_ovirt import actions, parse
from virtplane_api_ovirt.base import Call, Reply, Route


def _start(call: Call) -> Reply:
    vm = call.m.vms.get(call.params["id"])
    host = parse.ref(parse.child(parse.child(call.body, "vm"), "placement_policy"), "host")
    if vm.saved_state:
        return actions.run(
            call, "vm.restore", vm.id, lambda: call.m.vms.restore(vm.id, host), lock=("vm", vm.name)
        )
    return actions.run(
        call, "vm.start", vm.id, lambda: call.m.vms.start(vm.id, host), lock=("vm", vm.name)
    )


def _stop(call: Call) -> Reply:
    vm = call.m.vms.get(call.params["id"])
    return actions.run(
        call, "vm.stop", vm.id, lambda: call.m.vms.destroy(vm.id), lock=("vm", vm.name)
    )


def _shutdown(call: Call) -> Reply:
    vm = call.m.vms.get(call.params["id"])
    return actions.run(
        call, "vm.shutdown", vm.id, lambda: call.m.vms.shutdown(vm.id), lock=("vm", vm.name)
    )


def _suspend(call: Call) -> Reply:
    vm = call.m.vms.get(call.params["id"])
    return actions.run(
        call, "vm.suspend", vm.id, lambda: call.m.vms.hibernate(vm.id), lock=("vm", vm.name)
    )


def _reboot(call: Call) -> Reply:
    vm = call.m.vms.get(call.params["id"])
    return actions.run(
        call, "vm.reboot", vm.id, lambda: call.m.vms.reboot(vm.id), lock=("vm", vm.name)
    )


def _migrate(call: Call) -> Reply:
    vm = call.m.vms.get(call.params["id"])
    dest = parse.ref(call.body, "host")
    if dest is None:
        others = [
            h
            for h in call.m.hosts.list()
            if h.cluster_id == vm.cluster_id
            and h.id != vm.host_id
            and h.status == model.HostStatus.UP
        ]
        if not others:
            raise InvalidInput(
                f"VM {vm.name!r} has no other Up host in its cluster to "
                "migrate to; name one with <host>"
            )
        dest = others[0].id
    target = dest
    return actions.run(
        call,
        "vm.migrate",
        vm.id,
        lambda: call.m.migrations.migrate(vm.id, target),
        lock=("vm", vm.name),
    )


ROUTES: list[Route] = [
    ("POST", "/vms/{id}/start", _start),
    ("POST", "/vms/{id}/stop", _stop),
    ("POST", "/vms/{id}/shutdown", _shutdown),
    ("POST", "/vms/{id}/suspend", _suspend),
    ("POST", "/vms/{id}/reboot", _reboot),
    ("POST", "/vms/{id}/migrate", _migrate),
]
