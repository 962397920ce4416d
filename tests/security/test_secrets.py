"""Secrets: never in URIs or connections (stored, printed), never percent-decoded.

Before: ``https://oracle:PW@host`` was stored in clear and printed by ``host list``;
``-o password=...`` was stored and printed by ``storage show``; a password
containing ``%41`` failed to authenticate (the HTTP client decoded it to ``A``).
"""

from __future__ import annotations

import json

import pytest

from tests.ovm3.agent import AgentServer, FakeAgent
from virtplane import model
from virtplane.errors import InvalidInput
from virtplane.secrets import password_in_uri, redact_uri

PW = "Tr0ub4dor&3"


@pytest.fixture
def m(manager_factory):
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    return m


@pytest.mark.parametrize("uri", [
    f"https://oracle:{PW}@192.0.2.1:8899",
    f"qemu+ssh://root:{PW}@kvm1/system",
    "https://oracle:@192.0.2.1:8899",  # an empty password is a password field too
])
def test_a_host_uri_with_a_password_is_refused(m, uri):
    with pytest.raises(InvalidInput) as info:
        m.hosts.add("h", "cl", uri, driver="ovm3" if uri.startswith("https") else "kvm")
    message = str(info.value)
    assert PW not in message and "***" in message
    assert "password_file" in message and "password_env" in message
    assert m.hosts.list() == []


def test_host_list_never_prints_a_stored_password(m, cli, tmp_path):
    """A record stored before the rule (written here straight into the store)."""
    m.store.add(model.Host(name="old", cluster_id=m.clusters.get("cl").id, driver="ovm3",
                           uri=f"https://oracle:{PW}@192.0.2.1:8899"))
    for argv in (["host", "list"], ["host", "list", "--json"]):
        rc, out, err = cli("--state", str(tmp_path / "state.db"), *argv)
        assert rc == 0, err
        assert PW not in out and "oracle:***@192.0.2.1" in out


@pytest.mark.parametrize("conn", [
    {"password": PW},
    {"Password": PW},
    {"api_token": PW},
    {"uri": f"smispy+ssl://admin:{PW}@array1:5989"},
])
def test_a_storage_connection_holding_a_secret_is_refused(m, tmp_path, conn):
    conn = {"path": str(tmp_path / "d"), **conn}
    with pytest.raises(InvalidInput) as info:
        m.storage.add("sd", "localfs", "dc", conn)
    assert PW not in str(info.value) and "password_file" in str(info.value)
    assert m.storage.list() == [] and not (tmp_path / "d").exists()


def test_the_cli_refuses_a_password_option(m, cli, tmp_path):
    rc, out, err = cli("--state", str(tmp_path / "state.db"), "storage", "add", "sd",
                       "--type", "localfs", "--path", str(tmp_path / "d"), "--dc", "dc",
                       "-o", f"password={PW}")
    assert rc != 0 and PW not in out + err and "Traceback" not in err
    rc, out, _err = cli("--state", str(tmp_path / "state.db"), "storage", "list", "--json")
    assert PW not in out and json.loads(out) == []


def test_storage_show_hides_a_stored_secret(m, cli, tmp_path):
    dom = m.storage.add("sd", "localfs", "dc", {"path": str(tmp_path / "d")})
    dom.connection["password"] = PW  # as an old record could hold it
    m.store.update(dom)
    rc, out, err = cli("--state", str(tmp_path / "state.db"), "storage", "show", "sd")
    assert rc == 0, err
    assert PW not in out and json.loads(out)["connection"]["password"] == "***"


def test_password_file_and_env_names_are_allowed(m, tmp_path):
    """Where a password is, not the password: fine to store and show."""
    from virtplane.secrets import check_connection

    check_connection({"password_file": "/etc/virtplane/lsm.pw", "password_env": "X",
                      "uri": "smispy+ssl://admin@array1:5989"}, "d", "somewhere")


def test_a_percent_in_a_password_is_sent_as_is(monkeypatch, manager_factory):
    """The fake agent checks the Basic auth header against the exact password."""
    odd = "p%41ss%"
    monkeypatch.setenv("VIRTPLANE_OVM3_PASSWORD", odd)
    agent = AgentServer(FakeAgent("127.0.0.2", "ovs1"), password=odd)
    with agent:
        m = manager_factory()
        m.datacenters.add("dc")
        m.clusters.add("cl", "dc")
        host = m.hosts.add("ovs1", "cl", agent.url(), driver="ovm3")
        assert host.status == model.HostStatus.UP


def test_redaction_helpers():
    assert redact_uri(f"https://oracle:{PW}@h:1/x") == "https://oracle:***@h:1/x"
    assert redact_uri("qemu:///system") == "qemu:///system"
    assert redact_uri("http://[::1") == "http://[::1"  # not a URI: left alone
    assert not password_in_uri("https://oracle@h") and password_in_uri("https://a:b@h")


@pytest.mark.parametrize("type_, conn", [
    ("localfs", {"path": "/x", "pasword": "typo"}),
    ("posixfs", {"spec": "/dev/null", "vfs_type": "tmpfs", "user": "x"}),
    ("nfs", {"spec": "nfs1:/export", "credentials": "x"}),
    ("libsm", {"uri": "sim://", "pool": "p", "initiator": "iqn.2001-04.com.x:h", "key": "x"}),
])
def test_each_driver_declares_its_connection_fields(m, type_, conn):
    """Unknown keys are refused (with the allowed ones named), never stored."""
    extra = sorted(set(conn) - {"path", "spec", "vfs_type", "uri", "pool", "initiator"})
    with pytest.raises(InvalidInput, match=f"has no option {extra[0]!r}; allowed: "):
        m.storage.add("sd", type_, "dc", conn)
    assert m.storage.list() == []


def test_a_password_in_an_option_list_value_is_refused(m, cli, tmp_path):
    rc, out, err = cli("--state", str(tmp_path / "state.db"), "storage", "add", "arr",
                       "--type", "libsm", "--dc", "dc", "-o",
                       f"uri=smispy+ssl://admin:{PW}@array1:5989", "-o", "pool=p", "-o",
                       "initiator=iqn.2001-04.com.x:h")
    assert rc != 0 and PW not in out + err and "admin:***@array1" in err
    assert "VIRTPLANE_LSM_PASSWORD" in err
