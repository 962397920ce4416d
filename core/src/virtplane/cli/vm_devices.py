"""``virtplane vm`` commands that change a VM's devices: cd, ticket (the console
password), plug and unplug (disks, NICs), vcpus, memory-plug and memory-unplug."""

from __future__ import annotations

import argparse
import sys

from virtplane.cli._common import manager
from virtplane.cli.vm_sizes import _disk, _parse_size


def cmd_vm_cd(args: argparse.Namespace) -> int:
    with manager(args) as m:
        m.devices.change_cd(args.name, args.path)
    print(f"vm {args.name}: CD {'ejected' if args.path is None else args.path}")
    return 0


def cmd_vm_ticket(args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        from virtplane.errors import InvalidInput

        raise InvalidInput("no password on standard input (it is never taken as an argument, "
                           "which would show in the process list)")
    with manager(args) as m:
        m.devices.set_ticket(args.name, password, args.expiry)
    print(f"vm {args.name}: console ticket set for {args.expiry} s")
    return 0


def cmd_vm_plug(args: argparse.Namespace) -> int:
    from virtplane import model

    with manager(args) as m:
        if args.kind == "disk":
            m.devices.hotplug_disk(args.name, _disk(m, args.spec or "1G", args.device,
                                            args.interface or "virtio"))
        else:
            net, _, nic_model = (args.spec or "default").partition(":")
            m.devices.hotplug_nic(args.name, model.NicSpec(name=args.device, network=net or "default",
                                                   model=nic_model or "virtio"))
    print(f"vm {args.name}: {args.kind} {args.device} plugged")
    return 0


def cmd_vm_unplug(args: argparse.Namespace) -> int:
    with manager(args) as m:
        if args.kind == "disk":
            m.devices.hotunplug_disk(args.name, args.device)
        else:
            m.devices.hotunplug_nic(args.name, args.device)
    print(f"vm {args.name}: {args.kind} {args.device} unplugged")
    return 0

def cmd_vm_vcpus(args: argparse.Namespace) -> int:
    with manager(args) as m:
        vm = m.devices.set_vcpus(args.name, args.count)
    print(f"vm {vm.name}: {vm.spec.vcpus} vCPUs")
    return 0


def cmd_vm_memory(args: argparse.Namespace) -> int:
    mib = _parse_size(args.size) >> 20
    with manager(args) as m:
        if args.sub == "memory-plug":
            vm = m.devices.hotplug_memory(args.name, mib)
        else:
            vm = m.devices.hotunplug_memory(args.name, mib)
    print(f"vm {vm.name}: {vm.spec.memory_mib} MiB")
    return 0
