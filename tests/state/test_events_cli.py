"""``virtplane events`` reads the event log through the store, on either backend."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from virtplane import model


def test_events_are_listed_by_name_from_either_backend(
        store: Any, store_url: str, cli: Callable[..., tuple[int, str, str]]) -> None:
    dc = model.DataCenter(name="dc1")
    store.add(dc)
    for i in range(5):
        store.add_event(dc.id, f"step {i}", code=9000 + i, correlation_id="c-1")
    store.add_event("engine", "not an object", level="warning")

    rc, out, err = cli("--state", store_url, "events", "--json", "--last", "3")
    assert rc == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["message"] for r in rows] == ["step 3", "step 4", "not an object"]
    assert rows[0]["object"] == "datacenter dc1" and rows[0]["code"] == 9003
    assert rows[0]["correlation_id"] == "c-1"
    assert rows[2]["object"] is None and rows[2]["level"] == "warning"

    rc, out, err = cli("--state", store_url, "events", "--code", "9001", "--last", "100")
    assert rc == 0, err
    assert out.count("\n") == 1 and "[datacenter dc1] step 1" in out and "9001" in out
