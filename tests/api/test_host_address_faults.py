"""POST /hosts with an address the kvm driver must not, or cannot, open.

- ``test:///../../etc/passwd``: libvirt's test driver read the file as its config and
  the fault quoted its first line (``root:x:0:0:...``); now a 400 naming the address
  and what is allowed.
- an address that never answers (a listener on 127.0.0.1 made by the test, which
  accepts and stays silent): the request waited as long as libvirt did (forever); now
  a 503 after ``[plugin.kvm] connect_timeout``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.api.raw_http import JSON, XML, Client
from tests.api.raw_http import fault as _fault

TIMEOUT = 0.5


@pytest.fixture
def kvm_settings(xdg: dict[str, Path]) -> None:
    folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "virtplane.toml").write_text(f"[plugin.kvm]\nconnect_timeout = {TIMEOUT}\n")


@pytest.fixture
def world(kvm_settings: None, world: Any) -> Any:
    """The API's world, on a configuration read after ``kvm_settings`` wrote it."""
    return world



def _names(client: Client) -> list[str]:
    return sorted(h["name"] for h in client.json("GET", "/hosts").get("host", []))


@pytest.mark.parametrize("address", ["test:///../../etc/passwd", "test:///etc/hostname",
                                     "test+unix:///etc/passwd"])
def test_a_test_driver_file_address_is_a_400_without_the_file(client: Client,
                                                              address: str) -> None:
    before = _names(client)
    body = (f"<host><name>h9</name><address>{address}</address>"
            "<cluster><name>c1</name></cluster></host>").encode()
    status, detail = _fault(client.api("POST", "/hosts", body, XML))
    assert status == 400, detail
    assert f"host URI {address!r}" in detail and "test:///default" in detail
    assert "root:" not in detail and "Start tag" not in detail
    status, detail = _fault(client.api("POST", "/hosts", json.dumps(
        {"name": "h9", "address": address, "cluster": {"name": "c1"}}).encode(), JSON))
    assert status == 400 and "root:" not in detail
    assert _names(client) == before


def test_an_address_that_never_answers_is_a_503_after_the_timeout(client: Client) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # the kernel accepts; nobody ever answers
    uri = f"qemu+tcp://127.0.0.1:{listener.getsockname()[1]}/system"
    before = _names(client)
    replies: list[tuple[int, dict[str, str], bytes]] = []
    body = (f"<host><name>h9</name><address>{uri}</address>"
            "<cluster><name>c1</name></cluster></host>").encode()
    try:
        started = time.monotonic()
        worker = threading.Thread(
            target=lambda: replies.append(client.api("POST", "/hosts", body, XML)),
            daemon=True)
        worker.start()
        worker.join(15)
        took = time.monotonic() - started
        assert not worker.is_alive(), "POST /hosts still waiting after 15 s"
    finally:
        listener.close()
    status, detail = _fault(replies[0])
    assert status == 503, detail
    assert detail == (f"[cannot connect to {uri}: no answer within {TIMEOUT:g} s "
                      "([plugin.kvm] connect_timeout)]")
    assert TIMEOUT <= took < TIMEOUT + 5
    assert _names(client) == before
