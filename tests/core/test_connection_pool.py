"""The services' connection pool: one connection per host, even when threads race to
open it, and the connection that lost the race is closed, not leaked."""

from __future__ import annotations

import logging
import threading
from typing import Any

from virtplane import model
from virtplane.services.context import ConnectionPool


class _Conn:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.closed = False

    def close(self) -> None:
        self.closed = True


class _Driver:
    """connect() waits until ``n`` callers are inside it, so they all open one."""

    def __init__(self, n: int) -> None:
        self.made: list[_Conn] = []
        self.barrier = threading.Barrier(n, timeout=10)

    def connect(self, uri: str) -> _Conn:
        conn = _Conn(uri)
        self.made.append(conn)
        self.barrier.wait()
        return conn


class _Drivers:
    def __init__(self, driver: _Driver) -> None:
        self.driver = driver

    def hypervisor(self, name: str) -> _Driver:
        return self.driver


def test_threads_racing_to_open_a_host_share_one_connection_and_close_the_others() -> None:
    driver = _Driver(4)
    pool = ConnectionPool(_Drivers(driver), logging.getLogger("test"))  # type: ignore[arg-type]
    host = model.Host(name="h", cluster_id="c", uri="test:///default", driver="kvm")
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(pool.get(host))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(driver.made) == 4 and len(got) == 4
    kept = got[0]
    assert all(c is kept for c in got)  # everyone got the same connection
    assert not kept.closed
    assert sorted(c.closed for c in driver.made) == [False, True, True, True]
    assert pool.get(host) is kept  # and it is the one cached
    pool.close_all()
    assert kept.closed
