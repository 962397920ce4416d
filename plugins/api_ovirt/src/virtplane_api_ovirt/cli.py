"""``virtplane-api``: serve the oVirt-compatible API, set passwords, print the CA.

    virtplane-api set-password [USER]      # admin@internal by default; reads stdin or asks
    virtplane-api users                    # list local users
    virtplane-api remove-user USER
    virtplane-api serve [--http] [--host 127.0.0.1] [--port 8443]
    virtplane-api ca                       # the CA certificate (PEM) for clients' ca_file

Errors are one line on stderr and exit status 1 (2 for a bad configuration).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from virtplane.errors import VirtplaneError
from virtplane_api_ovirt.auth import ADMIN, USERS_FILE, UserStore

PKI_DIR = "api-pki"


def _state_dir(args: argparse.Namespace) -> Path:
    """The folder of the state's local files: beside a SQLite file, or a PostgreSQL
    URL's local anchor (never the URL as a path)."""
    from virtplane.state import local_anchor, scheme_of

    location = _location(args)
    if scheme_of(location) != "sqlite":
        return local_anchor(location).parent
    if args.state:
        return Path(args.state).resolve().parent
    from virtplane import config

    return config.load(args.config).state_path.parent


def _location(args: argparse.Namespace) -> str:
    if args.state:
        return str(args.state)
    from virtplane import config
    from virtplane.state import location_of

    return location_of(config.load(args.config))


def _users(args: argparse.Namespace) -> UserStore:
    """The users where the engines read them: the database of a PostgreSQL state
    store (``--users``: an older file copied in once), else the file."""
    location = _location(args)
    path = Path(args.users) if args.users else _state_dir(args) / USERS_FILE
    return UserStore.for_state(location, path)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {args.user}: ")
    if getpass.getpass("again: ") != first:
        raise VirtplaneError("the passwords differ; nothing was changed")
    return first


def cmd_set_password(args: argparse.Namespace) -> int:
    _users(args).set_password(args.user, _read_password(args))
    print(f"password of {args.user} set")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    for name in _users(args).list():
        print(name)
    return 0


def cmd_remove_user(args: argparse.Namespace) -> int:
    _users(args).remove(args.user)
    return 0


def cmd_ca(args: argparse.Namespace) -> int:
    from virtplane_api_ovirt.pki import ca_pem

    sys.stdout.write(ca_pem(_state_dir(args) / PKI_DIR).decode())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from virtplane import Manager, config
    from virtplane_api_ovirt.app import admin_configured, create_app
    from virtplane_api_ovirt.auth import Sessions
    from virtplane_api_ovirt.server import Server

    users = _users(args)
    if not admin_configured(users):
        raise VirtplaneError(f"{ADMIN} has no password yet: run `virtplane-api set-password` "
                             "first")
    pki = _state_dir(args) / PKI_DIR
    manager = Manager(config.load(args.config), state_path=args.state)
    app = create_app(manager, users=users, sessions=Sessions(args.token_lifetime), pki=pki)
    server = Server(app, args.host, args.port, pki=None if args.http else pki,
                    tls_names=args.name, log_level=args.log_level)
    print(f"serving {server.url}", file=sys.stderr)
    try:
        server.run()
    finally:
        manager.close()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="virtplane-api", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="virtplane configuration file")
    p.add_argument("--state", help="state store file (default: the configuration's)")
    p.add_argument("--users", help="user file (default: api-users.db beside the state)")
    sub = p.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("set-password", help="create a local user or set its password")
    sp.add_argument("user", nargs="?", default=ADMIN)
    sp.add_argument("--password-stdin", action="store_true",
                    help="read the password from the first line of stdin")
    sp.set_defaults(func=cmd_set_password)
    sub.add_parser("users", help="list local users").set_defaults(func=cmd_users)
    rp = sub.add_parser("remove-user", help="remove a local user")
    rp.add_argument("user")
    rp.set_defaults(func=cmd_remove_user)
    sub.add_parser("ca", help="print the CA certificate (PEM)").set_defaults(func=cmd_ca)
    sv = sub.add_parser("serve", help="serve the API in the foreground")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8443)
    sv.add_argument("--http", action="store_true", help="plain HTTP (loopback tests only)")
    sv.add_argument("--name", action="append", default=[],
                    help="another host name for the HTTPS certificate (repeatable)")
    sv.add_argument("--token-lifetime", type=float, default=3600.0,
                    help="seconds a login token stays valid (default 3600)")
    sv.add_argument("--log-level", default="warning")
    sv.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        rc: int = args.func(args)
    except VirtplaneError as exc:
        print(f"virtplane-api: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
