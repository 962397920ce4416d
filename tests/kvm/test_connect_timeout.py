"""A host that does not answer: ``virConnectOpen`` has no timeout of its own, so
``host add`` (and any reconnect) waited as long as the transport did, forever for a
peer that accepts and never answers. Now the kvm driver gives up after ``[plugin.kvm]
connect_timeout`` seconds with HostUnreachable, and a connection that opens after that
is closed, never cached.

Network: a listener on 127.0.0.1 made by the test, nothing else.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from virtplane.errors import HostUnreachable
from virtplane_kvm import opening

TIMEOUT = 0.5


class SilentListener:
    """A TCP listener on loopback that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"qemu+tcp://127.0.0.1:{self.port}/system"

    def _accept(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return  # closed: the test is over
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()
        self._thread.join(5)


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    listener = SilentListener()
    yield listener
    listener.close()
    _wait_no_attempts()


def _wait_no_attempts(limit: float = 10.0) -> None:
    """Every open attempt has finished (the listener closed: libvirt sees EOF)."""
    deadline = time.monotonic() + limit
    while opening.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not opening.running, "a libvirt open attempt is still running"


def _plane(manager_factory: Callable[..., Any], xdg: dict[str, Path]) -> Any:
    folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "virtplane.toml").write_text(f"[plugin.kvm]\nconnect_timeout = {TIMEOUT}\n")
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    return m


def _in_thread(call: Callable[[], Any], limit: float) -> BaseException | None:
    """Run ``call``; fail the test when it has not returned within ``limit`` seconds
    (rather than hang it); return what it raised."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            raised.append(exc)
        else:
            raised.append(None)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"still waiting after {limit} s"
    return raised[0]


def test_a_host_that_never_answers_is_unreachable_after_the_timeout(
        manager_factory: Callable[..., Any], xdg: dict[str, Path],
        silent: SilentListener) -> None:
    m = _plane(manager_factory, xdg)
    started = time.monotonic()
    exc = _in_thread(lambda: m.hosts.add("h", "cl", silent.uri), limit=10)
    took = time.monotonic() - started
    assert isinstance(exc, HostUnreachable), exc
    assert str(exc) == (f"cannot connect to {silent.uri}: no answer within {TIMEOUT:g} s "
                        "([plugin.kvm] connect_timeout)")
    assert TIMEOUT <= took < TIMEOUT + 3
    assert silent.accepted  # it did reach the listener
    assert m.hosts.list() == []


def test_a_connection_opening_after_the_timeout_is_closed_not_cached(
        manager_factory: Callable[..., Any], xdg: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    m = _plane(manager_factory, xdg)
    release = threading.Event()
    closed: list[str] = []
    real_open = libvirt.open

    class Late:
        """The real connection, noting when it is closed."""

        def __init__(self, uri: str) -> None:
            self.real = real_open(uri)

        def close(self) -> int:
            closed.append("closed")
            return int(self.real.close())

    def slow_open(uri: str) -> Any:
        release.wait(30)
        return Late(uri)

    monkeypatch.setattr(libvirt, "open", slow_open)
    keep = real_open("test:///default")  # the test driver's state lives while one is open
    try:
        exc = _in_thread(lambda: m.hosts.add("h", "cl", "test:///default"), limit=10)
        assert isinstance(exc, HostUnreachable) and "no answer within" in str(exc)
        assert opening.running  # the attempt goes on in its thread
        release.set()
        _wait_no_attempts()
        assert closed == ["closed"]  # the late connection was closed by its worker
        assert m.hosts.list() == []
        monkeypatch.setattr(libvirt, "open", real_open)
        assert m.hosts.add("h", "cl", "test:///default").name == "h"  # a new open
    finally:
        release.set()
        keep.close()


def test_a_reconnect_is_bounded_too(manager_factory: Callable[..., Any],
                                    xdg: dict[str, Path],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    m = _plane(manager_factory, xdg)
    keep = libvirt.open("test:///default")
    try:
        m.hosts.add("h", "cl", "test:///default")
        m.context.connections.drop(m.hosts.get("h").id)
        release = threading.Event()
        real_open = libvirt.open

        def hang(uri: str) -> Any:
            release.wait(30)
            return real_open(uri)

        monkeypatch.setattr(libvirt, "open", hang)
        try:
            assert _in_thread(lambda: m.hosts.check("h"), limit=10) is None
            host = m.hosts.get("h")
            assert host.status.value == "NonResponsive"
            assert "no answer within 0.5 s" in host.status_reason
        finally:
            release.set()
        _wait_no_attempts()
    finally:
        keep.close()


def test_a_refusing_host_still_fails_at_once_with_one_line() -> None:
    started = time.monotonic()
    with pytest.raises(HostUnreachable) as caught:
        opening.open_within("qemu+unix:///system?socket=/nonexistent/sock", 30)
    assert time.monotonic() - started < 10
    assert "\n" not in str(caught.value) and "/nonexistent/sock" in str(caught.value)


def test_a_given_up_attempt_still_waiting_blocks_new_threads_for_its_uri(
        manager_factory: Callable[..., Any], xdg: dict[str, Path],
        silent: SilentListener) -> None:
    """A monitor polling a host that never answers: one waiting thread per URI, not
    one per poll (each would wait as long as the transport does)."""
    m = _plane(manager_factory, xdg)
    first = _in_thread(lambda: m.hosts.add("h", "cl", silent.uri), limit=10)
    assert isinstance(first, HostUnreachable) and "no answer within" in str(first)
    assert [a.uri for a in opening.running] == [silent.uri]  # still waiting
    accepted = len(silent.accepted)
    for _ in range(3):
        started = time.monotonic()
        exc = _in_thread(lambda: m.hosts.add("h", "cl", silent.uri), limit=10)
        assert time.monotonic() - started < TIMEOUT  # refused at once, no new wait
        assert isinstance(exc, HostUnreachable), exc
        assert "an earlier attempt, given up" in str(exc)
        assert "is still waiting for the host" in str(exc)
    assert [a.uri for a in opening.running] == [silent.uri]
    assert len(silent.accepted) == accepted  # no new connection was tried
    assert m.hosts.list() == []


def test_other_uris_are_not_held_up_by_a_lingering_attempt(
        silent: SilentListener) -> None:
    with pytest.raises(HostUnreachable, match="no answer within"):
        opening.open_within(silent.uri, TIMEOUT)
    conn = opening.open_within("test:///default", TIMEOUT)  # another URI opens as usual
    try:
        assert conn.getURI() == "test:///default"
    finally:
        conn.close()


def test_a_new_attempt_is_made_once_the_lingering_one_ended(
        monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real_open = libvirt.open
    opened: list[str] = []

    def slow_then_fine(uri: str) -> Any:
        opened.append(uri)
        if len(opened) == 1:
            release.wait(30)
        return real_open(uri)

    monkeypatch.setattr(libvirt, "open", slow_then_fine)
    with pytest.raises(HostUnreachable, match="no answer within"):
        opening.open_within("test:///default", TIMEOUT)
    with pytest.raises(HostUnreachable, match="still waiting"):
        opening.open_within("test:///default", TIMEOUT)
    release.set()
    _wait_no_attempts()
    conn = opening.open_within("test:///default", TIMEOUT)
    try:
        assert opened == ["test:///default", "test:///default"]
    finally:
        conn.close()
