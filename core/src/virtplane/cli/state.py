"""``virtplane state ...``: the state store itself (backend, schema, copy, leases).

These commands always run here, never inside an engine: they act on the database
an engine works on (migrating it, copying it elsewhere), so an engine must not be
the one doing it. A LOCATION is a path, ``sqlite:///path`` or ``postgresql://...``;
when omitted, it is ``--state``, else the configuration's ``[state] url`` (or path).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from virtplane.cli._common import emit, leaf, local_only

_LOCATION_HELP = ("the store: a path, sqlite:///path or postgresql://... (default: --state, "
                  "else [state] url in the configuration)")


def _location(args: argparse.Namespace, given: str | None = None) -> str:
    if given:
        return given
    if args.state:
        return str(args.state)
    from virtplane import config
    from virtplane.state import location_of

    return location_of(config.load(args.config))


def _open(location: str, readonly: bool | None = None) -> Any:
    from virtplane.state import StateStore

    return StateStore(location, readonly=readonly)


def cmd_show(args: argparse.Namespace) -> int:
    from virtplane.state import SCHEMA_VERSION
    from virtplane.state._copy import checksums

    store = _open(_location(args, args.location))
    try:
        sums = checksums(store)
        data = {"location": store.location, "backend": store.backend,
                "schema": store.schema_version(), "schema_supported": SCHEMA_VERSION,
                "readonly": store.readonly,
                "groups": {g: s.count for g, s in sums.items()}}
    finally:
        store.close()

    def text() -> None:
        print(f"location  {data['location']}")
        print(f"backend   {data['backend']}{' (read-only)' if data['readonly'] else ''}")
        print(f"schema    {data['schema']} (this virtplane: {SCHEMA_VERSION})")
        for group, count in data["groups"].items():
            print(f"{group:9} {count}")

    emit(args, data, text)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from virtplane.state import migrate, redact

    location = _location(args, args.location)
    before, after = migrate(location)
    if before == after:
        print(f"state store {redact(location)} is at schema version {after}: nothing to do")
    elif before == 0:
        print(f"state store {redact(location)} created at schema version {after}")
    else:
        print(f"state store {redact(location)} migrated from schema version {before} to "
              f"{after}")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    """Copy SRC into the empty DST; print every group's counts and checksums."""
    from virtplane.state._copy import copy

    source = _open(args.source)
    dest = _open(args.dest, readonly=False)
    t0 = time.monotonic()
    try:
        lines = copy(source, dest)
    finally:
        source.close()
        dest.close()
    took = time.monotonic() - t0
    data = {"source": source.location, "destination": dest.location,
            "seconds": round(took, 3),
            "groups": [{"group": line.group, "source": line.source.count,
                        "copied": line.copied.count, "sha256": line.source.digest,
                        "sha256_copied": line.copied.digest, "ok": line.ok}
                       for line in lines]}

    def text() -> None:
        print(f"copied {source.location} -> {dest.location}")
        print(f"{'GROUP':16} {'SOURCE':>8} {'COPIED':>8}  SHA-256 (first 16 hex digits)")
        for line in lines:
            print(f"{line.group:16} {line.source.count:8} {line.copied.count:8}  "
                  f"{line.copied.digest[:16]}  {'ok' if line.ok else 'DIFFERENT'}")
        total = sum(line.copied.count for line in lines)
        print(f"{total} rows in {len(lines)} groups copied in {took:.2f} s; every count and "
              "checksum matches")

    emit(args, data, text)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    store = _open(_location(args, args.location), readonly=True)
    try:
        problems = store.check()
    finally:
        store.close()
    for p in problems:
        print(p)
    if problems:
        print(f"state store {store.location}: {len(problems)} problem(s)")
        return 1
    print(f"state store {store.location}: ok")
    return 0


def cmd_leases(args: argparse.Namespace) -> int:
    store = _open(_location(args, args.location), readonly=True)
    try:
        leases = store.list_leases()
    finally:
        store.close()
    rows = [{"resource": lease.resource, "holder": lease.holder or None,
             "epoch": lease.epoch, "remaining": round(lease.remaining(), 1)}
            for lease in leases]

    def text() -> None:
        print(f"{'RESOURCE':38} {'HOLDER':20} {'EPOCH':>6}  REMAINING")
        for r in rows:
            left = r["remaining"]
            state = f"{left} s" if r["holder"] and left > 0 else (
                "released" if not r["holder"] else "expired")
            print(f"{r['resource']:38} {r['holder'] or '-':20} {r['epoch']:6}  {state}")

    emit(args, rows, text)
    return 0


def register_state(g: Any) -> None:
    """The ``state`` group's subcommands (all local: see the module doc)."""
    q = local_only(leaf(g, "show", cmd_show, "backend, schema version and row counts", True))
    q.add_argument("location", nargs="?", help=_LOCATION_HELP)
    q = local_only(leaf(g, "migrate", cmd_migrate,
                        "create or upgrade a store's schema (Alembic on PostgreSQL)"))
    q.add_argument("location", nargs="?", help=_LOCATION_HELP)
    q = local_only(leaf(g, "copy", cmd_copy, "copy a store (SQLite) into an empty one "
                        "(PostgreSQL), comparing counts and checksums", True))
    q.add_argument("source", metavar="SRC", help="the store to copy (path or URL)")
    q.add_argument("dest", metavar="DST", help="the empty store to copy into (path or URL)")
    q = local_only(leaf(g, "check", cmd_check, "integrity check (exit 1 on problems)"))
    q.add_argument("location", nargs="?", help=_LOCATION_HELP)
    q = local_only(leaf(g, "leases", cmd_leases, "host and leader leases (engines)", True))
    q.add_argument("location", nargs="?", help=_LOCATION_HELP)
