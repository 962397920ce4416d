"""``virtplane plugins ...`` and ``virtplane config ...``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from virtplane._version import PLUGIN_API_VERSION, __version__
from virtplane.cli._common import emit, leaf, manager


def cmd_plugins_list(args: argparse.Namespace) -> int:
    with manager(args) as m:
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

    emit(args, records, text)
    return 0


def cmd_plugins_show(args: argparse.Namespace) -> int:
    with manager(args) as m:
        data = m.plugin(args.name).as_dict()

    def text() -> None:
        for key in ("name", "distribution", "version", "kinds", "plugin_api", "adapter",
                    "status", "reason", "entry_points", "hooks", "deprecated"):
            value = data[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            elif isinstance(value, list):
                value = ("; " if key == "deprecated" else ", ").join(value)
            elif value is None:
                value = "-"
            print(f"{key:13} {value}")

    emit(args, data, text)
    return 0


def cmd_plugins_doctor(args: argparse.Namespace) -> int:
    """Which installed plugins do not fit this core, and why (exit 1 when any).

    Deprecations (a hook argument on its way out, a plugin written for plugin
    API 1.x running through the adapter) are ``[warn]`` lines: they work today
    and stop working at the next major, so they do not fail the check.
    """
    from virtplane.plugins import _compat

    with manager(args) as m:
        records = m.plugin_records()
        unknown_tables = sorted(set(m.config.plugin_tables) - {r.name for r in records})
        os_errors, os_warnings = _osinfo_problems(m)
    bad = warn = 0
    adapters = ", ".join(_compat.LEGACY_APIS)
    print(f"virtplane {__version__}, plugin API {PLUGIN_API_VERSION}"
          + (f" (plugins for {adapters} run through adapters)" if adapters else ""))
    for rec in records:
        problems = [] if rec.builtin else _compat.requirement_problems(rec.dist)
        status = "failed" if problems else rec.status
        mark = {"loaded": "ok", "disabled": "--", "failed": "FAIL"}[status]
        line = f"[{mark:4}] {rec.name} ({rec.dist} {rec.version})"
        reasons = [r for r in (rec.reason, *problems) if r]
        if reasons:
            line += ": " + "; ".join(reasons)
        print(line)
        bad += status == "failed"
        for use in rec.deprecated:
            print(f"[warn] {rec.name}: deprecated {use}")
            warn += 1
    for name in unknown_tables:
        print(f"[FAIL] config has [plugin.{name}] but no plugin named {name!r} is installed")
        bad += 1
    for problem in _compat.unknown_groups():
        print(f"[FAIL] {problem}")
        bad += 1
    for line in os_errors:
        print(f"[FAIL] osinfo: {line}")
    for line in os_warnings:
        print(f"[warn] osinfo: {line}")
    bad += len(os_errors)
    summary = f"{bad} problem(s)" if bad else "no problems"
    print(summary + (f", {warn} deprecation warning(s)" if warn else "")
          + (f", {len(os_warnings)} osinfo warning(s)" if os_warnings else ""))
    return 1 if bad else 0


def _osinfo_problems(m: Any) -> tuple[list[str], list[str]]:
    """(errors, warnings) of the OS repository as doctor lines: every error of the
    osinfo files (each with its file and line: ``arch list`` and ``vm create`` fail on
    them), then entries dropped for a missing parent and retired attributes accepted
    (they load; the administrator may want to update the file)."""
    import warnings

    from virtplane import osinfo

    with warnings.catch_warnings():
        # listed below as [warn] lines instead of Python warnings
        warnings.simplefilter("ignore", osinfo.RetiredAttributeWarning)
        try:
            repo = m.arch.osinfo
        except osinfo.OsinfoError as exc:
            return [str(p) for p in exc.problems], []
    return [], ([f"dropped: {p}" for p in repo.dropped]
                + [f"retired: {p}" for p in repo.retired])


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

    emit(args, data, text)
    return 0


def cmd_plugin_new(args: argparse.Namespace) -> int:
    from virtplane._scaffold import new_plugin

    target = new_plugin(args.name, args.kind, args.dir)
    print(f"{args.kind} plugin {args.name!r} written to {target}")
    print(f"next: cd {target} && python -m venv .venv && .venv/bin/pip install -e '.[test]' "
          "&& .venv/bin/pytest")
    return 0


def register_plugin(g: Any) -> None:
    from virtplane._scaffold import KINDS

    q = leaf(g, "new", cmd_plugin_new, "write a plugin project: pyproject with entry points, "
             "a working driver, tests using the conformance kit, README")
    q.add_argument("name", help="the plugin's entry-point name (what administrators enable)")
    q.add_argument("--kind", required=True, choices=list(KINDS))
    q.add_argument("--dir", default=".", help="folder to create virtplane-NAME in (default .)")


def register_plugins(g: Any) -> None:
    leaf(g, "list", cmd_plugins_list, "list plugins and their status", True)
    leaf(g, "show", cmd_plugins_show, "show one plugin", True).add_argument("name")
    leaf(g, "doctor", cmd_plugins_doctor, "check plugins; non-zero exit on problems")


def register_config(g: Any) -> None:
    leaf(g, "show", cmd_config_show, "effective config and where each value came from", True)
