"""What the API keeps itself (descriptions, comments, tags, SSH keys: extras.py) lives
in the state store, so every engine serving the API over one store answers the same
(issue 20: several engines behind a load balancer), on SQLite and on PostgreSQL;
``virtplane state copy`` carries it; an older version's ``api-extras.db`` moves
into the store once."""

from __future__ import annotations

import base64
import json
import sqlite3
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api.conftest import PASSWORD
from tests.conftest import need

ADMIN = ("admin@internal", PASSWORD)


def _public_key(seed: int) -> str:
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + bytes([seed]) * 32
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} k{seed}@example.com"


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """One store (a file, or a fresh PostgreSQL schema) several engines share."""
    if request.param == "sqlite":
        yield str(tmp_path / "state.db")
        return
    from tests.state.conftest import PgSchemas, postgres_problem

    problem = postgres_problem()
    need(problem is None, problem or "")
    schemas = PgSchemas()
    yield schemas.new()
    schemas.drop_all()


@pytest.fixture
def engines(tmp_path: Path, users: Any) -> Iterator[Callable[[str], Any]]:
    """``start(location)`` -> (Manager, API server): one more engine serving the API
    over the store at ``location`` (all share one user file, as copies of it would)."""
    from virtplane import Manager, config
    from virtplane_api_ovirt import Server, create_app

    made: list[tuple[Any, Any]] = []

    def start(location: str) -> Any:
        m = Manager(config.load(), state_path=location)
        app = create_app(m, users=users)
        server = Server(app).start()
        server.api = app.state.api
        made.append((m, server))
        return m, server

    yield start
    for m, server in made:
        server.stop()
        m.close()


def _session() -> requests.Session:
    s = requests.Session()
    s.auth = ADMIN
    s.headers.update({"Accept": "application/json"})
    return s


def _ok(reply: requests.Response) -> Any:
    assert reply.status_code in (200, 201), reply.text
    return reply.json() if reply.content else None


def _admin_id(s: requests.Session, url: str) -> str:
    found = _ok(s.get(f"{url}/users", timeout=30))["user"]
    return next(str(u["id"]) for u in found if u["principal"] == "admin")


def _write_through(s: requests.Session, url: str, cluster_id: str) -> tuple[str, str]:
    """Describe the cluster, add a tag and an SSH key through one engine: (tag id,
    key id)."""
    _ok(s.put(f"{url}/clusters/{cluster_id}", timeout=30,
              json={"description": "shared one", "comment": "seen everywhere"}))
    tag = _ok(s.post(f"{url}/tags", json={"name": "prod", "description": "production"},
                     timeout=30))
    key = _ok(s.post(f"{url}/users/{_admin_id(s, url)}/sshpublickeys", timeout=30,
                     json={"content": _public_key(1)}))
    return str(tag["id"]), str(key["id"])


def _seen_through(s: requests.Session, url: str, cluster_id: str) -> tuple[Any, ...]:
    cl = _ok(s.get(f"{url}/clusters/{cluster_id}", timeout=30))
    tags = {t["name"]: t.get("description") for t in _ok(s.get(f"{url}/tags", timeout=30))["tag"]}
    keys = _ok(s.get(f"{url}/users/{_admin_id(s, url)}/sshpublickeys", timeout=30))
    return (cl.get("description"), cl.get("comment"), tags,
            [k["content"] for k in keys.get("ssh_public_key", [])])


def test_two_engines_on_one_store_see_the_same_extras(shared: str, engines: Any) -> None:
    from virtplane import model

    m1, a = engines(shared)
    m2, b = engines(shared)
    m1.datacenters.add("dc1")
    cl = m1.clusters.add("c1", "dc1")
    s = _session()
    tag_id, key_id = _write_through(s, a.url, cl.id)
    expected = ("shared one", "seen everywhere", {"root": "root", "prod": "production"},
                [_public_key(1)])
    assert _seen_through(s, b.url, cl.id) == expected
    assert _seen_through(s, a.url, cl.id) == expected

    # changes through the other engine come back, and so do removals
    _ok(s.put(f"{b.url}/clusters/{cl.id}", json={"description": ""}, timeout=30))
    _ok(s.put(f"{b.url}/tags/{tag_id}", json={"description": "live"}, timeout=30))
    admin = _admin_id(s, b.url)
    _ok(s.put(f"{b.url}/users/{admin}/sshpublickeys/{key_id}", timeout=30,
              json={"content": _public_key(2)}))
    assert _seen_through(s, a.url, cl.id) == (
        "", "seen everywhere", {"root": "root", "prod": "live"}, [_public_key(2)])
    _ok(s.delete(f"{a.url}/tags/{tag_id}", timeout=30))
    _ok(s.delete(f"{a.url}/users/{admin}/sshpublickeys/{key_id}", timeout=30))
    assert _seen_through(s, b.url, cl.id)[2:] == ({"root": "root"}, [])

    # the same name cannot be taken twice through two engines
    _ok(s.post(f"{a.url}/tags", json={"name": "once"}, timeout=30))
    twice = s.post(f"{b.url}/tags", json={"name": "once"}, timeout=30)
    assert twice.status_code == 409 and "already exists" in twice.text

    # removing the object through the API drops its attributes from the store
    assert [x.target_id for x in m2.store.list(model.Annotation)
            if x.namespace == "ovirt"] == [cl.id]
    _ok(s.delete(f"{b.url}/clusters/{cl.id}", timeout=30))
    assert [x for x in m1.store.list(model.Annotation) if x.namespace == "ovirt"] == []

    # removed through the core (the CLI) instead: left behind, then pruned by the
    # next API start
    c2 = m1.clusters.add("c2", "dc1")
    _ok(s.put(f"{a.url}/clusters/{c2.id}", json={"comment": "soon gone"}, timeout=30))
    m1.clusters.remove(c2.id)
    assert {x.target_id for x in m1.store.list(model.Annotation)} >= {c2.id}
    engines(shared)
    assert c2.id not in {x.target_id for x in m1.store.list(model.Annotation)}


