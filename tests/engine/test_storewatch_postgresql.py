"""The engine's VM cache on PostgreSQL: an idle poll reads no VM versions, and every
change is seen at the next poll, whoever wrote it.

:class:`~virtplane_engine.storewatch.ServerWatch` compares the store's
``data_version()`` (the server's snapshot, counted) first and reads every VM's
version only when it moved. Writers here are other store instances (another engine,
a CLI) and this one; one commits a transaction that was already running when the
cache polled, the case a plain sequence or a modification timestamp would miss.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.state.conftest import pg_schemas as pg_schemas  # fixtures
from tests.state.conftest import pg_url as pg_url
from virtplane import model
from virtplane.state import StateStore
from virtplane_engine.storewatch import ServerWatch, VmCache


@pytest.fixture
def stores(pg_url: str) -> Iterator[Callable[[], Any]]:
    """``open()`` -> a new store on the test's PostgreSQL schema (another engine)."""
    made: list[Any] = []

    def open_() -> Any:
        store = StateStore(pg_url)
        made.append(store)
        return store

    yield open_
    for store in made:
        store.close()


class Counted(ServerWatch):
    """A ServerWatch that counts its reads of every VM's version, and how often the
    store's number moved between two polls."""

    def __init__(self, store: StateStore) -> None:
        super().__init__(store)
        self.reads = 0
        self.seen: list[int] = []

    @property
    def moves(self) -> int:
        return sum(1 for a, b in zip(self.seen, self.seen[1:], strict=False) if a != b)

    def data_version(self) -> int:
        self.seen.append(super().data_version())
        return self.seen[-1]

    def versions(self, cls: type[Any]) -> dict[str, int]:
        self.reads += 1
        return super().versions(cls)


def _vm(name: str) -> model.Vm:
    return model.Vm(spec=model.VmSpec(name=name, memory_mib=64), cluster_id="c1")


def _names(cache: VmCache) -> dict[str, int]:
    return {v.name: v.revision for v in cache.vms()}


def test_idle_polls_read_no_versions(stores: Callable[[], Any]) -> None:
    store = stores()
    for n in range(20):
        store.add(_vm(f"vm{n}"))
    watch = Counted(store)
    cache = VmCache(store, watch)
    assert len(cache.vms()) == 20
    assert watch.reads == 1
    stores().list(model.Vm)  # another store's reads move nothing
    for _ in range(50):
        assert len(cache.vms()) == 20
    # the versions are read only when the number moved; it moves when any transaction
    # that wrote ends on the server (other tests' too, if they share it): so not at
    # every poll, and without writers here, not at all
    assert watch.reads == 1 + watch.moves
    assert watch.moves < 50
    reads = watch.reads
    cache.invalidate()  # asked to look again: it does
    cache.vms()
    assert watch.reads == reads + 1


def test_every_writer_is_seen_at_the_next_poll(stores: Callable[[], Any]) -> None:
    mine, other, cli = stores(), stores(), stores()
    mine.add(_vm("a"))
    cache = VmCache(mine, ServerWatch(mine))
    assert _names(cache) == {"a": 1}

    other.add(_vm("b"))  # another engine adds
    assert _names(cache) == {"a": 1, "b": 1}
    b = other.find(model.Vm, "b")
    b.status = model.VmStatus.UP
    other.update(b)  # ... changes
    assert _names(cache) == {"a": 1, "b": 2}
    assert cache.snapshot().by_name["b"].status == model.VmStatus.UP
    cli.remove(model.Vm, b.id)  # a CLI removes
    assert _names(cache) == {"a": 1}
    a = mine.find(model.Vm, "a")
    mine.update(a)  # this store's own write
    assert _names(cache) == {"a": 2}
    with cli.transaction():  # several rows in one transaction, a delete among them
        cli.add(_vm("c"))
        cli.add(_vm("d"))
        cli.remove(model.Vm, a.id)
    assert _names(cache) == {"c": 1, "d": 1}
    with pytest.raises(RuntimeError), other.transaction():  # rolled back: nothing to see
        other.add(_vm("e"))
        raise RuntimeError("changed my mind")
    assert _names(cache) == {"c": 1, "d": 1}


def test_a_transaction_running_across_a_poll_is_seen_once_it_commits(
        stores: Callable[[], Any]) -> None:
    """Its write happened before the poll, its commit after: the poll must not take
    the store as read up to that write."""
    mine, other = stores(), stores()
    mine.add(_vm("a"))
    watch = Counted(mine)
    cache = VmCache(mine, watch)
    assert _names(cache) == {"a": 1}
    written, polled = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def writer() -> None:
        try:
            with other.transaction():
                other.add(_vm("late"))
                found = other.find(model.Vm, "a")
                other.remove(model.Vm, found.id)
                written.set()
                assert polled.wait(30)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failed.append(exc)
            written.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert written.wait(30)
    assert _names(cache) == {"a": 1}  # not committed yet: not visible
    polled.set()
    thread.join(30)
    assert not failed, failed
    assert _names(cache) == {"late": 1}
    reads, moves = watch.reads, watch.moves
    assert _names(cache) == {"late": 1}  # and idle again (unless the server was not)
    assert watch.reads - reads == watch.moves - moves


def test_a_store_without_data_version_compares_versions_every_time(
        stores: Callable[[], Any]) -> None:
    store = stores()
    store.add(_vm("a"))
    watch = Counted(store)
    watch._probe = None  # a server store that cannot tell
    cache = VmCache(store, watch)
    for _ in range(3):
        assert _names(cache) == {"a": 1}
    assert watch.reads == 3
