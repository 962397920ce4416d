"""``virtplane vm`` commands of a VM's life: create, update, list, show, the power
operations (start, shutdown, pause ... with ``--explain``), migrate, stats, remove and
events."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from virtplane.cli._common import Handler, emit, manager
from virtplane.cli.vm_properties import (
    _check_device,
    _create_properties,
    _device_properties,
    _key_value,
    _properties_of,
)
from virtplane.cli.vm_sizes import _disk


def cmd_vm_create(args: argparse.Namespace) -> int:
    from virtplane import model

    with manager(args) as m:
        disks = [_disk(m, d, f"disk{i}", args.disk_interface, i == 0)
                 for i, d in enumerate(args.disk or [])]
        nics = []
        for i, n in enumerate(args.nic or []):
            net, _, nic_model = n.partition(":")
            nics.append(model.NicSpec(name=f"nic{i}", network=net or "default",
                                      model=nic_model or "virtio"))
        spec = model.VmSpec(name=args.name, memory_mib=args.memory, vcpus=args.vcpus,
                            max_memory_mib=args.max_memory, max_vcpus=args.max_vcpus,
                            os=args.os, disks=disks, nics=nics,
                            display=model.DisplaySpec(type=args.display) if args.display else None,
                            cd=model.CdSpec(path=args.cd or None) if args.cd is not None else None,
                            highly_available=args.ha, ha_priority=args.ha_priority)
        _create_properties(args, spec)
        vm = m.vms.create(spec, args.cluster)
    print(f"vm {vm.name} {vm.id}: {vm.status.value}")
    return 0

def cmd_vm_update(args: argparse.Namespace) -> int:
    """Change a VM's custom properties (and its devices') and its high availability."""
    from virtplane.errors import InvalidInput

    props: dict[str, str | None] = {}
    for item in args.property or []:
        key, value = _key_value(item, "--property")
        props[key] = value
    for key in args.remove_property or []:
        props[key] = None
    tagged = _device_properties(args)
    ha = args.ha is not None or args.ha_priority is not None
    if not props and not tagged and not ha:
        raise InvalidInput("vm update: nothing to change; give --property KEY=VALUE, "
                           "--remove-property KEY, --nic-property NIC:KEY=VALUE, "
                           "--disk-property DISK:KEY=VALUE, --ha, --no-ha or --ha-priority")
    with manager(args) as m:
        if props or tagged:
            spec = m.vms.get(args.name).spec
            devices: dict[str, dict[str, str | None]] = {}
            for key_, changes in tagged.items():
                kind, device = key_.split("\0", 1)
                _check_device(spec, kind, device)
                devices.setdefault(device, {}).update(changes)
            vm = m.vms.update_properties(args.name, props, devices)
            print(f"vm {vm.name}: custom properties updated"
                  + (" (hook scripts see them from the next start)"
                     if vm.status.value != "Down" else ""))
        if ha:
            vm = m.vms.set_high_availability(args.name, args.ha, args.ha_priority)
            print(f"vm {vm.name}: highly available "
                  f"{'yes' if vm.spec.highly_available else 'no'}, "
                  f"priority {vm.spec.ha_priority}")
    return 0

def cmd_vm_list(args: argparse.Namespace) -> int:

    with manager(args) as m:
        vms = m.vms.list()
        hosts = {h.id: h.name for h in m.hosts.list()}
    data = [{"name": v.name, "id": v.id, "status": v.status.value,
             "host": hosts.get(v.host_id or "", ""), "reason": v.status_reason} for v in vms]

    def text() -> None:
        for d in data:
            print(f"{d['name']:20} {d['status']:16} {d['host']:12} {d['reason']}".rstrip())

    emit(args, data, text)
    return 0


def cmd_vm_show(args: argparse.Namespace) -> int:
    from virtplane import model

    with manager(args) as m:
        vm = m.vms.get(args.name)
        data = model.unstructure(vm)
    # the spec has them too; listed apart so they are easy to find (and to check)
    data["properties"] = _properties_of(vm.spec)
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


def _vm_op(op: str) -> Handler:
    def run(args: argparse.Namespace) -> int:
        with manager(args) as m:
            extra: dict[str, Any] = {}
            if op in ("start_vm", "restore_vm") and args.host:
                extra["host"] = args.host
            if op == "shutdown_vm":
                extra["timeout"] = args.timeout
            result = getattr(m.vms, op.removesuffix("_vm"))(args.name, **extra)
            vm = m.vms.get(args.name)
            explained = None
            if getattr(args, "explain", False):
                explained = (f"started on {args.host}, the host named with --host: no "
                             "scheduling decision was made") if args.host else \
                    _explanation(m, vm)
        msg = f"vm {vm.name}: {vm.status.value}"
        if isinstance(result, str):
            msg += f" ({result})"
        print(msg)
        if explained is not None:
            print(explained)
        return 0
    return run


def _explanation(m: Any, vm: Any) -> str:
    """Why the VM went where it did: the scheduler's record when it keeps one (the
    engine's cluster policies do), else what the core's placement is."""
    from virtplane.scheduling import SupportsExplain

    scheduler = m.vms.scheduler
    if isinstance(scheduler, SupportsExplain):
        return scheduler.explain(vm.id)
    return (f"placed by {type(scheduler).__name__}: the first Up host of the cluster with "
            "enough memory (cluster policies and their explanations need the engine: "
            "virtplane engine run)")

def cmd_vm_migrate(args: argparse.Namespace) -> int:
    def progress(pct: float) -> None:
        print(f"  {pct:5.1f}%", file=sys.stderr)

    with manager(args) as m:
        vm = m.migrations.migrate(args.name, args.to, bandwidth_mib=args.bandwidth,
                          max_downtime_ms=args.max_downtime, unsafe=args.unsafe,
                          progress=progress if args.progress else None)
    print(f"vm {vm.name}: migrated to {args.to}")
    return 0

def cmd_vm_stats(args: argparse.Namespace) -> int:
    with manager(args) as m:
        stats = m.vms.stats(args.name)
    json.dump(stats, sys.stdout, indent=2, sort_keys=True, default=str)
    print()
    return 0


def cmd_vm_remove(args: argparse.Namespace) -> int:
    with manager(args) as m:
        m.vms.remove(args.name)
    print(f"vm {args.name} removed")
    return 0


def cmd_vm_events(args: argparse.Namespace) -> int:
    import time

    with manager(args) as m:
        for ts, level, msg in m.vms.events(args.name):
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(ts))} {level:5} {msg}")
    return 0
