"""The ``virtplane`` command: a thin layer over :class:`virtplane.Manager`.

Errors go to stderr with a non-zero exit and no traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from virtplane._version import PLUGIN_API_VERSION, __version__
from virtplane.errors import VirtplaneError

if TYPE_CHECKING:
    from virtplane.manager import Manager

Handler = Callable[[argparse.Namespace], int]


def _manager(args: argparse.Namespace) -> Manager:
    from virtplane import config
    from virtplane.manager import Manager

    return Manager(config.load(args.config), state_path=args.state)


def _emit(args: argparse.Namespace, data: Any, text: Callable[[], None]) -> None:
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        print()
    else:
        text()


# ---------------------------------------------------------------- plugins


def cmd_plugins_list(args: argparse.Namespace) -> int:
    with _manager(args) as m:
        records = [r.as_dict() for r in m.plugin_records()]

    def text() -> None:
        rows = [("NAME", "DISTRIBUTION", "VERSION", "KINDS", "HOOKS", "STATUS")]
        for r in records:
            rows.append((r["name"], r["distribution"], r["version"], ",".join(r["kinds"]),
                         str(len(r["hooks"])), r["status"]))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        for r in records:
            if r["reason"]:
                print(f"{r['name']}: {r['status']}: {r['reason']}")

    _emit(args, records, text)
    return 0


def cmd_plugins_show(args: argparse.Namespace) -> int:
    from virtplane.errors import NotFound

    with _manager(args) as m:
        rec = m.plugins.records.get(args.name)
        if rec is None:
            known = ", ".join(sorted(m.plugins.records)) or "none"
            raise NotFound(f"no plugin named {args.name!r} (installed: {known})")
        data = rec.as_dict()

    def text() -> None:
        for key in ("name", "distribution", "version", "kinds", "plugin_api", "status",
                    "reason", "entry_points", "hooks"):
            value = data[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            elif isinstance(value, list):
                value = ", ".join(value)
            print(f"{key:13} {value}")

    _emit(args, data, text)
    return 0


def cmd_plugins_doctor(args: argparse.Namespace) -> int:
    with _manager(args) as m:
        records = m.plugin_records()
        unknown_tables = sorted(set(m.config.plugin_tables) - set(m.plugins.records))
    bad = 0
    print(f"virtplane {__version__}, plugin API {PLUGIN_API_VERSION}")
    for rec in records:
        mark = {"loaded": "ok", "disabled": "--", "failed": "FAIL"}[rec.status]
        line = f"[{mark:4}] {rec.name} ({rec.dist} {rec.version})"
        if rec.reason:
            line += f": {rec.reason}"
        print(line)
        bad += rec.status == "failed"
    for name in unknown_tables:
        print(f"[FAIL] config has [plugin.{name}] but no plugin named {name!r} is installed")
        bad += 1
    print(f"{bad} problem(s)" if bad else "no problems")
    return 1 if bad else 0


def cmd_config_show(args: argparse.Namespace) -> int:
    from virtplane import config

    cfg = config.load(args.config)
    files = [str(f) for f in cfg.files]
    values = cfg.as_dict()
    data = {"files": files, "values": values}

    def text() -> None:
        print("files read: " + (", ".join(files) or "none"))
        for key, item in values.items():
            print(f"{key} = {json.dumps(item['value'])}    # {item['source']}")

    _emit(args, data, text)
    return 0


# ----------------------------------------------------------- objects


def cmd_dc_add(args: argparse.Namespace) -> int:
    with _manager(args) as m:
        dc = m.add_datacenter(args.name, args.description)
    print(f"data center {dc.name} {dc.id}")
    return 0


def _list(args: argparse.Namespace, kind: str, cols: Sequence[str]) -> int:
    from virtplane import model

    cls: type[Any] = {"dc": model.DataCenter, "cluster": model.Cluster, "host": model.Host,
           "storage": model.StorageDomain}[kind]
    with _manager(args) as m:
        objs: list[dict[str, Any]] = [model.unstructure(o) for o in m.store.list(cls)]

    def text() -> None:
        for o in objs:
            print("  ".join(str(o.get(c, "")) for c in cols))

    _emit(args, objs, text)
    return 0


def cmd_cluster_add(args: argparse.Namespace) -> int:
    with _manager(args) as m:
        cl = m.add_cluster(args.name, args.dc, args.arch, args.cpu, args.compat)
    print(f"cluster {cl.name} {cl.id} ({cl.architecture})")
    return 0


def cmd_host_add(args: argparse.Namespace) -> int:
    with _manager(args) as m:
        h = m.add_host(args.name, args.cluster, args.uri, args.driver)
    print(f"host {h.name} {h.id}: {h.status.value} {h.status_reason}".rstrip())
    return 0


def cmd_host_show(args: argparse.Namespace) -> int:
    from virtplane import model

    with _manager(args) as m:
        host = m.store.find(model.Host, args.name)
        caps = m.host_capabilities(host)
    json.dump(caps, sys.stdout, indent=2, sort_keys=True, default=str)
    print()
    return 0


def cmd_host_stats(args: argparse.Namespace) -> int:
    with _manager(args) as m:
        stats = m.host_stats(args.name)
    json.dump(stats, sys.stdout, indent=2, sort_keys=True, default=str)
    print()
    return 0


def cmd_storage_add(args: argparse.Namespace) -> int:
    conn = {"path": args.path} if args.path else {}
    with _manager(args) as m:
        d = m.add_storage_domain(args.name, args.type, args.dc, conn, args.domain_class)
    print(f"storage domain {d.name} {d.id} ({d.type}, {d.status.value})")
    return 0


def _parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except ValueError:
        from virtplane.errors import InvalidInput

        raise InvalidInput(f"size {text!r} is not valid; use e.g. 512M, 2G or a byte count") from None


def cmd_vm_create(args: argparse.Namespace) -> int:
    from virtplane import model

    with _manager(args) as m:
        disks = []
        for i, d in enumerate(args.disk or []):
            size, _, dom = d.partition("@")
            domain_id = m.store.find(model.StorageDomain, dom).id if dom else None
            disks.append(model.DiskSpec(name=f"disk{i}", size_bytes=_parse_size(size),
                                        interface=args.disk_interface, domain_id=domain_id,
                                        bootable=i == 0))
        nics = []
        for i, n in enumerate(args.nic or []):
            net, _, nic_model = n.partition(":")
            nics.append(model.NicSpec(name=f"nic{i}", network=net or "default",
                                      model=nic_model or "virtio"))
        spec = model.VmSpec(name=args.name, memory_mib=args.memory, vcpus=args.vcpus,
                            os=args.os, disks=disks, nics=nics)
        vm = m.create_vm(spec, args.cluster)
    print(f"vm {vm.name} {vm.id}: {vm.status.value}")
    return 0


def cmd_vm_list(args: argparse.Namespace) -> int:
    from virtplane import model

    with _manager(args) as m:
        vms = m.list_vms()
        hosts = {h.id: h.name for h in m.store.list(model.Host)}
    data = [{"name": v.name, "id": v.id, "status": v.status.value,
             "host": hosts.get(v.host_id or "", ""), "reason": v.status_reason} for v in vms]

    def text() -> None:
        for d in data:
            print(f"{d['name']:20} {d['status']:16} {d['host']:12} {d['reason']}".rstrip())

    _emit(args, data, text)
    return 0


def cmd_vm_show(args: argparse.Namespace) -> int:
    from virtplane import model

    with _manager(args) as m:
        data = model.unstructure(m.get_vm(args.name))
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


def _vm_op(op: str) -> Handler:
    def run(args: argparse.Namespace) -> int:
        with _manager(args) as m:
            extra: dict[str, Any] = {}
            if op in ("start_vm", "restore_vm") and args.host:
                extra["host"] = args.host
            if op == "shutdown_vm":
                extra["timeout"] = args.timeout
            result = getattr(m, op)(args.name, **extra)
            vm = m.get_vm(args.name)
        msg = f"vm {vm.name}: {vm.status.value}"
        if isinstance(result, str):
            msg += f" ({result})"
        print(msg)
        return 0
    return run


def cmd_vm_snapshot(args: argparse.Namespace) -> int:
    with _manager(args) as m:
        snap = m.snapshot_vm(args.name, args.snapshot, args.description)
    print(f"snapshot {snap.name} {snap.id} of vm {args.name}")
    return 0


def cmd_vm_stats(args: argparse.Namespace) -> int:
    with _manager(args) as m:
        stats = m.vm_stats(args.name)
    json.dump(stats, sys.stdout, indent=2, sort_keys=True, default=str)
    print()
    return 0


def cmd_vm_remove(args: argparse.Namespace) -> int:
    with _manager(args) as m:
        m.remove_vm(args.name)
    print(f"vm {args.name} removed")
    return 0


def cmd_vm_events(args: argparse.Namespace) -> int:
    import time

    with _manager(args) as m:
        for ts, level, msg in m.events(args.name):
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(ts))} {level:5} {msg}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from virtplane import demo

    return demo.run(args)


# ----------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="virtplane", description="virtplane: pluggable "
                                "virtualization management")
    p.add_argument("--version", action="version",
                   version=f"virtplane {__version__} (plugin API {PLUGIN_API_VERSION})")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.add_argument("--config", metavar="FILE", help="read only this config file "
                   "(default: XDG search; also VIRTPLANE_CONFIG)")
    p.add_argument("--state", metavar="FILE", help="state store file (default: "
                   "$XDG_DATA_HOME/virtplane/state.db)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def group(name: str, help: str) -> Any:
        g = sub.add_parser(name, help=help)
        return g.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")

    def leaf(parent: Any, name: str, fn: Handler, help: str, json_opt: bool = False) -> Any:
        q = parent.add_parser(name, help=help)
        q.set_defaults(func=fn)
        if json_opt:
            q.add_argument("--json", action="store_true", help="machine-readable output")
        return q

    g = group("plugins", "installed plugins")
    leaf(g, "list", cmd_plugins_list, "list plugins and their status", True)
    leaf(g, "show", cmd_plugins_show, "show one plugin", True).add_argument("name")
    leaf(g, "doctor", cmd_plugins_doctor, "check plugins; non-zero exit on problems")

    g = group("config", "configuration")
    leaf(g, "show", cmd_config_show, "effective config and where each value came from", True)

    g = group("dc", "data centers")
    q = leaf(g, "add", cmd_dc_add, "add a data center")
    q.add_argument("name")
    q.add_argument("--description", default="")
    q = leaf(g, "list", lambda a: _list(a, "dc", ["name", "id"]), "list data centers", True)

    g = group("cluster", "clusters")
    q = leaf(g, "add", cmd_cluster_add, "add a cluster")
    q.add_argument("name")
    q.add_argument("--dc", required=True, help="data center name")
    q.add_argument("--arch", default="x86_64", help="architecture driver (default x86_64)")
    q.add_argument("--cpu", default=None, help="CPU model")
    q.add_argument("--compat", default="4.8", help="compatibility version")
    leaf(g, "list", lambda a: _list(a, "cluster", ["name", "architecture", "id"]),
         "list clusters", True)

    g = group("host", "hosts")
    q = leaf(g, "add", cmd_host_add, "add a host by URI")
    q.add_argument("name")
    q.add_argument("uri", help="e.g. qemu:///system, test:///default")
    q.add_argument("--cluster", required=True)
    q.add_argument("--driver", default="kvm", help="hypervisor driver (default kvm)")
    leaf(g, "list", lambda a: _list(a, "host", ["name", "uri", "status", "status_reason"]),
         "list hosts", True)
    leaf(g, "show", cmd_host_show, "host capabilities").add_argument("name")
    leaf(g, "stats", cmd_host_stats, "host stats").add_argument("name")

    g = group("storage", "storage domains")
    q = leaf(g, "add", cmd_storage_add, "add a storage domain")
    q.add_argument("name")
    q.add_argument("--type", required=True, help="storage driver: localfs, nfs, glusterfs ...")
    q.add_argument("--path", help="folder (localfs)")
    q.add_argument("--dc", help="data center to attach to")
    q.add_argument("--class", dest="domain_class", default="data", help="data, iso or export")
    leaf(g, "list", lambda a: _list(a, "storage", ["name", "type", "status", "id"]),
         "list storage domains", True)

    g = group("vm", "virtual machines")
    q = leaf(g, "create", cmd_vm_create, "define a VM")
    q.add_argument("name")
    q.add_argument("--cluster", required=True)
    q.add_argument("--memory", type=int, default=512, help="MiB")
    q.add_argument("--vcpus", type=int, default=1)
    q.add_argument("--os", default="other")
    q.add_argument("--disk", action="append", help="SIZE[@STORAGE_DOMAIN], repeatable")
    q.add_argument("--disk-interface", default="virtio")
    q.add_argument("--nic", action="append", help="NETWORK[:MODEL] (network 'user' = SLIRP)")
    leaf(g, "list", cmd_vm_list, "list VMs", True)
    leaf(g, "show", cmd_vm_show, "show a VM").add_argument("name")
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
        if op == "shutdown_vm":
            q.add_argument("--timeout", type=float, default=120.0)
    q = leaf(g, "snapshot", cmd_vm_snapshot, "take a snapshot")
    q.add_argument("name")
    q.add_argument("snapshot")
    q.add_argument("--description", default="")
    leaf(g, "stats", cmd_vm_stats, "VM stats").add_argument("name")
    leaf(g, "remove", cmd_vm_remove, "remove a Down VM and its disks").add_argument("name")
    leaf(g, "events", cmd_vm_events, "a VM's event log").add_argument("name")

    q = sub.add_parser("demo", help="run an end-to-end demo scenario")
    q.set_defaults(func=cmd_demo)
    q.add_argument("--uri", default="test:///default",
                   help="libvirt URI (default test:///default; qemu:///system for real QEMU)")
    q.add_argument("--keep", action="store_true", help="keep the demo's state folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("VIRTPLANE_DEBUG") == "1"
    try:
        rc: int = args.func(args)
        return rc
    except VirtplaneError as exc:
        if debug:
            raise
        print(f"virtplane: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("virtplane: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
