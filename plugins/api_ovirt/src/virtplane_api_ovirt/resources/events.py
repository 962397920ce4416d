"""``/events``: virtplane's event log, newest first, with ``max``, ``from`` and search.

An event's ``index`` and ``id`` are the store's sequence number (Ansible's
``ovirt_host`` reads ``events_service().list(max=1)[0].index`` before anything
else, so an empty log would fail it: the API logs one event when it starts).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from virtplane import model
from virtplane.errors import InvalidInput, NotFound
from virtplane_api_ovirt import enums, parse
from virtplane_api_ovirt.base import BASE, Call, Reply, Route, collection, entity, ref
from virtplane_api_ovirt.render import Node
from virtplane_api_ovirt.search import Searcher

#: how many events a list returns at most without ``max``
DEFAULT_MAX = 1000


@dataclass
class Event:
    seq: int
    ts: float
    object_id: str
    level: str
    message: str
    code: int | None
    correlation_id: str | None

    @classmethod
    def of(cls, row: tuple[Any, ...]) -> Event:
        return cls(int(row[0]), float(row[1]), str(row[2]), str(row[3]), str(row[4]),
                   row[5], row[6])


def event_node(call: Call, ev: Event) -> Node:
    node: Node = {
        "href": f"{BASE}/events/{ev.seq}", "id": str(ev.seq),
        "description": ev.message, "code": ev.code if ev.code is not None else 0,
        "correlation_id": ev.correlation_id, "custom_id": -1, "flood_rate": 30,
        "index": ev.seq, "origin": "virtplane",
        "severity": enums.SEVERITY.get(ev.level, "normal"),
        "time": datetime.datetime.fromtimestamp(ev.ts).astimezone().isoformat(
            timespec="milliseconds"),
    }
    for cls, tag, collection_name in ((model.Vm, "vm", "vms"), (model.Host, "host", "hosts"),
                                      (model.Cluster, "cluster", "clusters"),
                                      (model.StorageDomain, "storage_domain",
                                       "storagedomains")):
        if call.lookup(cls, ev.object_id) is not None:
            node[tag] = ref(collection_name, ev.object_id)
            break
    return node


def _name_of(call: Call, cls: type[Any], object_id: str) -> list[str]:
    found = call.lookup(cls, object_id)
    return [found.name] if found is not None else []


def searcher(call: Call) -> Searcher[Event]:
    return Searcher("event", {
        "id": lambda e: [str(e.seq)], "index": lambda e: [str(e.seq)],
        "type": lambda e: [str(e.code or 0)], "code": lambda e: [str(e.code or 0)],
        "severity": lambda e: [enums.SEVERITY.get(e.level, "normal")],
        "correlation_id": lambda e: [e.correlation_id or ""],
        "vm.id": lambda e: [e.object_id], "host.id": lambda e: [e.object_id],
        "vm.name": lambda e: _name_of(call, model.Vm, e.object_id),
        "host.name": lambda e: _name_of(call, model.Host, e.object_id),
        "name": lambda e: [e.message], "description": lambda e: [e.message],
    }, lambda e: f"{e.seq:020d}")


def list_events(call: Call) -> Reply:
    store = call.m.store
    since = call.integer("from")
    limit = call.integer("max")
    last = store.last_event_seq()
    if since is not None:
        rows = store.events_since(since, DEFAULT_MAX)
    else:
        window = limit if limit is not None and not call.query.get("search") else DEFAULT_MAX
        rows = store.events_since(max(last - window, 0), window)
    events = [Event.of(r) for r in reversed(rows)]
    found = call.search(searcher(call), call.records(events, lambda e: e.object_id))
    return collection("events", "event", [event_node(call, e) for e in found])


def get_event(call: Call) -> Reply:
    try:
        seq = int(call.params["id"])
    except ValueError:
        raise NotFound(f"no event {call.params['id']!r}") from None
    if not 0 < seq <= parse.INT_MAX:  # events are numbered from 1 (and SQLite's INTEGER)
        raise NotFound(f"no event {seq}")
    rows = call.m.store.events_since(seq - 1, 1)
    if not rows or int(rows[0][0]) != seq:
        raise NotFound(f"no event {seq}")
    call.require_record(str(rows[0][2]))
    return entity("event", event_node(call, Event.of(rows[0])))


def add_event(call: Call) -> Reply:
    """External events (``vm_backup.py`` logs its progress this way)."""
    body = call.need_body("event")
    description = parse.text(body, "description")
    if not description:
        raise InvalidInput("an event needs a <description>")
    target = (parse.ref(body, "vm") or parse.ref(body, "host") or parse.ref(body, "cluster")
              or "external")
    severity = parse.text(body, "severity") or "normal"
    level = {v: k for k, v in enums.SEVERITY.items()}.get(severity, "info")
    call.m.store.add_event(target, description, level=level, code=parse.integer(body, "code"),
                           correlation_id=call.query.get("correlation_id"))
    last = call.m.store.last_event_seq()
    rows = call.m.store.events_since(last - 1, 1)
    return entity("event", event_node(call, Event.of(rows[0])), status=201)


ROUTES: list[Route] = [
    ("GET", "/events", list_events),
    ("POST", "/events", add_event),
    ("GET", "/events/{id}", get_event),
]