def test_state_copy_carries_the_extras(tmp_path: Path, shared: str, engines: Any,
                                       cli: Any) -> None:
    source = str(tmp_path / "source.db")
    m, a = engines(source)
    m.datacenters.add("dc1")
    cl = m.clusters.add("c1", "dc1")
    s = _session()
    _write_through(s, a.url, cl.id)
    expected = _seen_through(s, a.url, cl.id)
    rc, out, err = cli("state", "copy", source, shared, "--json")
    assert (rc, err) == (0, ""), out
    groups = {g["group"]: g for g in json.loads(out)["groups"]}
    assert groups["annotation"]["copied"] == 3  # the cluster, the tag, the keys
    assert groups["annotation"]["ok"]
    rc, out, err = cli("state", "check", shared)  # the kind is known: rows parse
    assert (rc, err) == (0, "") and out.rstrip().endswith(": ok"), out
    _, b = engines(shared)  # an engine over the copy answers the same
    assert _seen_through(s, b.url, cl.id) == expected


def _legacy(path: Path, rows: dict[str, list[tuple[str, ...]]]) -> None:
    """An ``api-extras.db`` as earlier versions wrote it."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE extras (object_id TEXT NOT NULL, key TEXT NOT NULL, "
                 "value TEXT NOT NULL, PRIMARY KEY (object_id, key))")
    conn.execute("CREATE TABLE tags (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
                 "description TEXT NOT NULL, parent_id TEXT NOT NULL)")
    conn.execute("CREATE TABLE ssh_keys (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, "
                 "content TEXT NOT NULL)")
    for table, values in rows.items():
        for row in values:
            conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", row)
    conn.commit()
    conn.close()


def test_an_older_api_extras_db_moves_into_the_store(tmp_path: Path, engines: Any) -> None:
    from virtplane import Manager, config, model
    from virtplane_api_ovirt.extras import EXTRAS_FILE, Extras

    state = tmp_path / "state.db"
    m = Manager(config.load(), state_path=str(state))
    m.datacenters.add("dc1")
    cl = m.clusters.add("c1", "dc1")
    Extras(m.store).set(cl.id, "comment", "written since")  # the store's value wins
    m.close()
    legacy = tmp_path / EXTRAS_FILE
    root = "00000000-0000-0000-0000-000000000001"
    _legacy(legacy, {"extras": [(cl.id, "description", "from the file"),
                                (cl.id, "comment", "older comment")],
                     "tags": [("7c1d0d0e-0000-4000-8000-000000000001", "prod", "p", root)],
                     "ssh_keys": [("k-1", "u-1", _public_key(3))]})
    m2, a = engines(str(state))
    assert not legacy.exists() and (tmp_path / (EXTRAS_FILE + ".migrated")).is_file()
    extras = a.api.extras
    assert extras.get(cl.id, "comment") == "written since"
    # a cluster's description is the model's since; the API moved the file's there
    assert m2.store.get(model.Cluster, cl.id).description == "from the file"
    assert extras.get(cl.id, "description") == ""
    assert [(t.name, t.description, t.parent_id) for t in extras.tags()] == [("prod", "p", root)]
    assert extras.ssh_keys("u-1") == [("k-1", _public_key(3))]
    # a second engine over the same store sees them, and nothing is migrated twice
    m3, b = engines(str(state))
    assert m3.store.get(model.Cluster, cl.id).description == "from the file"
    assert b.api.extras.get(cl.id, "comment") == "written since"
    assert not legacy.exists()


def test_an_unreadable_api_extras_db_is_a_clear_error(tmp_path: Path) -> None:
    from virtplane import Manager, config
    from virtplane.errors import StateError
    from virtplane_api_ovirt.extras import EXTRAS_FILE, Extras

    m = Manager(config.load(), state_path=str(tmp_path / "state.db"))
    try:
        (tmp_path / EXTRAS_FILE).write_bytes(b"not a database at all" * 100)
        with pytest.raises(StateError, match="cannot read .*api-extras.db.*move it away"):
            Extras(m.store).migrate(tmp_path / EXTRAS_FILE)
        assert (tmp_path / EXTRAS_FILE).is_file()
    finally:
        m.close()
