"""``virtplane dc|cluster|host|storage ...``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from virtplane.cli._common import dump, emit, leaf, manager


def cmd_dc_add(args: argparse.Namespace) -> int:
    # --compat is checked by the service, as the REST API's <version> is
    # (DataCenters.check_version: an unknown one is refused, naming the supported ones)
    level = {} if args.compat is None else {"compat_version": args.compat}
    with manager(args) as m:
        dc = m.datacenters.add(args.name, args.description, **level)
    print(f"data center {dc.name} {dc.id} (compatibility {dc.compat_version})")
    return 0


def cmd_dc_set(args: argparse.Namespace) -> int:
    # the service checks and writes in one step (DataCenters.update): a free, valid
    # name; a known version, only ever raised, never above the oldest cluster's
    if args.new_name is None and args.compat is None and args.description is None:
        from virtplane.errors import InvalidInput

        raise InvalidInput(f"nothing to change for data center {args.name!r}: give "
                           "--name, --description or --compat")
    with manager(args) as m:
        dc = m.datacenters.update(args.name, new_name=args.new_name, compat=args.compat,
                                  description=args.description)
    print(f"data center {dc.name} {dc.id} (compatibility {dc.compat_version})")
    return 0


def _list(args: argparse.Namespace, kind: str, cols: Sequence[str]) -> int:
    from virtplane import model

    service = {"dc": "datacenters", "cluster": "clusters", "host": "hosts",
               "storage": "storage"}[kind]
    with manager(args) as m:
        objs: list[dict[str, Any]] = [model.unstructure(o)
                                      for o in getattr(m, service).list()]
    from virtplane.secrets import redact_connection, redact_uri

    for o in objs:  # records stored before URIs with passwords were refused
        if "uri" in o:
            o["uri"] = redact_uri(str(o["uri"]))
        if isinstance(o.get("connection"), dict):
            o["connection"] = redact_connection(o["connection"])

    def text() -> None:
        for o in objs:
            print("  ".join(str(o.get(c, "")) for c in cols))

    emit(args, objs, text)
    return 0


def cmd_cluster_add(args: argparse.Namespace) -> int:
    with manager(args) as m:
        cl = m.clusters.add(args.name, args.dc, args.arch, args.cpu, args.compat,
                            description=args.description)
    print(f"cluster {cl.name} {cl.id} ({cl.architecture})")
    return 0


def cmd_cluster_set(args: argparse.Namespace) -> int:
    # the service checks and writes in one step (Clusters.update): a free, valid name;
    # a version the architecture knows, never older than the data center's; a CPU
    # model the architecture lists, changed only while none of the cluster's VMs runs
    if (args.new_name is None and args.compat is None and args.cpu is None
            and args.fencing is None and args.description is None):
        from virtplane.errors import InvalidInput

        raise InvalidInput(f"nothing to change for cluster {args.name!r}: give --name, "
                           "--description, --compat, --cpu or --fencing/--no-fencing")
    with manager(args) as m:
        cl = m.clusters.update(args.name, new_name=args.new_name, compat=args.compat,
                               cpu_model=args.cpu, fencing_enabled=args.fencing,
                               description=args.description)
    cpu = f", CPU {cl.cpu_model}" if cl.cpu_model else ""
    fencing = "on" if cl.fencing_enabled else "off"
    print(f"cluster {cl.name} {cl.id} ({cl.architecture}{cpu}, compatibility "
          f"{cl.compat_version}, fencing {fencing})")
    return 0


def cmd_host_add(args: argparse.Namespace) -> int:
    with manager(args) as m:
        h = m.hosts.add(args.name, args.cluster, args.uri, args.driver)
    print(f"host {h.name} {h.id}: {h.status.value} {h.status_reason}".rstrip())
    return 0


def cmd_host_show(args: argparse.Namespace) -> int:

    with manager(args) as m:
        caps = m.hosts.capabilities(m.hosts.get(args.name))
    json.dump(caps, sys.stdout, indent=2, sort_keys=True, default=str)
    print()
    return 0


def cmd_host_stats(args: argparse.Namespace) -> int:
    with manager(args) as m:
        stats = m.hosts.stats(args.name)
    json.dump(stats, sys.stdout, indent=2, sort_keys=True, default=str)
    print()
    return 0


def cmd_storage_add(args: argparse.Namespace) -> int:
    conn = _conn_args(args)
    with manager(args) as m:
        d = m.storage.add(args.name, args.type, args.dc, conn, args.domain_class)
    print(f"storage domain {d.name} {d.id} ({d.type}, {d.status.value})")
    return 0


def register_dc(g: Any) -> None:
    q = leaf(g, "add", cmd_dc_add, "add a data center")
    q.add_argument("name")
    q.add_argument("--description", default="")
    q.add_argument("--compat", metavar="MAJOR.MINOR", default=None,
                   help="compatibility version, one a loaded architecture knows (default "
                        "4.8); only ever raised afterwards, never above its oldest cluster's")
    q = leaf(g, "set", cmd_dc_set, "change a data center's name, description or "
             "compatibility version")
    q.add_argument("name", help="the data center's name or id")
    q.add_argument("--name", dest="new_name", metavar="NEW", default=None,
                   help="a new name (free, following the naming rule)")
    q.add_argument("--description", default=None)
    q.add_argument("--compat", metavar="MAJOR.MINOR", default=None,
                   help="a new compatibility version: one a loaded architecture knows, "
                        "only ever raised, never above its oldest cluster's")
    leaf(g, "list", lambda a: _list(a, "dc", ["name", "id"]), "list data centers", True)


def register_cluster(g: Any) -> None:
    q = leaf(g, "add", cmd_cluster_add, "add a cluster")
    q.add_argument("name")
    q.add_argument("--dc", required=True, help="data center name")
    q.add_argument("--description", default="",
                   help="free text (at most 4000 characters, no control characters)")
    q.add_argument("--arch", default="x86_64", help="architecture driver (default x86_64)")
    q.add_argument("--cpu", default=None, help="CPU model")
    q.add_argument("--compat", default="4.8",
                   help="compatibility version (default 4.8), never older than its data "
                        "center's")
    q = leaf(g, "set", cmd_cluster_set, "change a cluster's name, description, "
             "compatibility version, CPU model or fencing")
    q.add_argument("name", help="the cluster's name or id")
    q.add_argument("--name", dest="new_name", metavar="NEW", default=None,
                   help="a new name (free, following the naming rule)")
    q.add_argument("--description", metavar="TEXT", default=None,
                   help="a new description (at most 4000 characters, no control "
                        "characters; '' clears it)")
    q.add_argument("--compat", metavar="MAJOR.MINOR", default=None,
                   help="a new compatibility version: one its architecture knows, never "
                        "older than its data center's (it may be lowered down to that)")
    q.add_argument("--cpu", metavar="MODEL", default=None,
                   help="a CPU model its architecture lists ('' clears it); only while "
                        "none of its VMs runs")
    q.add_argument("--fencing", action=argparse.BooleanOptionalAction, default=None,
                   help="whether its hosts may be fenced (docs/ha.md)")
    leaf(g, "list", lambda a: _list(a, "cluster", ["name", "architecture", "id"]),
         "list clusters", True)


def cmd_host_check(args: argparse.Namespace) -> int:
    with manager(args) as m:
        h = m.hosts.check(args.name)
    print(f"host {h.name}: {h.status.value} {h.status_reason}".rstrip())
    return 0 if h.status.value in ("Up", "Maintenance") else 1


def cmd_host_maintenance(args: argparse.Namespace) -> int:
    with manager(args) as m:
        h = m.hosts.maintenance(args.name, not args.off)
        line = f"host {h.name}: {h.status.value} {h.status_reason}".rstrip()
        print(line, flush=True)
        if args.wait and not args.off:
            return wait_for_maintenance(lambda: m.hosts.get(args.name), args.timeout,
                                        said=line)
    return 0


def wait_for_maintenance(get: Any, timeout: float, every: float = 0.5, said: str = "",
                         clock: Any = None, sleep: Any = None) -> int:
    """``host maintenance --wait``: poll the host until it is in Maintenance (0), leaves
    PreparingForMaintenance otherwise (1: activated, NonResponsive ...) or ``timeout``
    seconds pass (1). Each new status or reason is printed: a VM that cannot leave
    names itself and why while the engine retries it."""
    import time

    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    deadline = clock() + timeout
    while True:
        h = get()
        line = f"host {h.name}: {h.status.value} {h.status_reason}".rstrip()
        if line != said:
            print(line, flush=True)
            said = line
        if h.status.value == "Maintenance":
            return 0
        if h.status.value != "PreparingForMaintenance":
            print(f"host {h.name} is {h.status.value}, not going to Maintenance any more",
                  file=sys.stderr)
            return 1
        if clock() >= deadline:
            print(f"host {h.name} is still PreparingForMaintenance after {timeout:g} s: "
                  f"{h.status_reason}", file=sys.stderr)
            return 1
        sleep(every)


def cmd_host_setup(args: argparse.Namespace) -> int:
    from virtplane import options

    with manager(args) as m:
        done = m.hosts.setup(args.name, **options.pairs(args.option))
    for line in done:
        print(line)
    return 0


def cmd_host_options(args: argparse.Namespace) -> int:
    with manager(args) as m:
        rows = m.hosts.setup_options(args.driver)

    def text() -> None:
        if not rows:
            print(f"the {args.driver} driver declares no host setup options")
        for r in rows:
            print(f"{r['name']:14} {r['type']:6} default {r['default']:10} {r['help']}")

    emit(args, rows, text)
    return 0


def register_host(g: Any) -> None:
    q = leaf(g, "add", cmd_host_add, "add a host by URI")
    q.add_argument("name")
    q.add_argument("uri", help="the host's address in the form its hypervisor driver takes "
                   "(see the driver's documentation)")
    q.add_argument("--cluster", required=True)
    q.add_argument("--driver", default="kvm", help="hypervisor driver (default kvm; the "
                   "installed ones: `virtplane plugins list`)")
    leaf(g, "list", lambda a: _list(a, "host", ["name", "uri", "status", "status_reason"]),
         "list hosts", True)
    leaf(g, "show", cmd_host_show, "host capabilities").add_argument("name")
    leaf(g, "stats", cmd_host_stats, "host stats").add_argument("name")
    leaf(g, "check", cmd_host_check, "contact the host and record its status; exit 1 "
         "if it does not answer").add_argument("name")
    q = leaf(g, "setup", cmd_host_setup, "prepare a host with its driver's setup (options: "
             "`virtplane host options DRIVER`)")
    q.add_argument("name")
    q.add_argument("--option", "-o", action="append", metavar="KEY=VALUE",
                   help="a setup option the host's driver declares (repeatable)")
    q = leaf(g, "options", cmd_host_options, "the host setup options a driver declares", True)
    q.add_argument("driver")
    q = leaf(g, "maintenance", cmd_host_maintenance, "put a host into Maintenance (--off: back)")
    q.add_argument("name")
    q.add_argument("--off", action="store_true")
    q.add_argument("--wait", action="store_true", help="with an engine: wait until its VMs "
                   "have moved away and it is in Maintenance (exit 1 if it is not within "
                   "--timeout)")
    q.add_argument("--timeout", type=float, default=600.0,
                   help="seconds --wait waits (default 600)")


def _conn_args(args: argparse.Namespace) -> dict[str, Any]:
    from virtplane import options

    conn: dict[str, Any] = options.pairs(args.option)
    if args.path:
        conn["path"] = [args.path]
    return conn


def cmd_storage_attach(args: argparse.Namespace) -> int:
    with manager(args) as m:
        d = m.storage.attach(args.name, args.type, _conn_args(args), args.dc)
        images = m.volumes.images_of(d)
    print(f"storage domain {d.name} {d.id} attached: {len(images)} image(s) found")
    return 0


def cmd_storage_show(args: argparse.Namespace) -> int:
    with manager(args) as m:
        data = m.storage.info(args.name)
    dump(data)
    return 0


def cmd_storage_verify(args: argparse.Namespace) -> int:
    with manager(args) as m:
        problems = m.storage.verify(args.name)
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s)" if problems else "storage and state store agree")
    return 1 if problems else 0


def cmd_storage_repair(args: argparse.Namespace) -> int:
    with manager(args) as m:
        done = m.storage.repair(args.name)
    for line in done:
        print(line)
    print(f"{len(done)} volume(s) repaired" if done else "nothing to repair")
    return 0


def cmd_storage_refresh(args: argparse.Namespace) -> int:
    with manager(args) as m:
        d = m.storage.refresh(args.name)
    print(f"storage domain {d.name}: {d.status.value} {d.status_reason}".rstrip())
    return 1 if d.status.value == "Inactive" else 0


def cmd_storage_state(args: argparse.Namespace) -> int:
    with manager(args) as m:
        d = (m.storage.activate(args.name) if args.sub == "activate"
             else m.storage.deactivate(args.name))
    print(f"storage domain {d.name}: {d.status.value} {d.status_reason}".rstrip())
    return 1 if args.sub == "activate" and d.status.value == "Inactive" else 0


def cmd_storage_detach(args: argparse.Namespace) -> int:
    with manager(args) as m:
        m.storage.detach(args.name)
    print(f"storage domain {args.name} detached (its data stays on the storage)")
    return 0


def cmd_storage_remove(args: argparse.Namespace) -> int:
    with manager(args) as m:
        m.storage.remove(args.name)
    print(f"storage domain {args.name} removed")
    return 0


def cmd_template_create(args: argparse.Namespace) -> int:
    with manager(args) as m:
        t = m.templates.create(args.vm, args.name)
    print(f"template {t.name} {t.id} from vm {args.vm} ({len(t.image_ids)} disk(s))")
    return 0


def cmd_template_list(args: argparse.Namespace) -> int:

    with manager(args) as m:
        data = [{"name": t.name, "id": t.id, "disks": len(t.image_ids)}
                for t in m.templates.list()]

    def text() -> None:
        for t in data:
            print(f"{t['name']:20} {t['id']}  {t['disks']} disk(s)")

    emit(args, data, text)
    return 0


def cmd_template_remove(args: argparse.Namespace) -> int:
    with manager(args) as m:
        m.templates.remove(args.name)
    print(f"template {args.name} removed")
    return 0


def cmd_template_vm(args: argparse.Namespace) -> int:
    with manager(args) as m:
        vm = m.templates.create_vm(args.template, args.name, args.cluster, args.clone)
    print(f"vm {vm.name} {vm.id} from template {args.template} "
          f"({'full clone' if args.clone else 'thin'})")
    return 0


def register_template(g: Any) -> None:
    q = leaf(g, "create", cmd_template_create, "make a template from a Down VM")
    q.add_argument("name")
    q.add_argument("--vm", required=True)
    leaf(g, "list", cmd_template_list, "list templates", True)
    leaf(g, "remove", cmd_template_remove, "remove a template nobody uses").add_argument("name")
    q = leaf(g, "vm", cmd_template_vm, "create a VM from a template (thin, or --clone)")
    q.add_argument("template")
    q.add_argument("name")
    q.add_argument("--cluster", required=True)
    q.add_argument("--clone", action="store_true", help="full, standalone copies of the disks")


def cmd_storage_options(args: argparse.Namespace) -> int:
    with manager(args) as m:
        rows = m.storage.connection_options(args.type)

    def text() -> None:
        if not rows:
            print(f"the {args.type} storage driver declares no connection fields "
                  "(-o KEY=VALUE pairs are passed to it as given)")
        for r in rows:
            print(f"{r['name']:22} {r['type']:6} default {r['default']:10} {r['help']}".rstrip())

    emit(args, rows, text)
    return 0


# the storage drivers' connection fields are theirs: `storage options TYPE` lists them
_TYPE_HELP = "storage driver (the installed ones: `virtplane plugins list`)"
_PATH_HELP = "shorthand for -o path=PATH"
_OPTION_HELP = ("a connection field the storage driver declares (repeatable); "
                "`virtplane storage options TYPE` lists them")


def register_storage(g: Any) -> None:
    q = leaf(g, "add", cmd_storage_add, "add a storage domain")
    q.add_argument("name")
    q.add_argument("--type", required=True, help=_TYPE_HELP)
    q.add_argument("--path", help=_PATH_HELP)
    q.add_argument("--option", "-o", action="append", metavar="KEY=VALUE", help=_OPTION_HELP)
    q.add_argument("--dc", help="data center to attach to")
    q.add_argument("--class", dest="domain_class", default="data", help="data, iso or export")
    q = leaf(g, "attach", cmd_storage_attach, "attach an existing domain found on its storage")
    q.add_argument("name")
    q.add_argument("--type", required=True, help=_TYPE_HELP)
    q.add_argument("--path", help=_PATH_HELP)
    q.add_argument("--option", "-o", action="append", metavar="KEY=VALUE", help=_OPTION_HELP)
    q.add_argument("--dc", help="data center to attach to")
    q = leaf(g, "options", cmd_storage_options, "the connection fields a storage type "
             "declares (what -o KEY=VALUE takes)", True)
    q.add_argument("type", help="a storage type (driver name)")
    leaf(g, "show", cmd_storage_show, "a domain and its images").add_argument("name")
    leaf(g, "verify", cmd_storage_verify, "compare storage, its metadata and the state store; "
         "exit 1 on mismatches").add_argument("name")
    leaf(g, "repair", cmd_storage_repair, "remove illegal volumes left by interrupted "
         "operations").add_argument("name")
    leaf(g, "refresh", cmd_storage_refresh, "probe the storage; record Active or Inactive "
         "with the reason (exit 1 if Inactive)").add_argument("name")
    leaf(g, "activate", cmd_storage_state, "connect the host again and probe (exit 1 if it "
         "stays Inactive)").add_argument("name")
    leaf(g, "deactivate", cmd_storage_state, "maintenance: Inactive and disconnected "
         "(refused while running VMs use it)").add_argument("name")
    leaf(g, "detach", cmd_storage_detach, "forget a domain, keep its data").add_argument("name")
    leaf(g, "remove", cmd_storage_remove, "delete an empty domain").add_argument("name")
    leaf(g, "list", lambda a: _list(a, "storage", ["name", "type", "status", "id"]),
         "list storage domains", True)
