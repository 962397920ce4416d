"""The ``virtplane`` command: a thin layer over :class:`virtplane.Manager`.

Each command group lives in its own module and is imported only when it runs,
so that a command pays for its own parser only. Errors go to stderr with a
non-zero exit and no traceback (``--debug`` or ``VIRTPLANE_DEBUG=1`` shows it).

Installed distributions add command groups through the entry-point group
:data:`COMMAND_GROUP` (``name = "module:register"``; ``register`` gets the
group's subparsers, as the built-in ``register_*`` functions do, or, when it
has the attribute ``group_parser = True``, the group's own parser, for a group
without subcommands). They are
looked up only when the command line names a group that is not built in, and
imported only when selected, so ``virtplane plugins list`` never pays for them.

When an engine serves the state store (see :func:`virtplane.cli._common.through_engine`),
commands that read or change it run inside the engine instead of here.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence

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
    "state": ("virtplane.cli.state", "register_state", "the state store: schema, copy, leases"),
}

#: entry-point group of command groups added by other distributions
COMMAND_GROUP = "virtplane.commands"

#: built-in groups that never go through an engine: they describe this installation
#: (plugins, config), write files here (plugin new) or run their own scenario (demo)
LOCAL_GROUPS = frozenset({"plugins", "plugin", "config", "demo"})

_GLOBAL_WITH_VALUE = {"--config", "--state"}


def command_entry_points() -> dict[str, str]:
    """Command groups other distributions add: name -> ``module:register``.

    The first distribution declaring a name wins; a name that is a built-in group is
    ignored (built-ins cannot be replaced).
    """
    from virtplane.plugins import _discovery

    found: dict[str, str] = {}
    for ep in _discovery.of_group(COMMAND_GROUP):
        if ep.name not in GROUPS and ep.name != "demo":
            found.setdefault(ep.name, ep.value)
    return found


def _register_external(g: argparse.ArgumentParser, name: str, ref: str) -> None:
    """Import a plugin's command group and let it add its subcommands.

    A group that fails to import or register is reported as a clear error, never a
    traceback: the rest of the CLI must keep working (like a failed plugin).
    """
    module_name, _, func = ref.partition(":")
    try:
        register = getattr(importlib.import_module(module_name), func or "register")
        if getattr(register, "group_parser", False):
            register(g)  # a group without subcommands (``virtplane events --follow``)
        else:
            register(g.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND"))
    except Exception as exc:  # noqa: BLE001 - a broken plugin group is reported, not raised
        from virtplane.errors import PluginError

        raise PluginError(f"command group {name!r} ({COMMAND_GROUP} entry point {ref}) "
                          f"failed to load: {type(exc).__name__}: {exc}") from None


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
    p.add_argument("--async", dest="detach", action="store_true",
                   help="through an engine: submit a long operation as a job, print its id "
                   "and return at once (follow it with 'virtplane job wait ID')")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    selected = _selected_group(argv)
    for name, (module, func, help) in GROUPS.items():
        g = sub.add_parser(name, help=help, description=help)
        if name == selected:
            register = getattr(importlib.import_module(module), func)
            register(g.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND"))
    if selected not in GROUPS:
        # only now: a scan of installed distributions costs more than the whole parser
        for name, ref in sorted(command_entry_points().items()):
            dist_help = f"(added by {ref.partition(':')[0].split('.')[0]})"
            g = sub.add_parser(name, help=dist_help, description=dist_help)
            if name == selected:
                _register_external(g, name, ref)
    q = sub.add_parser("demo", help="run an end-to-end demo scenario")
    q.set_defaults(func=_demo)
    q.add_argument("--uri", default="test:///default",
                   help="libvirt URI (default test:///default; qemu:///system for real QEMU)")
    q.add_argument("--keep", action="store_true", help="keep the demo's state folder")
    return p


def _demo(args: argparse.Namespace) -> int:
    from virtplane import demo

    return demo.run(args)


@contextlib.contextmanager
def _one_line_warnings(debug: bool) -> Iterator[None]:
    """Python warnings (a retired osinfo attribute ...) shown as one line,
    ``virtplane: warning: MESSAGE``, instead of Python's ``file.py:LINE: Category:``
    and a source line; ``--debug`` keeps Python's form. Only the text changes (through
    ``warnings.formatwarning``): where warnings go, and who records them, does not."""
    if debug:
        yield
        return

    def one_line(message: Warning | str, category: type[Warning], filename: str,
                 lineno: int, line: str | None = None) -> str:
        return f"virtplane: warning: {message}\n"

    python_s = warnings.formatwarning
    warnings.formatwarning = one_line
    try:
        yield
    finally:
        warnings.formatwarning = python_s


class _OneLineLog(logging.Handler):
    """Log records of the ``virtplane`` logger tree at WARNING and above (a damaged
    row a listing left out ...) as ``virtplane: warning: MESSAGE`` (``error:`` for
    ERROR and CRITICAL) on stderr, one line like the CLI's own messages. A logger on
    the way up that has its own handler (an engine's JSON log, hook tracing) keeps
    its records: they are not shown twice. ``--debug`` adds a record's traceback."""

    def __init__(self, debug: bool) -> None:
        super().__init__(logging.WARNING)
        self.debug = debug

    def _handled_elsewhere(self, name: str) -> bool:
        logger: logging.Logger | None = logging.getLogger(name)
        while logger is not None:
            if any(h is not self for h in logger.handlers):
                return True
            if logger.name == "virtplane" or not logger.propagate:
                return False
            logger = logger.parent
        return False

    def emit(self, record: logging.LogRecord) -> None:
        if self._handled_elsewhere(record.name):
            return
        try:
            level = "error" if record.levelno >= logging.ERROR else "warning"
            text = f"virtplane: {level}: {record.getMessage()}\n"
            if self.debug and record.exc_info:
                text += logging.Formatter().formatException(record.exc_info) + "\n"
            sys.stderr.write(text)
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging never breaks the command
            self.handleError(record)


@contextlib.contextmanager
def _one_line_log(debug: bool) -> Iterator[None]:
    """:class:`_OneLineLog` on the ``virtplane`` logger for the command's run."""
    handler = _OneLineLog(debug)
    tree = logging.getLogger("virtplane")
    tree.addHandler(handler)
    try:
        yield
    finally:
        tree.removeHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list or os.environ.get("VIRTPLANE_DEBUG") == "1"
    with _one_line_warnings(debug), _one_line_log(debug):
        return _main(args_list, debug)


def _main(args_list: list[str], debug: bool) -> int:
    try:
        parser = build_parser(args_list)
    except VirtplaneError as exc:  # a plugin's command group that does not load
        if debug:
            raise
        print(f"virtplane: error: {exc}", file=sys.stderr)
        return exc.exit_code
    args = parser.parse_args(args_list)
    if not hasattr(args, "func"):
        parser.parse_args([*args_list, "--help"])
    try:
        if args.command not in LOCAL_GROUPS and not getattr(args, "local_only", False):
            from virtplane.cli import _common

            forwarded = _common.through_engine(args, args_list)
            if forwarded is not None:
                return forwarded
            if args.detach:
                from virtplane.errors import InvalidInput

                raise InvalidInput("--async needs a running engine (virtplane engine run); "
                                   "without one, commands run here and wait")
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
