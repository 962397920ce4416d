"""Leases with epochs on both backends: races for a lease, expiry, takeover, the leader,
and fencing: a holder that lost its lease (expired, paused, taken over) writes nothing."""

from __future__ import annotations

import threading
import time

import pytest

from virtplane import model
from virtplane.errors import InvalidInput, LeaseHeld, LeaseLost
from virtplane.state import LEADER

TTL = 0.6  # seconds; long enough for a loaded machine to run a few statements


def _wait_past(lease, extra: float = 0.15) -> None:
    """Sleep until the lease has expired on every clock involved."""
    time.sleep(max(lease.remaining(), 0) + extra)


def test_acquire_renew_release_and_epochs(store):
    lease = store.acquire_lease("host-1", "engine-a", 30)
    assert (lease.resource, lease.holder, lease.epoch) == ("host-1", "engine-a", 1)
    assert 29 < lease.remaining() <= 30
    again = store.acquire_lease("host-1", "engine-a", 30)  # the holder asking again
    assert again.epoch == 1
    renewed = store.renew_lease(lease)
    assert renewed.epoch == 1 and renewed.expires >= lease.expires
    with pytest.raises(LeaseHeld, match=r"lease 'host-1' is held by 'engine-a' for another "
                                        r"\d+\.\d s"):
        store.acquire_lease("host-1", "engine-b", 30)
    assert store.release_lease(renewed) is True
    assert store.release_lease(renewed) is False  # no longer held: nothing to release
    taken = store.acquire_lease("host-1", "engine-b", 30)
    assert taken.epoch == 2  # a new holder: a new fencing token
    assert [(x.resource, x.holder, x.epoch) for x in store.list_leases()] == [
        ("host-1", "engine-b", 2)]
    assert store.get_lease("nothing") is None
    with pytest.raises(LeaseLost, match=r"lease 'host-1' at epoch 1 is no longer held: it was "
                                        r"taken over \(now epoch 2, held by 'engine-b'\)"):
        store.renew_lease(lease)
    with pytest.raises(InvalidInput, match="time to live must be between 0 and 3600"):
        store.acquire_lease("host-1", "engine-b", 0)


