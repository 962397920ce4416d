"""``virtplane dc|cluster|host|storage ...``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from virtplane.cli._common import emit, leaf, manager


def cmd_dc_add(args: argparse.Namespace) -> int:
    with manager(args) as m:
        dc = m.add_datacenter(args.name, args.description)
    print(f"data center {dc.name} {dc.id}")
    return 0


def _list(args: argparse.Namespace, kind: str, cols: Sequence[str]) -> int:
    from virtplane import model

    cls: type[Any] = {"dc": model.DataCenter, "cluster": model.Cluster, "host": model.Host,
           "storage": model.StorageDomain}[kind]
    with manager(args) as m:
        objs: list[dict[str, Any]] = [model.unstructure(o) for o in m.store.list(cls)]

    def text() -> None:
        for o in objs:
            print("  ".join(str(o.get(c, "")) for c in cols))

    emit(args, objs, text)
    return 0


def cmd_cluster_add(args: argparse.Namespace) -> int:
    with manager(args) as m:
        cl = m.add_cluster(args.name, args.dc, args.arch, args.cpu, args.compat)
    print(f"cluster {cl.name} {cl.id} ({cl.architecture})")
    return 0


def cmd_host_add(args: argparse.Namespace) -> int:
    with manager(args) as m:
        h = m.add_host(args.name, args.cluster, args.uri, args.driver)
    print(f"host {h.name} {h.id}: {h.status.value} {h.status_reason}".rstrip())
    return 0


def cmd_host_show(args: argparse.Namespace) -> int:
    from virtplane import model

    with manager(args) as m:
        host = m.store.find(model.Host, args.name)
        caps = m.host_capabilities(host)
    json.dump(caps, sys.stdout, indent=2, sort_keys=True, default=str)
    print()
    return 0


def cmd_host_stats(args: argparse.Namespace) -> int:
    with manager(args) as m:
        stats = m.host_stats(args.name)
    json.dump(stats, sys.stdout, indent=2, sort_keys=True, default=str)
    print()
    return 0


def cmd_storage_add(args: argparse.Namespace) -> int:
    conn = {"path": args.path} if args.path else {}
    with manager(args) as m:
        d = m.add_storage_domain(args.name, args.type, args.dc, conn, args.domain_class)
    print(f"storage domain {d.name} {d.id} ({d.type}, {d.status.value})")
    return 0


def register_dc(g: Any) -> None:
    q = leaf(g, "add", cmd_dc_add, "add a data center")
    q.add_argument("name")
    q.add_argument("--description", default="")
    leaf(g, "list", lambda a: _list(a, "dc", ["name", "id"]), "list data centers", True)


def register_cluster(g: Any) -> None:
    q = leaf(g, "add", cmd_cluster_add, "add a cluster")
    q.add_argument("name")
    q.add_argument("--dc", required=True, help="data center name")
    q.add_argument("--arch", default="x86_64", help="architecture driver (default x86_64)")
    q.add_argument("--cpu", default=None, help="CPU model")
    q.add_argument("--compat", default="4.8", help="compatibility version")
    leaf(g, "list", lambda a: _list(a, "cluster", ["name", "architecture", "id"]),
         "list clusters", True)


def cmd_host_check(args: argparse.Namespace) -> int:
    with manager(args) as m:
        h = m.check_host(args.name)
    print(f"host {h.name}: {h.status.value} {h.status_reason}".rstrip())
    return 0 if h.status.value in ("Up", "Maintenance") else 1


def cmd_host_maintenance(args: argparse.Namespace) -> int:
    with manager(args) as m:
        h = m.set_maintenance(args.name, not args.off)
    print(f"host {h.name}: {h.status.value} {h.status_reason}".rstrip())
    return 0


def register_host(g: Any) -> None:
    q = leaf(g, "add", cmd_host_add, "add a host by URI")
    q.add_argument("name")
    q.add_argument("uri", help="e.g. qemu:///system, test:///default")
    q.add_argument("--cluster", required=True)
    q.add_argument("--driver", default="kvm", help="hypervisor driver (default kvm)")
    leaf(g, "list", lambda a: _list(a, "host", ["name", "uri", "status", "status_reason"]),
         "list hosts", True)
    leaf(g, "show", cmd_host_show, "host capabilities").add_argument("name")
    leaf(g, "stats", cmd_host_stats, "host stats").add_argument("name")
    leaf(g, "check", cmd_host_check, "contact the host and record its status; exit 1 "
         "if it does not answer").add_argument("name")
    q = leaf(g, "maintenance", cmd_host_maintenance, "put a host into Maintenance (--off: back)")
    q.add_argument("name")
    q.add_argument("--off", action="store_true")


def register_storage(g: Any) -> None:
    q = leaf(g, "add", cmd_storage_add, "add a storage domain")
    q.add_argument("name")
    q.add_argument("--type", required=True, help="storage driver: localfs, nfs, glusterfs ...")
    q.add_argument("--path", help="folder (localfs)")
    q.add_argument("--dc", help="data center to attach to")
    q.add_argument("--class", dest="domain_class", default="data", help="data, iso or export")
    leaf(g, "list", lambda a: _list(a, "storage", ["name", "type", "status", "id"]),
         "list storage domains", True)
