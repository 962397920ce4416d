"""The kvm driver's bulk stats: the UUIDs it remembers by domain name, and what makes
it forget them (libvirt's lifecycle events), on the test driver."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import libvirt
import pytest

from virtplane_kvm import bulkstats
from virtplane_kvm.driver import KvmConnection
from virtplane_kvm.settings import KvmSettings


def _domain(name: str, dom_uuid: str) -> str:
    return (f"<domain type='test'><name>{name}</name><uuid>{dom_uuid}</uuid>"
            "<memory>262144</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>")


@pytest.fixture
def host(tmp_path: Path) -> Any:
    """A private test-driver host with three running domains."""
    node = tmp_path / "node.xml"
    node.write_text("<node>" + "".join(_domain(f"vm-{i}", str(uuid.uuid4()))
                                       for i in range(3)) + "</node>")
    conn = KvmConnection(f"test://{node}", KvmSettings(test_driver_files=True))
    yield conn
    conn.close()


@pytest.fixture
def uuid_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the domains whose UUID was read from libvirt."""
    reads: list[str] = []
    real = libvirt.virDomain.UUID

    def counted(dom: libvirt.virDomain) -> bytes:
        reads.append(dom.name())
        return real(dom)

    monkeypatch.setattr(libvirt.virDomain, "UUID", counted)
    return reads


def _uuids(conn: KvmConnection) -> dict[str, str]:
    return {r["name"]: r["uuid"] for r in conn.all_vm_stats()}


def _libvirt_uuids(conn: KvmConnection) -> dict[str, str]:
    return {d.name(): d.UUIDString() for d in conn.conn.listAllDomains(
        libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}


def test_uuids_are_libvirts_and_read_once_per_domain(host: KvmConnection,
                                                     uuid_reads: list[str]) -> None:
    assert _uuids(host) == _libvirt_uuids(host)
    assert sorted(uuid_reads) == ["vm-0", "vm-1", "vm-2"]
    uuid_reads.clear()
    assert _uuids(host) == _libvirt_uuids(host)
    assert uuid_reads == []  # remembered: nothing happened to them


def test_a_domain_recreated_under_its_name_reports_its_new_uuid(
        host: KvmConnection, uuid_reads: list[str]) -> None:
    before = _uuids(host)
    dom = host.conn.lookupByName("vm-1")
    dom.destroy()
    dom.undefine()
    new = str(uuid.uuid4())
    host.conn.defineXML(_domain("vm-1", new)).create()
    deadline = time.monotonic() + 5
    while _uuids(host)["vm-1"] != new and time.monotonic() < deadline:
        time.sleep(0.01)  # libvirt's event thread hands the events on
    got = _uuids(host)
    assert got["vm-1"] == new != before["vm-1"]
    assert got == _libvirt_uuids(host)
    assert "vm-1" in uuid_reads


def test_without_lifecycle_events_every_uuid_is_read(
        tmp_path: Path, uuid_reads: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_args: Any) -> int:
        raise libvirt.libvirtError("this connection delivers no events")

    monkeypatch.setattr(libvirt.virConnect, "domainEventRegisterAny", refused)
    node = tmp_path / "node.xml"
    node.write_text(f"<node>{_domain('solo', str(uuid.uuid4()))}</node>")
    conn = KvmConnection(f"test://{node}", KvmSettings(test_driver_files=True))
    try:
        for _ in range(3):
            assert _uuids(conn) == _libvirt_uuids(conn)
        assert uuid_reads == ["solo"] * 3
    finally:
        conn.close()


def test_nothing_learned_when_an_event_overtook_the_call() -> None:
    uuids = bulkstats.DomainUuids()
    uuids.watching = True  # as after watch()
    mark = uuids.mark()

    class Dom:
        def name(self) -> str:
            return "vm-0"

    uuids._event(None, Dom(), 0, 0, None)  # an event between the call and its learning
    uuids.learn({"vm-0": "old"}, mark)
    assert uuids.by_name == {}
    uuids.learn({"vm-0": "new"}, uuids.mark())
    assert uuids.by_name == {"vm-0": "new"}
    uuids._event(None, Dom(), 0, 0, None)
    assert uuids.by_name == {}


def test_closing_stops_watching_and_a_reopened_connection_watches_again(
        host: KvmConnection) -> None:
    _uuids(host)
    watched = host._uuids
    assert watched is not None and watched.watching and watched.by_name
    host.close()
    assert not watched.watching and watched.by_name == {} and watched.connection is None
    assert _uuids(host) == _libvirt_uuids(host)  # the connection reopens on use
    assert host._uuids is not None and host._uuids is not watched and host._uuids.watching


def test_threads_polling_at_once_share_one_watcher(host: KvmConnection,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    made: list[bulkstats.DomainUuids] = []

    class Slow(bulkstats.DomainUuids):
        def __init__(self) -> None:
            time.sleep(0.05)  # the other threads arrive meanwhile
            super().__init__()
            made.append(self)

    monkeypatch.setattr(bulkstats, "DomainUuids", Slow)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: _uuids(host), range(8)))
    assert all(r == _libvirt_uuids(host) for r in results)
    assert len(made) == 1 and host._uuids is made[0] and made[0].watching
