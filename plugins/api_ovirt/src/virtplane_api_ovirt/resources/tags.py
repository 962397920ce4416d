"""``/tags``: oVirt's tag tree, under the root tag every engine has.

virtplane has no tags; the API keeps them itself (:mod:`virtplane_api_ovirt.extras`).
A tag has a name (unique), a description and a parent (the root when none is
named); removing a tag removes the tags under it, as oVirt does. Tagging objects
(``/vms/{id}/tags``) is not supported yet: those lists stay empty.
"""

from __future__ import annotations

import uuid

from virtplane.errors import AlreadyExists, InvalidInput, InvalidState, NotFound
from virtplane.names import check_name
from virtplane_api_ovirt import parse, updates
from virtplane_api_ovirt.base import (
    BASE,
    TAG_ROOT_ID,
    Call,
    Reply,
    Route,
    collection,
    entity,
    links,
    ref,
    removed,
)
from virtplane_api_ovirt.extras import Tag
from virtplane_api_ovirt.render import Node

ROOT = Tag(TAG_ROOT_ID, "root", "root", "")
MAX_DESCRIPTION = 4000


def tag_node(tag: Tag) -> Node:
    path = f"{BASE}/tags/{tag.id}"
    return {"href": path, "id": tag.id, "name": tag.name, "description": tag.description,
            "link": links(path, "permissions"),
            "parent": ref("tags", tag.parent_id) if tag.parent_id else None}


def _all(call: Call) -> list[Tag]:
    return [ROOT, *call.api.extras.tags()]


def _find(call: Call, key: str) -> Tag:
    for tag in _all(call):
        if key in (tag.id, tag.name):
            return tag
    raise NotFound(f"no tag {key!r}")


def list_tags(call: Call) -> Reply:
    found = _all(call)
    limit = call.integer("max")
    return collection("tags", "tag", [tag_node(t) for t in
                                      (found[:limit] if limit is not None else found)])


def get_tag(call: Call) -> Reply:
    return entity("tag", tag_node(_find(call, call.params["id"])))


def _checked(call: Call, name: str, description: str, parent_key: str | None,
             tag_id: str | None = None) -> Tag:
    check_name("tag", name)
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(f"<description> is longer than {MAX_DESCRIPTION} characters")
    if any(t.name == name and t.id != tag_id for t in _all(call)):
        raise AlreadyExists(f"a tag named {name!r} already exists")
    parent = _find(call, parent_key) if parent_key else ROOT
    seen = parent
    while seen.parent_id:  # a tag cannot move under itself or its own children
        if seen.id == tag_id:
            raise InvalidInput(f"tag {name!r} cannot be put under itself or its children")
        seen = _find(call, seen.parent_id)
    if seen.id == tag_id:
        raise InvalidInput("the root tag has no parent")
    return Tag(tag_id or str(uuid.uuid4()), name, description, parent.id)


def add_tag(call: Call) -> Reply:
    body = call.need_body("tag")
    name = parse.text(body, "name")
    if not name:
        raise InvalidInput("a tag needs a <name>")
    tag = _checked(call, name, parse.text(body, "description") or "", parse.ref(body, "parent"))
    call.api.extras.put_tag(tag)
    return entity("tag", tag_node(tag), status=201)


def update_tag(call: Call) -> Reply:
    tag = _find(call, call.params["id"])
    if tag.id == TAG_ROOT_ID:
        raise InvalidState("the root tag cannot be changed")
    body = call.need_body("tag")
    changes = updates.asked(body, tag_node(tag))
    fields = updates.take(changes, "name", "description")
    updates.refuse("tag", changes)
    new = _checked(call, fields.get("name", tag.name), fields.get("description", tag.description),
                   parse.ref(body, "parent") or tag.parent_id, tag.id)
    call.api.extras.put_tag(new)
    return entity("tag", tag_node(new))


def remove_tag(call: Call) -> Reply:
    tag = _find(call, call.params["id"])
    if tag.id == TAG_ROOT_ID:
        raise InvalidState("the root tag cannot be removed")
    gone = {tag.id}
    grew = True
    while grew:
        more = {t.id for t in call.api.extras.tags() if t.parent_id in gone} - gone
        gone |= more
        grew = bool(more)
    call.api.extras.drop_tags(gone)
    return removed()


ROUTES: list[Route] = [
    ("GET", "/tags", list_tags),
    ("POST", "/tags", add_tag),
    ("GET", "/tags/{id}", get_tag),
    ("PUT", "/tags/{id}", update_tag),
    ("DELETE", "/tags/{id}", remove_tag),
]
