"""``[plugin.kvm] keepalive_interval`` reaches libvirt: a connection to a real libvirtd
asks for keepalive probes at that interval (3 unanswered probes close it), 0 turns them
off, and the in-process test driver, which has nothing to probe, is left alone."""

from __future__ import annotations

from typing import Any

import libvirt
import pytest

from tests.conftest import need
from virtplane_kvm.driver import KvmConnection
from virtplane_kvm.settings import KvmSettings


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    real = libvirt.virConnect.setKeepAlive

    def spy(self: Any, interval: int, count: int) -> int:
        seen.append((interval, count))
        return int(real(self, interval, count))  # libvirtd must accept it

    monkeypatch.setattr(libvirt.virConnect, "setKeepAlive", spy)
    return seen


def _system() -> None:
    try:
        libvirt.open("qemu:///system").close()
    except libvirt.libvirtError as exc:
        need(False, f"libvirtd (qemu:///system) is not running: {exc}")


def test_a_libvirtd_connection_asks_for_keepalive_at_the_interval(calls: Any) -> None:
    _system()
    conn = KvmConnection("qemu:///system", KvmSettings(keepalive_interval=7))
    try:
        assert calls == [(7, KvmConnection.KEEPALIVE_COUNT)]
        assert conn.conn.isAlive() == 1
    finally:
        conn.close()


def test_an_interval_of_0_and_the_test_driver_set_none(calls: Any) -> None:
    _system()
    for uri, interval in (("qemu:///system", 0), ("test:///default", 5)):
        conn = KvmConnection(uri, KvmSettings(keepalive_interval=interval))
        conn.close()
    assert calls == []
