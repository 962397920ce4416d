"""Host statuses set outside the poll loop (oVirt's rules): NonOperational while a data
domain of the host's data center is unreachable, and back Up; Installing, then Up or
InstallFailed, around ``host setup``. On libvirt's test driver and localfs domains."""

from __future__ import annotations

from typing import Any

import pytest

from virtplane import model
from virtplane.errors import HypervisorError
from virtplane.events import Code
from virtplane_engine.engine import check_hosts_storage
from virtplane_engine.leases import Keeper
from virtplane_engine.locks import ObjectLocks
from virtplane_engine.monitoring import Monitor
from virtplane_engine.settings import EngineSettings
from virtplane_engine.storewatch import StoreWatch, VmCache


@pytest.fixture
def m(manager_factory):
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.hosts.add("h1", "cl", "test:///default")
    return m


def _codes(m, object_id: str) -> list[int | None]:
    return [e[5] for e in m.store.events_since(0) if e[2] == object_id]


def test_a_host_that_cannot_reach_a_data_domain_is_non_operational_until_it_can(
        m, tmp_path):
    path = tmp_path / "sd"
    m.storage.add("sd", "localfs", "dc", {"path": str(path)})
    h1 = m.hosts.get("h1")
    keeper = Keeper(lambda: m.context.store, "local", 10.0, shared=False)
    assert m.hosts.check_storage("h1").status == model.HostStatus.UP
    path.rename(tmp_path / "away")  # the domain's path disappears
    try:
        assert m.storage.refresh("sd").status == model.DomainStatus.INACTIVE
        check_hosts_storage(m, keeper)  # what the engine does after each storage probe
        host = m.hosts.get("h1")
        assert host.status == model.HostStatus.NON_OPERATIONAL
        assert host.status_reason.startswith("storage unreachable: storage domain sd: ")
        # the host poll keeps it NonOperational (it answers; its storage does not)
        watch = StoreWatch(tmp_path / "state.db")
        try:
            monitor = Monitor(m, EngineSettings(), ObjectLocks(), VmCache(m.store, watch),
                              lambda *a: None)
            assert monitor.poll_host(h1.id) == model.HostStatus.NON_OPERATIONAL
        finally:
            watch.close()
        check_hosts_storage(m, keeper)  # no second transition, no second event
    finally:
        (tmp_path / "away").rename(path)
    assert m.storage.refresh("sd").status == model.DomainStatus.ACTIVE
    check_hosts_storage(m, keeper)
    host = m.hosts.get("h1")
    assert (host.status, host.status_reason) == (model.HostStatus.UP, "")
    codes = _codes(m, h1.id)
    assert codes.count(Code.HOST_NON_OPERATIONAL_STORAGE) == 1
    assert codes.count(Code.HOST_UP) == 1
    assert Code.HOST_NON_OPERATIONAL_STORAGE == 522  # oVirt's VDS_SET_NONOPERATIONAL_DOMAIN


def test_a_domain_in_maintenance_or_of_another_data_center_does_not_count(m, tmp_path):
    m.datacenters.add("dc2")
    m.storage.add("other", "localfs", "dc2", {"path": str(tmp_path / "o")})
    m.storage.add("sd", "localfs", "dc", {"path": str(tmp_path / "s")})
    (tmp_path / "o").rename(tmp_path / "o-away")
    assert m.storage.refresh("other").status == model.DomainStatus.INACTIVE
    m.storage.deactivate("sd")
    assert m.hosts.check_storage("h1").status == model.HostStatus.UP
    # NonOperational for another reason (CPU, architecture) is not storage's to clear
    def cpu(h: model.Host) -> None:
        h.status, h.status_reason = model.HostStatus.NON_OPERATIONAL, "no x86_64"

    m.store.modify(model.Host, "h1", cpu)
    assert m.hosts.check_storage("h1").status_reason == "no x86_64"


class _Setup:
    """The test driver's connection with a host setup of its own."""

    def __init__(self, conn: Any, fail: str | None = None) -> None:
        self._conn = conn
        self.fail = fail
        self.seen: list[model.HostStatus] = []
        self.status_of: Any = None

    def setup(self, **options: Any) -> list[str]:
        self.seen.append(self.status_of())
        if self.fail == "ctrl-c":
            raise KeyboardInterrupt
        if self.fail:
            raise HypervisorError(self.fail)
        return ["roles set", "repository mounted"]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _with_setup(m, monkeypatch, fail: str | None = None) -> _Setup:
    conn = _Setup(m.context.connections.get(m.hosts.get("h1")), fail)
    conn.status_of = lambda: m.hosts.get("h1").status
    monkeypatch.setattr(m.hosts, "connection", lambda host: conn)
    return conn


def test_host_setup_goes_installing_then_up(m, monkeypatch):
    conn = _with_setup(m, monkeypatch)
    assert m.hosts.setup("h1") == ["roles set", "repository mounted"]
    assert conn.seen == [model.HostStatus.INSTALLING]
    host = m.hosts.get("h1")
    assert (host.status, host.status_reason) == (model.HostStatus.UP, "")
    codes = _codes(m, host.id)
    assert codes[0] == Code.HOST_INSTALLING == 509  # VDS_INSTALL_IN_PROGRESS
    assert codes[-1] == Code.HOST_INSTALLED == 504  # VDS_INSTALL


def test_host_setup_that_fails_leaves_the_host_install_failed_with_the_reason(m, monkeypatch):
    _with_setup(m, monkeypatch, fail="repository not mountable")
    with pytest.raises(HypervisorError, match="repository not mountable"):
        m.hosts.setup("h1")
    host = m.hosts.get("h1")
    assert host.status == model.HostStatus.INSTALL_FAILED
    assert host.status_reason == "repository not mountable"
    assert _codes(m, host.id)[-1] == Code.HOST_INSTALL_FAILED == 505
    # the monitor never changes it; a setup that works brings it Up
    _with_setup(m, monkeypatch)
    m.hosts.setup("h1")
    assert m.hosts.get("h1").status == model.HostStatus.UP


def test_an_interrupted_host_setup_leaves_the_host_install_failed(m, monkeypatch):
    _with_setup(m, monkeypatch, fail="ctrl-c")
    with pytest.raises(KeyboardInterrupt):
        m.hosts.setup("h1")
    host = m.hosts.get("h1")
    assert (host.status, host.status_reason) == (model.HostStatus.INSTALL_FAILED,
                                                 "interrupted (KeyboardInterrupt)")
