"""The ``virtplane`` command: a thin layer over :class:`virtplane.Manager`.

Each command group lives in its own module and is imported only when it runs,
so that a command pays for its own parser only. Errors go to stderr with a
non-zero exit and no traceback (``--debug`` or ``VIRTPLANE_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from virtplane._version import PLUGIN_API_VERSION, __version__
from virtplane.errors import VirtplaneError

#: command group -> (module, register function, help)
GROUPS: dict[str, tuple[str, str, str]] = {
    "plugins": ("virtplane.cli.plugins", "register_plugins", "installed plugins"),
    "plugin": ("virtplane.cli.plugins", "register_plugin", "write a new plugin project"),
    "config": ("virtplane.cli.plugins", "register_config", "configuration"),
    "dc": ("virtplane.cli.objects", "register_dc", "data centers"),
    "cluster": ("virtplane.cli.objects", "register_cluster", "clusters"),
    "host": ("virtplane.cli.objects", "register_host", "hosts"),
    "storage": ("virtplane.cli.objects", "register_storage", "storage domains"),
    "disk": ("virtplane.cli.disk", "register_disk", "standalone disks"),
    "iso": ("virtplane.cli.disk", "register_iso", "ISO images on iso domains"),
    "template": ("virtplane.cli.objects", "register_template", "templates"),
    "vm": ("virtplane.cli.vm", "register_vm", "virtual machines"),
    "arch": ("virtplane.cli.arch", "register_arch", "architectures"),
    "os": ("virtplane.cli.arch", "register_os", "guest OS information (osinfo)"),
    "hooks": ("virtplane.cli.hooks", "register_hooks", "hook points, implementations, scripts"),
}

_GLOBAL_WITH_VALUE = {"--config", "--state"}


def _selected_group(argv: Sequence[str]) -> str | None:
    """The command group named on the command line (skipping global options)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _GLOBAL_WITH_VALUE:
            skip = True
            continue
        if arg.startswith("-"):
            continue
        return arg
    return None


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; only the group named in ``argv`` gets its subcommands."""
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
    selected = _selected_group(argv)
    for name, (module, func, help) in GROUPS.items():
        g = sub.add_parser(name, help=help, description=help)
        if name == selected:
            register = getattr(importlib.import_module(module), func)
            register(g.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND"))
    q = sub.add_parser("demo", help="run an end-to-end demo scenario")
    q.set_defaults(func=_demo)
    q.add_argument("--uri", default="test:///default",
                   help="libvirt URI (default test:///default; qemu:///system for real QEMU)")
    q.add_argument("--keep", action="store_true", help="keep the demo's state folder")
    return p


def _demo(args: argparse.Namespace) -> int:
    from virtplane import demo

    return demo.run(args)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    if not hasattr(args, "func"):
        parser.parse_args([*args_list, "--help"])
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
    except BrokenPipeError:
        # the reader went away (``virtplane ... | head``): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
