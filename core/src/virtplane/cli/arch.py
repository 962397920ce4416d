"""``virtplane arch ...`` and ``virtplane os ...``: architectures and OS info."""

from __future__ import annotations

import argparse
from typing import Any

from virtplane.cli._common import emit, leaf, manager


def cmd_arch_list(args: argparse.Namespace) -> int:
    with manager(args) as m:
        data = m.arch.list(args.compat)

    def text() -> None:
        for a in data:
            print(f"{a['name']:10} {a['distribution']} {a['version']}  default OS "
                  f"{a['default_os']}, {a['oses']} OSes, machines {', '.join(a['machine_types'])}")

    emit(args, data, text)
    return 0


def cmd_arch_show(args: argparse.Namespace) -> int:
    from virtplane.errors import NotFound

    with manager(args) as m:
        loaded = m.loaded("architecture")
        if args.name not in loaded:
            raise NotFound(f"no architecture {args.name!r} is loaded; loaded: "
                           + ", ".join(loaded))
        # only the named architecture: its compatibility versions are the ones checked
        a = m.arch.list(args.compat, names=[args.name])[0]

    def text() -> None:
        for key in ("name", "distribution", "version", "default_os", "machine_types",
                    "cpu_models", "memory_granularity_mib", "compat_version"):
            value = a[key]
            print(f"{key:24} {', '.join(value) if isinstance(value, list) else value}")
        print("features:")
        for feat, ok in sorted(a["features"].items()):
            print(f"  {feat:22} {'yes' if ok else 'no'}")

    emit(args, a, text)
    return 0


def cmd_os_list(args: argparse.Namespace) -> int:
    import sys
    import warnings

    from virtplane import osinfo

    with manager(args) as m, warnings.catch_warnings():
        # reported once below, on stderr, instead of as Python warnings
        warnings.simplefilter("ignore", osinfo.RetiredAttributeWarning)
        repo = m.arch.osinfo
        data = m.arch.os_list(args.arch)
    for problem in repo.dropped:
        print(f"dropped: {problem}", file=sys.stderr)
    for problem in repo.retired:
        print(f"retired: {problem}", file=sys.stderr)

    def text() -> None:
        for o in data:
            flag = "  (deprecated)" if o["deprecated"] else ""
            print(f"{o['name']:24} {o['id']:>5}  {o['arch']:8} {o['title']}{flag}")

    emit(args, data, text)
    return 0


def cmd_os_show(args: argparse.Namespace) -> int:
    with manager(args) as m:
        data = m.arch.os_info(args.name, args.version, args.chipset)

    def text() -> None:
        print(f"{data['name']} (derived: {' -> '.join(data['chain'])}), "
              f"compatibility {data['version'] or 'any'}")
        print(f"disk interfaces: {', '.join(data['disk_interfaces'])}")
        print(f"NIC models: {', '.join(data['nic_models'])}")
        for key, item in data["values"].items():
            print(f"{key} = {item['value']}    # {item['source']}")

    emit(args, data, text)
    return 0


def register_arch(g: Any) -> None:
    q = leaf(g, "list", cmd_arch_list, "loaded architecture drivers", True)
    q.add_argument("--compat", default="4.8", help="compatibility version for features")
    q = leaf(g, "show", cmd_arch_show, "what an architecture supports", True)
    q.add_argument("name")
    q.add_argument("--compat", default="4.8", help="compatibility version for features")


def register_os(g: Any) -> None:
    leaf(g, "list", cmd_os_list, "OSes known to osinfo", True).add_argument(
        "--arch", help="only OSes of this architecture")
    q = leaf(g, "show", cmd_os_show, "effective values of an OS and where each came from", True)
    q.add_argument("name")
    q.add_argument("--version", help="compatibility version, e.g. 4.8")
    q.add_argument("--chipset", choices=["i440fx", "q35"], help="for chipset-prefixed lists")
