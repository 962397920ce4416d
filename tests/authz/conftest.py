"""A real OpenLDAP slapd on loopback (tools/start-slapd.sh), a small world of two
data centers on libvirt's test driver, and the API served over it.

Directory ``corp`` (dc=example,dc=org): carol and dave (people), group vmusers
(carol). Local users: alice. Passwords: :data:`PW`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import PASSWORD, sdk_available
from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
PW = "user-pass-1"
BIND_PW = "bind-secret-9"
SUFFIX = "dc=example,dc=org"
SEED = f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
o: example
dc: example

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{SUFFIX}
objectClass: organizationalUnit
ou: groups

dn: uid=carol,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: C
userPassword: {PW}

dn: uid=dave,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: dave
cn: Dave
sn: D
userPassword: {PW}

dn: cn=vmusers,ou=groups,{SUFFIX}
objectClass: groupOfNames
cn: vmusers
member: uid=carol,ou=people,{SUFFIX}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Slapd:
    def __init__(self, url: str, folder: Path) -> None:
        self.url = url
        self.folder = folder

    def delete(self, dn: str) -> None:
        """Remove an entry as the directory's root (what an LDAP administrator does)."""
        import ldap3

        conn = ldap3.Connection(ldap3.Server(self.url), f"cn=admin,{SUFFIX}", BIND_PW,
                                auto_bind=True)
        if not conn.delete(dn):
            raise AssertionError(f"cannot delete {dn}: {conn.result}")
        conn.unbind()


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """slapd on a free loopback port with its own cn=config and mdb database."""
    need(shutil.which("slapd") is not None or os.path.exists("/usr/sbin/slapd"),
         "OpenLDAP slapd is not installed (apt-get install slapd ldap-utils)")
    folder = tmp_path_factory.mktemp("slapd")
    pwfile = folder / "root.pw"
    pwfile.write_text(BIND_PW)
    pwfile.chmod(0o600)
    (folder / "seed.ldif").write_text(SEED)
    port = _free_port()
    done = subprocess.run(["bash", str(ROOT / "tools/start-slapd.sh"), str(folder / "run"),
                           str(port), str(pwfile), str(folder / "seed.ldif")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    yield Slapd(f"ldap://127.0.0.1:{port}", folder)
    pid = int((folder / "run" / "slapd.pid").read_text())
    os.kill(pid, 15)


@pytest.fixture
def corp_config(slapd: Slapd, xdg: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """virtplane.toml naming directory corp; its bind password in the environment."""
    folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "virtplane.toml").write_text(
        "[plugin.api_ovirt]\nmax_failed_logins = 3\n\n"
        "[plugin.api_ovirt.directories.corp]\n"
        f'url = "{slapd.url}"\nbase_dn = "{SUFFIX}"\n'
        f'bind_dn = "cn=admin,{SUFFIX}"\nbind_password_env = "CORP_BIND_PW"\n')
    monkeypatch.setenv("CORP_BIND_PW", BIND_PW)


@pytest.fixture
def world2(corp_config: None, manager_factory: Callable[..., Any]) -> Any:
    """dcA/cA/hA with vm1, vm2 and dcB/cB/hB with vm3 (all on test:///default)."""
    m = manager_factory()
    from virtplane import model

    for x in "AB":
        m.datacenters.add(f"dc{x}")
        m.clusters.add(f"c{x}", f"dc{x}")
        m.hosts.add(f"h{x}", f"c{x}", "test:///default")
    for name, cluster in (("vm1", "cA"), ("vm2", "cA"), ("vm3", "cB")):
        m.vms.create(model.VmSpec(name=name, memory_mib=256), cluster)
    return m


@pytest.fixture
def authz_server(world2: Any, tmp_path: Path) -> Iterator[Any]:
    need(sdk_available(), "ovirt-engine-sdk-python is not installed (requirements-dev.txt)")
    from virtplane_api_ovirt import Server, create_app
    from virtplane_api_ovirt.auth import UserStore

    users = UserStore(tmp_path / "api-users.db")
    users.set_password("admin@internal", PASSWORD)
    users.set_password("alice", PW)
    app = create_app(world2, users=users)
    server = Server(app).start()
    yield server
    server.stop()


@pytest.fixture
def login(authz_server: Any) -> Iterator[Callable[..., Any]]:
    """``login(user, password)``: an SDK connection (closed afterwards)."""
    import ovirtsdk4

    made: list[Any] = []

    def open_(user: str = "admin@internal", password: str = PASSWORD) -> Any:
        conn = ovirtsdk4.Connection(url=authz_server.url, username=user, password=password,
                                    timeout=60)
        made.append(conn)
        return conn

    yield open_
    for conn in made:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - a connection whose login failed has nothing to close
            continue
