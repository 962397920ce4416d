"""HTTPS with the API's own CA (the SDK verifying it through ca_file), the command line,
and where users and their hashes live."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import PASSWORD


def test_sdk_over_https_with_the_printed_ca(sdk: Any, serve: Any, tmp_path: Path,
                                            world: Any) -> None:
    state = world.context.paths.state
    server = serve(tls_pki=state.parent / "api-pki")
    assert server.url.startswith("https://127.0.0.1:")
    out = subprocess.run([sys.executable, "-m", "virtplane_api_ovirt.cli", "--state",
                          str(state), "ca"], check=True, capture_output=True, text=True).stdout
    assert out.startswith("-----BEGIN CERTIFICATE-----")
    ca = tmp_path / "ca.pem"
    ca.write_text(out)
    conn = sdk.Connection(url=server.url, username="admin@internal", password=PASSWORD,
                          ca_file=str(ca), timeout=30)
    try:
        assert conn.test(raise_exception=True)
    finally:
        conn.close()
    other = tmp_path / "other-ca"
    subprocess.run([sys.executable, "-m", "virtplane_api_ovirt.cli", "--state",
                    str(other / "state.db"), "ca"], check=True, capture_output=True)
    stranger = sdk.Connection(url=server.url, username="admin@internal", password=PASSWORD,
                              ca_file=str(other / "api-pki" / "ca.pem"), timeout=30)
    with pytest.raises(sdk.Error):
        stranger.test(raise_exception=True)
    stranger.close(logout=False)
    assert stat.S_IMODE(os.stat(state.parent / "api-pki" / "ca.key").st_mode) == 0o600


def test_set_password_stores_an_argon2_hash(tmp_path: Path) -> None:
    import sqlite3

    from virtplane_api_ovirt.auth import UserStore

    state = tmp_path / "s" / "state.db"
    run = [sys.executable, "-m", "virtplane_api_ovirt.cli", "--state", str(state)]
    done = subprocess.run([*run, "set-password", "--password-stdin"], input="long-enough\n",
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    short = subprocess.run([*run, "set-password", "bob", "--password-stdin"], input="x\n",
                           capture_output=True, text=True)
    assert short.returncode == 1 and "at least 8" in short.stderr and "Traceback" not in \
        short.stderr
    users_file = state.parent / "api-users.db"
    assert stat.S_IMODE(os.stat(users_file).st_mode) == 0o600
    with sqlite3.connect(users_file) as db:
        (digest,) = db.execute("SELECT hash FROM users WHERE name='admin@internal'").fetchone()
    assert digest.startswith("$argon2id$") and "long-enough" not in digest
    store = UserStore(users_file)
    assert store.verify("admin", "long-enough") == "admin@internal"
    assert store.verify("admin@internal", "wrong-one") is None
    assert store.verify("ghost@internal", "long-enough") is None
    assert store.verify("admin@ldap", "long-enough") is None


def test_serve_refuses_without_an_admin_password(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "virtplane_api_ovirt.cli", "--state",
                           str(tmp_path / "state.db"), "serve", "--http", "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "set-password" in done.stderr
