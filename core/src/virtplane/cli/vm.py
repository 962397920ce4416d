"""``virtplane vm ...``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from virtplane.cli._common import Handler, emit, leaf, manager

#: the largest size accepted (1 EiB): far above any disk, far below what the state store's
#: 64-bit integers hold
MAX_SIZE = 1 << 60


def _parse_size(text: str) -> int:
    """A positive size in bytes from ``512M``, ``2G``, ``1.5T`` or a byte count.

    ``inf``, ``nan``, ``1e400`` and numbers with underscores are refused like any other
    text that is not a size (``float`` accepts them; a size must not).
    """
    from virtplane.errors import InvalidInput

    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    number, unit = (t[:-1], units[t[-1]]) if t and t[-1] in units else (t, 1)
    size = 0
    if number and all(c in "0123456789." for c in number) and number.count(".") <= 1 \
            and number != ".":
        size = int(float(number) * unit) if "." in number else int(number) * unit
    if size <= 0 or size > MAX_SIZE:
        raise InvalidInput(f"size {text!r} is not valid; a size is a positive number of bytes "
                           "up to 1 EiB with an optional unit K, M, G or T, e.g. 512M, 2G or "
                           "1073741824")
    return size


def _disk(m: Any, text: str, name: str, interface: str, bootable: bool = False) -> Any:
    """``SIZE[@STORAGE_DOMAIN]`` (a new disk) or ``disk=NAME`` (an existing named disk)."""
    from virtplane import model

    if text.startswith("disk="):
        image = m.disks.get(text[5:])
        return model.DiskSpec(name=name, size_bytes=image.volumes[-1].size_bytes,
                              interface=interface, domain_id=image.domain_id,
                              image_id=image.id, bootable=bootable)
    size, _, dom = text.partition("@")
    domain_id = m.storage.get(dom).id if dom else None
    return model.DiskSpec(name=name, size_bytes=_parse_size(size), interface=interface,
                          domain_id=domain_id, bootable=bootable)


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


# ------------------------------------------------------------- custom properties
#
# --property KEY=VALUE            the VM's (repeatable)
# --nic-property NIC:KEY=VALUE    a NIC's, by name (nic0, nic1 ... in --nic order)
# --disk-property DISK:KEY=VALUE  a disk's, by name (disk0, disk1 ... in --disk order)
# vm update also takes --remove-property KEY and --remove-nic/disk-property DEV:KEY.
# Values are everything after the first "=" (they may hold ":" and "="); keys are checked
# by the services (virtplane.names.check_property_name).


def _key_value(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        from virtplane.errors import InvalidInput

        raise InvalidInput(f"{option} {text!r} is not KEY=VALUE (e.g. {option} mtu=9000)")
    return key, value


def _device_item(text: str, option: str, example: str) -> tuple[str, str]:
    device, sep, rest = text.partition(":")
    if not sep or not device or not rest:
        from virtplane.errors import InvalidInput

        raise InvalidInput(f"{option} {text!r} names no device; it is DEVICE:{example} "
                           f"(e.g. {option} nic0:{example})")
    return device, rest


def _device_properties(args: argparse.Namespace) -> dict[str, dict[str, str | None]]:
    """``--nic/disk-property DEV:KEY=VALUE`` and ``--remove-nic/disk-property DEV:KEY``
    as ``{device: {key: value or None}}``, checked against the kind each option names."""
    out: dict[str, dict[str, str | None]] = {}
    for kind in ("nic", "disk"):
        option = f"--{kind}-property"
        for item in getattr(args, f"{kind}_property", None) or []:
            device, rest = _device_item(item, option, "KEY=VALUE")
            key, value = _key_value(rest, option)
            out.setdefault(f"{kind}\0{device}", {})[key] = value
        option = f"--remove-{kind}-property"
        for item in getattr(args, f"remove_{kind}_property", None) or []:
            device, key = _device_item(item, option, "KEY")
            out.setdefault(f"{kind}\0{device}", {})[key] = None
    return out


def _check_device(spec: Any, kind: str, device: str) -> None:
    from virtplane.errors import InvalidInput

    devices = spec.nics if kind == "nic" else spec.disks
    if not any(d.name == device for d in devices):
        raise InvalidInput(f"--{kind}-property: VM {spec.name!r} has no {kind} named "
                           f"{device!r}; its {kind}s: "
                           + (", ".join(d.name for d in devices) or "none"))


def _create_properties(args: argparse.Namespace, spec: Any) -> None:
    """Put the ``--property``/``--nic-property``/``--disk-property`` values on a new spec
    (``vms.create`` validates them with the rest)."""
    for item in args.property or []:
        key, value = _key_value(item, "--property")
        spec.custom_properties[key] = value
    for tagged, props in _device_properties(args).items():
        kind, device = tagged.split("\0", 1)
        _check_device(spec, kind, device)
        target = next(d for d in (spec.nics if kind == "nic" else spec.disks)
                      if d.name == device)
        target.custom_properties.update({k: v for k, v in props.items() if v is not None})


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


def _properties_of(spec: Any) -> dict[str, Any]:
    """The custom properties of a VM and of those of its devices that have any."""
    return {"vm": dict(spec.custom_properties),
            "disks": {d.name: dict(d.custom_properties) for d in spec.disks
                      if d.custom_properties},
            "nics": {n.name: dict(n.custom_properties) for n in spec.nics
                     if n.custom_properties}}


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


def cmd_vm_snapshot(args: argparse.Namespace) -> int:
    with manager(args) as m:
        snap = m.snapshots.take(args.name, args.snapshot, args.description, args.memory)
    print(f"snapshot {snap.name} {snap.id} of vm {args.name}"
          + (" (with memory)" if snap.with_memory else ""))
    return 0


def cmd_vm_snapshots(args: argparse.Namespace) -> int:
    import time

    with manager(args) as m:
        snaps = m.snapshots.list(args.name)
    data: list[dict[str, Any]] = [
        {"name": s.name, "id": s.id, "created": s.created, "with_memory": s.with_memory,
         "description": s.description} for s in snaps]

    def text() -> None:
        for d in data:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["created"]))
            print(f"{d['name']:20} {when}  {'memory' if d['with_memory'] else 'disks'}  "
                  f"{d['description']}".rstrip())

    emit(args, data, text)
    return 0


def cmd_vm_revert(args: argparse.Namespace) -> int:
    with manager(args) as m:
        vm = m.snapshots.revert(args.name, args.snapshot, args.host)
    print(f"vm {vm.name}: reverted to {args.snapshot}, {vm.status.value}")
    return 0


def cmd_vm_snapshot_delete(args: argparse.Namespace) -> int:
    with manager(args) as m:
        m.snapshots.delete(args.name, args.snapshot)
    print(f"snapshot {args.snapshot} of vm {args.name} deleted")
    return 0


def cmd_vm_migrate(args: argparse.Namespace) -> int:
    def progress(pct: float) -> None:
        print(f"  {pct:5.1f}%", file=sys.stderr)

    with manager(args) as m:
        vm = m.migrations.migrate(args.name, args.to, bandwidth_mib=args.bandwidth,
                          max_downtime_ms=args.max_downtime, unsafe=args.unsafe,
                          progress=progress if args.progress else None)
    print(f"vm {vm.name}: migrated to {args.to}")
    return 0


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


def _property_args(q: Any, update: bool) -> None:
    """The custom property options of ``vm create`` and ``vm update``."""
    q.add_argument("--property", action="append", metavar="KEY=VALUE",
                   help="a custom property of the VM (hook scripts get it as an environment "
                   "variable), repeatable")
    q.add_argument("--nic-property", action="append", metavar="NIC:KEY=VALUE",
                   help="a custom property of one NIC (nic0, nic1 ... in --nic order); only "
                   "that NIC's device hooks get it, repeatable")
    q.add_argument("--disk-property", action="append", metavar="DISK:KEY=VALUE",
                   help="a custom property of one disk (disk0, disk1 ...), repeatable")
    if update:
        q.add_argument("--remove-property", action="append", metavar="KEY",
                       help="remove a custom property of the VM, repeatable")
        q.add_argument("--remove-nic-property", action="append", metavar="NIC:KEY",
                       help="remove a custom property of a NIC, repeatable")
        q.add_argument("--remove-disk-property", action="append", metavar="DISK:KEY",
                       help="remove a custom property of a disk, repeatable")


def register_vm(g: Any) -> None:
    q = leaf(g, "create", cmd_vm_create, "define a VM")
    q.add_argument("name")
    q.add_argument("--cluster", required=True)
    q.add_argument("--memory", type=int, default=512, help="MiB")
    q.add_argument("--vcpus", type=int, default=1)
    q.add_argument("--max-memory", type=int, metavar="MIB",
                   help="memory the VM may grow to by hot-plugging DIMMs (vm memory-plug)")
    q.add_argument("--max-vcpus", type=int, metavar="N",
                   help="vCPUs the VM may grow to while running (vm vcpus)")
    q.add_argument("--os", default=None, help="osinfo OS name (default: the architecture's)")
    q.add_argument("--disk", action="append", help="SIZE[@STORAGE_DOMAIN] (new) or disk=NAME (existing), repeatable")
    q.add_argument("--disk-interface", default="virtio")
    q.add_argument("--nic", action="append", help="NETWORK[:MODEL] (network 'user' = SLIRP)")
    q.add_argument("--display", choices=["vnc", "spice"], help="graphical console")
    q.add_argument("--cd", nargs="?", const="", help="add a CD drive, with an image if given")
    _property_args(q, update=False)
    q.add_argument("--ha", action="store_true", help="highly available: the engine restarts "
                   "it elsewhere when its host fails (docs/ha.md)")
    q.add_argument("--ha-priority", type=int, default=0,
                   help="0-100, higher restarts first (default 0)")
    q = leaf(g, "update", cmd_vm_update, "change a VM's high availability and custom "
             "properties (its disks' and NICs' too; hook scripts see them from its next start)")
    q.add_argument("name")
    q.add_argument("--ha", action=argparse.BooleanOptionalAction, default=None,
                   help="highly available (--no-ha: not)")
    q.add_argument("--ha-priority", type=int, help="0-100, higher restarts first")
    _property_args(q, update=True)
    leaf(g, "list", cmd_vm_list, "list VMs", True)
    q = leaf(g, "cd", cmd_vm_cd, "change the CD (no PATH: eject)")
    q.add_argument("name")
    q.add_argument("path", nargs="?")
    q = leaf(g, "ticket", cmd_vm_ticket, "set the console password (read from stdin)")
    q.add_argument("name")
    q.add_argument("--expiry", type=int, default=120, help="seconds (default 120)")
    leaf(g, "show", cmd_vm_show, "show a VM (its custom properties under \"properties\")"
         ).add_argument("name")
    for name, op, help in [
        ("start", "start_vm", "start a VM"), ("destroy", "destroy_vm", "power off at once"),
        ("pause", "pause_vm", "pause"), ("continue", "resume_vm", "continue a paused VM"),
        ("reboot", "reboot_vm", "reboot"), ("hibernate", "hibernate_vm", "save memory and stop"),
        ("restore", "restore_vm", "restore a hibernated VM"),
        ("shutdown", "shutdown_vm", "ACPI shutdown, destroy after --timeout"),
    ]:
        q = leaf(g, name, _vm_op(op), help)
        q.add_argument("name")
        if op in ("start_vm", "restore_vm"):
            q.add_argument("--host")
        if op == "start_vm":
            q.add_argument("--explain", action="store_true", help="print why the VM went "
                           "to its host (every host's filter or score)")
        if op == "shutdown_vm":
            q.add_argument("--timeout", type=float, default=120.0)
    q = leaf(g, "snapshot", cmd_vm_snapshot, "take a snapshot (new qcow2 layer per disk)")
    q.add_argument("name")
    q.add_argument("snapshot")
    q.add_argument("--description", default="")
    q.add_argument("--memory", action="store_true", help="also save the running guest's memory")
    leaf(g, "snapshots", cmd_vm_snapshots, "list a VM's snapshots", True).add_argument("name")
    q = leaf(g, "revert", cmd_vm_revert, "revert a Down VM to a snapshot")
    q.add_argument("name")
    q.add_argument("snapshot")
    q.add_argument("--host", help="host to restore a memory snapshot on")
    q = leaf(g, "snapshot-delete", cmd_vm_snapshot_delete, "delete a snapshot (merge its layer)")
    q.add_argument("name")
    q.add_argument("snapshot")
    q = leaf(g, "migrate", cmd_vm_migrate, "live-migrate to another host of the cluster")
    q.add_argument("name")
    q.add_argument("--to", required=True, help="destination host")
    q.add_argument("--bandwidth", type=int, help="MiB/s")
    q.add_argument("--max-downtime", type=int, help="ms")
    q.add_argument("--unsafe", action="store_true",
                   help="allow local (non-shared) disks: libvirt's VIR_MIGRATE_UNSAFE")
    q.add_argument("--progress", action="store_true", help="print progress to stderr")
    for verb, fn, help in [("plug", cmd_vm_plug, "hot-plug a disk or NIC"),
                           ("unplug", cmd_vm_unplug, "hot-unplug a disk or NIC")]:
        q = leaf(g, verb, fn, help)
        q.add_argument("name")
        q.add_argument("kind", choices=["disk", "nic"])
        q.add_argument("device", help="device name")
        if verb == "plug":
            q.add_argument("spec", nargs="?",
                           help="disk: SIZE[@STORAGE_DOMAIN] or disk=NAME; nic: NETWORK[:MODEL]")
            q.add_argument("--interface", help="disk interface (default virtio)")
    q = leaf(g, "vcpus", cmd_vm_vcpus, "set a VM's vCPUs (live up to --max-vcpus; a Down VM "
             "gets them at its next start)")
    q.add_argument("name")
    q.add_argument("count", type=int)
    for verb, help in [("memory-plug", "hot-plug a memory module (DIMM) of SIZE"),
                       ("memory-unplug", "hot-unplug a memory module of SIZE (the guest must "
                        "release it)")]:
        q = leaf(g, verb, cmd_vm_memory, help)
        q.add_argument("name")
        q.add_argument("size", help="e.g. 256M, 1G")
    leaf(g, "stats", cmd_vm_stats, "VM stats").add_argument("name")
    leaf(g, "remove", cmd_vm_remove, "remove a Down VM and its disks").add_argument("name")
    leaf(g, "events", cmd_vm_events, "a VM's event log").add_argument("name")
