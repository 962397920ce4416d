"""``/users/{id}/sshpublickeys``: a user's SSH public keys (oVirt hands them to VMs'
cloud-init and the serial console proxy; virtplane only keeps them).

A key must be one OpenSSH public key line, ``TYPE BASE64 [COMMENT]``, whose
decoded blob names the same type, as oVirt checks it (its engine refuses
``ssh-rsa AAA...`` placeholders with "Invalid public SSH key"). Kept by the API
(:mod:`virtplane_api_ovirt.extras`), by user id.
"""

from __future__ import annotations

import base64
import binascii
import struct
import uuid

from virtplane.errors import AlreadyExists, InvalidInput, NotFound
from virtplane_api_ovirt import parse
from virtplane_api_ovirt.base import BASE, Call, Reply, Route, collection, entity, ref, removed
from virtplane_api_ovirt.render import Node

KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ssh-dss", "ecdsa-sha2-nistp256",
             "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
             "sk-ecdsa-sha2-nistp256@openssh.com")
MAX_KEY = 16384


def checked(content: str | None) -> str:
    """A public key line, validated (400 naming the problem otherwise)."""
    line = (content or "").strip()
    if not line:
        raise InvalidInput("an SSH public key needs its <content> (one OpenSSH key line)")
    if len(line) > MAX_KEY or "\n" in line:
        raise InvalidInput(f"an SSH public key is one line of at most {MAX_KEY} characters")
    parts = line.split(None, 2)
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise InvalidInput("invalid public SSH key: it must start with its type ("
                           + ", ".join(KEY_TYPES) + ") and the base64 key")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        named = blob[4:4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError):
        raise InvalidInput("invalid public SSH key: the key is not base64 of an SSH "
                           "key blob") from None
    if named != parts[0]:
        raise InvalidInput(f"invalid public SSH key: the blob is a {named!r} key, the line "
                           f"says {parts[0]!r}")
    return line


def _user_id(call: Call) -> str:
    return call.api.authz.store.index().user(call.params["id"]).id


def key_node(user_id: str, key_id: str, content: str) -> Node:
    return {"href": f"{BASE}/users/{user_id}/sshpublickeys/{key_id}", "id": key_id,
            "content": content, "user": ref("users", user_id)}


def _key(call: Call) -> tuple[str, str]:
    user_id = _user_id(call)
    for key_id, content in call.api.extras.ssh_keys(user_id):
        if key_id == call.params["key"]:
            return user_id, content
    raise NotFound(f"the user has no SSH public key {call.params['key']!r}")


def list_keys(call: Call) -> Reply:
    user_id = _user_id(call)
    return collection("ssh_public_keys", "ssh_public_key",
                      [key_node(user_id, k, c) for k, c in call.api.extras.ssh_keys(user_id)])


def add_key(call: Call) -> Reply:
    user_id = _user_id(call)
    content = checked(parse.text(call.need_body("ssh_public_key"), "content"))
    if any(c == content for _, c in call.api.extras.ssh_keys(user_id)):
        raise AlreadyExists("the user already has this SSH public key")
    key_id = str(uuid.uuid4())
    call.api.extras.put_ssh_key(key_id, user_id, content)
    return entity("ssh_public_key", key_node(user_id, key_id, content), status=201)


def get_key(call: Call) -> Reply:
    user_id, content = _key(call)
    return entity("ssh_public_key", key_node(user_id, call.params["key"], content))


def update_key(call: Call) -> Reply:
    user_id, _ = _key(call)
    content = checked(parse.text(call.need_body("ssh_public_key"), "content"))
    call.api.extras.put_ssh_key(call.params["key"], user_id, content)
    return entity("ssh_public_key", key_node(user_id, call.params["key"], content))


def remove_key(call: Call) -> Reply:
    _key(call)
    call.api.extras.drop_ssh_key(call.params["key"])
    return removed()


ROUTES: list[Route] = [
    ("GET", "/users/{id}/sshpublickeys", list_keys),
    ("POST", "/users/{id}/sshpublickeys", add_key),
    ("GET", "/users/{id}/sshpublickeys/{key}", get_key),
    ("PUT", "/users/{id}/sshpublickeys/{key}", update_key),
    ("DELETE", "/users/{id}/sshpublickeys/{key}", remove_key),
]
