"""What every resource module shares: the request (:class:`Call`), the reply
(:class:`Reply`), the API's process-wide state (:class:`Api`) and href helpers.

Resource handlers are plain synchronous functions ``handler(call) -> Reply``:
the app runs them in a worker thread (the services block on SQLite and
libvirt) and renders their reply as XML or JSON, so a handler never sees HTTP
or a format.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from virtplane.errors import InvalidInput, NotFound
from virtplane_api_ovirt.faults import ApiError
from virtplane_api_ovirt.parse import int64
from virtplane_api_ovirt.render import Node

if TYPE_CHECKING:
    from virtplane import Manager
    from virtplane_api_ovirt.auth import Sessions
    from virtplane_api_ovirt.authz import Authz, Kind
    from virtplane_api_ovirt.authz.policy import Visibility
    from virtplane_api_ovirt.authz.tree import StoreTree
    from virtplane_api_ovirt.extras import Extras
    from virtplane_api_ovirt.search import Searcher

T = TypeVar("T")
log = logging.getLogger("virtplane.api.ovirt")

#: where the API lives; the SDK requires hrefs to start with its URL's path
BASE = "/ovirt-engine/api"
#: oVirt's Blank template: every engine has it, at this id (clients ask for it by id)
BLANK_ID = "00000000-0000-0000-0000-000000000000"
#: ids virtplane derives for objects it does not store (networks, profiles ...)
_NS = uuid.UUID("5b0d6bd4-6f53-4f1c-9a55-0e54d1a3a1c4")


def derived_id(*parts: str) -> str:
    """A stable id for an object virtplane does not store (same parts, same id)."""
    return str(uuid.uuid5(_NS, "/".join(parts)))


#: the root tag every engine has (``special_objects``); virtplane has no tags yet
TAG_ROOT_ID = "00000000-0000-0000-0000-000000000001"


def href(*parts: str) -> str:
    return BASE + "/" + "/".join(parts)


def ref(collection: str, obj_id: str | None) -> Node | None:
    """A reference element: ``<cluster href=".../clusters/ID" id="ID"/>``."""
    if obj_id is None:
        return None
    return {"href": f"{BASE}/{collection}/{obj_id}", "id": obj_id}


def links(base: str, *rels: str) -> list[tuple[str, str]]:
    """``<link rel=R href=BASE/R>`` for each sub-collection."""
    return [(rel, f"{base}/{rel}") for rel in rels]


@dataclass
class Reply:
    """What a handler returns: one entity, a collection, an action result or nothing."""

    tag: str
    node: Node | None = None
    #: members of a collection (``tag`` is the plural, ``item`` the singular), or a
    #: function making them (called only when the XML cache cannot answer)
    nodes: list[Node] | Callable[[], list[Node]] | None = None
    item: str = ""
    #: the members already rendered as XML (a cache's output), same order as nodes
    xml_items: list[str] | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    def members(self) -> list[Node]:
        if callable(self.nodes):
            self.nodes = self.nodes()
        return self.nodes or []


def entity(tag: str, node: Node, status: int = 200) -> Reply:
    reply = Reply(tag, node=node, status=status)
    if status == 201 and node.get("href"):
        reply.headers["Location"] = str(node["href"])
    return reply


def collection(tag: str, item: str, nodes: list[Node] | Callable[[], list[Node]],
               xml_items: list[str] | None = None) -> Reply:
    return Reply(tag, nodes=nodes, item=item, xml_items=xml_items)


def done(extra: Node | None = None, status: int = 200, state: str = "complete") -> Reply:
    """An ``<action>`` reply (the SDK requires one for every action)."""
    return Reply("action", node={**(extra or {}), "status": state}, status=status)


def removed() -> Reply:
    """A DELETE's reply: 200 and no body (the SDK refuses 204)."""
    return Reply("")


Handler = Callable[["Call"], Reply]
#: (method, path under BASE, handler)
Route = tuple[str, str, Handler]


#: ``object_lock(kind, name)``: hold that object's lock for the ``with`` block
ObjectLock = Callable[[str, str], contextlib.AbstractContextManager[None]]


def _no_lock(kind: str, name: str) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


