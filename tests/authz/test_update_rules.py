"""The rules of the update services, tags, MAC pools and SSH keys: a user keeps its own
SSH keys and no one else's (and they go with the user), everyone reads tags and MAC
pools, only SuperUser makes tags, and an update needs its action group on the object
(StorageAdmin edits a storage domain; UserRole does not)."""

from __future__ import annotations

import base64
import struct
from typing import Any

import requests

from tests.api.conftest import PASSWORD
from tests.api.conftest import serve as serve  # fixtures
from tests.api.conftest import users as users
from tests.api.conftest import world as world
from virtplane_api_ovirt.authz.model import Kind

PW = "rules-pass-12"
JSON = {"Accept": "application/json", "Content-Type": "application/json"}


def _key(comment: str) -> str:
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + b"k" * 32
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


def test_rules_of_the_newer_services(world: Any, users: Any, serve: Any) -> None:
    for name in ("alice", "bob", "storer"):
        users.set_password(name, PW)
    store = users.authz.store
    ix = store.index()
    sd = world.storage.get("data1").id
    store.add_permissions([
        (ix.user("storer").id, "user", ix.role("StorageAdmin").id, Kind.STORAGEDOMAIN, sd),
        (ix.user("alice").id, "user", ix.role("UserRole").id, Kind.STORAGEDOMAIN, sd)])
    server = serve()
    url = server.url
    alice, bob, admin = ("alice", PW), ("bob", PW), ("admin@internal", PASSWORD)

    def call(method: str, path: str, auth: tuple[str, str],
             body: dict[str, Any] | None = None) -> requests.Response:
        return requests.request(method, url + path, auth=auth, headers=JSON, json=body,
                                timeout=10)

    alice_id, bob_id = ix.user("alice").id, ix.user("bob").id
    mine = call("POST", f"/users/{alice_id}/sshpublickeys", alice, {"content": _key("a")})
    assert mine.status_code == 201, mine.text
    assert call("GET", f"/users/{alice_id}/sshpublickeys", alice).status_code == 200
    theirs = call("POST", f"/users/{bob_id}/sshpublickeys", alice, {"content": _key("x")})
    assert theirs.status_code == 403 and "MANIPULATE_USERS" in theirs.text
    assert call("GET", f"/users/{alice_id}/sshpublickeys", bob).status_code == 403

    assert call("GET", "/tags", alice).status_code == 200
    assert call("GET", "/macpools", alice).status_code == 200
    made = call("POST", "/tags", alice, {"name": "t1"})
    assert made.status_code == 403 and "CONFIGURE_ENGINE" in made.text
    assert call("POST", "/tags", admin, {"name": "t1"}).status_code == 201

    edit = {"description": "edited"}
    refused = call("PUT", f"/storagedomains/{sd}", alice, edit)
    assert refused.status_code == 403 and "EDIT_STORAGE_DOMAIN_CONFIGURATION" in refused.text
    done = call("PUT", f"/storagedomains/{sd}", ("storer", PW), edit)
    assert done.status_code == 200, done.text
    assert call("GET", f"/storagedomains/{sd}", admin).json()["description"] == "edited"

    # a removed user's keys go with it: a user of the same name added again has none
    assert call("DELETE", f"/users/{alice_id}", admin).status_code == 200
    users.set_password("alice", PW)
    again = store.index().user("alice").id
    assert call("GET", f"/users/{again}/sshpublickeys", alice).json() == {}
    extras = server._server.config.app.state.api.extras  # the API's own record
    assert extras.ssh_keys(alice_id) == []