def test_two_holders_race_for_a_lease_exactly_one_gets_it(store, open_store):
    stores = [open_store(), open_store()]
    got: dict[str, object] = {}
    for round_ in range(5):
        barrier = threading.Barrier(2)
        got.clear()
        resource = f"host-{round_}"

        def contender(i: int, resource: str = resource, barrier=barrier) -> None:
            barrier.wait()
            try:
                got[f"e{i}"] = stores[i].acquire_lease(resource, f"e{i}", 30)
            except LeaseHeld as exc:
                got[f"e{i}"] = exc
            finally:
                stores[i].close()

        threads = [threading.Thread(target=contender, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        winners = [k for k, v in got.items() if not isinstance(v, LeaseHeld)]
        assert len(winners) == 1, got
        loser = ({"e0", "e1"} - set(winners)).pop()
        assert got[loser].holder == winners[0]  # the loser learns who holds it
        assert store.get_lease(resource).holder == winners[0]


def test_an_expired_lease_is_taken_over_with_a_higher_epoch(store):
    old = store.acquire_lease("host-1", "engine-a", TTL)
    _wait_past(old)
    new = store.acquire_lease("host-1", "engine-b", 30)
    assert new.epoch == old.epoch + 1
    with pytest.raises(LeaseLost, match="taken over"):
        store.renew_lease(old)
    # the same holder coming back after its lease expired gets a new epoch too
    mine = store.acquire_lease("host-2", "engine-a", TTL)
    _wait_past(mine)
    with pytest.raises(LeaseLost, match=r"it expired \d+\.\d s ago"):
        store.renew_lease(mine)
    back = store.acquire_lease("host-2", "engine-a", 30)
    assert back.epoch == mine.epoch + 1


def test_fenced_writes_land_while_the_lease_is_held(store):
    store.add(model.DataCenter(name="dc1"))
    lease = store.acquire_lease("host-1", "engine-a", 30)
    with store.fenced(lease):
        store.modify(model.DataCenter, "dc1", lambda d: setattr(d, "description", "fenced"))
        store.add_event("host-1", "polled")
    assert store.find(model.DataCenter, "dc1").description == "fenced"


def test_an_expired_holders_write_is_refused_and_nothing_lands(store):
    store.add(model.DataCenter(name="dc1", description="before"))
    lease = store.acquire_lease("host-1", "engine-a", TTL)
    _wait_past(lease)
    with pytest.raises(LeaseLost, match=r"lease 'host-1' at epoch 1 is no longer held: it "
                                        r"expired .* the write was refused"):
        with store.fenced(lease):
            store.modify(model.DataCenter, "dc1", lambda d: setattr(d, "description", "late"))
    assert store.find(model.DataCenter, "dc1").description == "before"
    released = store.acquire_lease("host-2", "engine-a", 30)
    store.release_lease(released)
    with pytest.raises(LeaseLost, match="it was released"):
        with store.fenced(released):
            store.add(model.DataCenter(name="never"))
    assert not store.exists(model.DataCenter, "never")
    with pytest.raises(LeaseLost, match="there is no such lease"):
        with store.fenced(type(lease)("nope", "engine-a", 1, 0.0, 1.0)):
            pass


def test_a_paused_holder_cannot_overwrite_after_takeover(store, open_store):
    """Engine A reads a VM, is paused past its lease (it does not renew), engine B takes
    the host over and writes; when A wakes up, its write carrying epoch 1 is refused."""
    engine_a, engine_b = open_store(), open_store()
    vm = model.Vm(spec=model.VmSpec(name="vm1"), cluster_id="c")
    store.add(vm)
    lease_a = engine_a.acquire_lease("host-1", "engine-a", TTL)
    seen_by_a = engine_a.find(model.Vm, "vm1")
    _wait_past(lease_a)  # A is paused: no renewal
    lease_b = engine_b.acquire_lease("host-1", "engine-b", 30)
    assert lease_b.epoch == lease_a.epoch + 1
    with engine_b.fenced(lease_b):
        engine_b.modify(model.Vm, "vm1", lambda v: setattr(v, "status", model.VmStatus.UP))
    # A wakes up and acts on what it saw, through a fenced transaction
    seen_by_a.status = model.VmStatus.DOWN
    with pytest.raises(LeaseLost, match="taken over"):
        with engine_a.fenced(lease_a):
            engine_a.update(seen_by_a)
    assert store.find(model.Vm, "vm1").status is model.VmStatus.UP
    # nor can A simply renew its way back in
    with pytest.raises(LeaseLost):
        engine_a.renew_lease(lease_a)


def test_one_leader_at_a_time_and_the_next_one_takes_over(store, open_store):
    engines = {name: open_store() for name in ("e1", "e2", "e3")}
    leaders = []
    for name, s in engines.items():
        try:
            leaders.append(s.acquire_lease(LEADER, name, TTL))
        except LeaseHeld as exc:
            assert exc.holder == "e1"
    assert [lease.holder for lease in leaders] == ["e1"]
    _wait_past(leaders[0])  # the leader stops renewing (killed, or paused)
    nxt = engines["e2"].acquire_lease(LEADER, "e2", 30)
    assert nxt.epoch == leaders[0].epoch + 1
    with pytest.raises(LeaseHeld):
        engines["e3"].acquire_lease(LEADER, "e3", 30)
    with pytest.raises(LeaseLost):
        with engines["e1"].fenced(leaders[0]):
            engines["e1"].add_job(model.Job(kind="restart_ha_vm"))
    assert store.list_jobs() == []


def test_a_takeover_waits_for_the_fenced_transaction_in_flight(store, open_store, store_url):
    """The check is not only at the start: the lease row stays locked until the holder's
    transaction ends, so a takeover is ordered after the holder's writes, never between
    its check and its commit (SQLite: the write lock; PostgreSQL: FOR SHARE)."""
    holder, rival = open_store(), open_store()
    holder.add(model.DataCenter(name="dc1", description="0"))
    lease = holder.acquire_lease("host-1", "engine-a", TTL)
    order: list[str] = []
    checked = threading.Event()

    def take_over() -> None:
        checked.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                rival.acquire_lease("host-1", "engine-b", 30)
                order.append("takeover")
                return
            except LeaseHeld:
                time.sleep(0.05)
            except Exception as exc:  # SQLite: busy while the holder writes
                order.append(f"retry {type(exc).__name__}")
                time.sleep(0.05)
        rival.close()

    t = threading.Thread(target=take_over)
    t.start()
    with holder.fenced(lease):
        checked.set()
        _wait_past(lease)  # the lease expires while the transaction is still open
        holder.modify(model.DataCenter, "dc1", lambda d: setattr(d, "description", "1"))
        order.append("holder wrote")
    order.append("holder committed")
    t.join(timeout=30)
    assert [o for o in order if not o.startswith("retry")] == [
        "holder wrote", "holder committed", "takeover"]
    assert store.find(model.DataCenter, "dc1").description == "1"