class Api:
    """Process-wide state of one API instance."""

    def __init__(self, manager: Manager, sessions: Sessions, authz: Authz,
                 pki: Path | None, *, action_wait: float = 10.0,
                 extras: Extras | None = None,
                 object_lock: ObjectLock | None = None) -> None:
        from virtplane_api_ovirt.extras import Extras

        self.manager = manager
        #: (kind, name) -> a context that holds that object's lock while an action runs
        #: (the engine's per-object locks when it serves the API; none standing alone)
        self.object_lock: ObjectLock = object_lock or _no_lock
        self.sessions = sessions
        #: users, groups, roles, permissions (docs/permissions.md)
        self.authz = authz
        self.pki = pki
        #: descriptions, comments, tags and SSH keys the model has no field for, kept
        #: in the state store (extras.py)
        self.extras = extras if extras is not None else Extras(manager.store)
        #: an action still running after this many seconds answers 202 ``pending``
        self.action_wait = action_wait
        self.executor = concurrent.futures.ThreadPoolExecutor(8, "api-action")
        #: per-resource render caches (see resources.vms)
        self.caches: dict[str, Any] = {}
        self.lock = threading.Lock()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=False)
        self.authz.close()
        self.extras.close()


@dataclass
class Call:
    """One request, as a handler sees it."""

    api: Api
    params: dict[str, str]
    query: dict[str, str]
    body: Node | None = None
    body_tag: str | None = None
    user: str = ""
    #: what the user may see, set by the permission check of a collection (guard.py)
    visible: Visibility | None = None
    #: the object tree of this request (set by the permission check)
    tree: StoreTree | None = None
    _seen: dict[tuple[type[Any], str], Any] = field(default_factory=dict)

    def only_visible(self, kind: Kind, objects: list[T]) -> list[T]:
        """The members of a collection this user may see (all for SuperUser); a
        collection handler passes every list through here."""
        if self.visible is None:
            return objects
        return self.visible.only(kind, objects)

    def records(self, items: list[T], object_id: Callable[[T], str | None]) -> list[T]:
        """The records (events, jobs) about objects this user may see."""
        if self.visible is None or self.visible.everything:
            return items
        visible = self.visible
        return [i for i in items if visible.sees_any(object_id(i))]

    def require_record(self, object_id: str | None) -> None:
        """Refuse one record (an event, a job) about an object the user may not see."""
        from virtplane_api_ovirt.authz import Forbidden

        if self.visible is not None and not self.visible.sees_any(object_id):
            raise Forbidden(f"{self.user} lacks any permission on the object of this "
                            f"record ({object_id or 'none'})")

    @property
    def m(self) -> Manager:
        return self.api.manager

    def lookup(self, cls: type[T], obj_id: str) -> T | None:
        """``store.get`` remembered for this request (renderers of long lists look the
        same cluster up once, not once per VM); None when it is gone."""
        key = (cls, obj_id)
        if key not in self._seen:
            try:
                self._seen[key] = self.m.store.get(cls, obj_id)
            except NotFound:
                self._seen[key] = None
        found: T | None = self._seen[key]
        return found

    def flag(self, name: str) -> bool | None:
        value = self.query.get(name)
        if value is None:
            return None
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise InvalidInput(f"query parameter {name} must be true or false, not {value!r}")

    def integer(self, name: str) -> int | None:
        value = self.query.get(name)
        if value is None:
            return None
        return int64(value, f"query parameter {name}")

    def search(self, searcher: Searcher[T], objects: list[T]) -> list[T]:
        """Apply ``search``, ``case_sensitive`` and ``max`` to a collection."""
        return searcher.apply(objects, self.query.get("search"),
                              case_sensitive=self.flag("case_sensitive") is not False,
                              max_results=self.integer("max"))

    def need_body(self, tag: str) -> Node:
        """The request body, which must be a ``<tag>``."""
        if self.body is None:
            raise InvalidInput(f"this request needs a <{tag}> body")
        if self.body_tag is not None and self.body_tag != tag:
            raise InvalidInput(f"this request needs a <{tag}> body, not <{self.body_tag}>")
        return self.body

    def not_supported(self, what: str) -> ApiError:
        return ApiError(501, f"{what} is not implemented by virtplane yet "
                             "(see docs/api-ovirt.md, compatibility table)")
