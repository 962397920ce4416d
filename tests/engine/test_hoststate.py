"""oVirt's host state machine on a fake clock (no I/O, no sleeping)."""

from __future__ import annotations

import pytest

from virtplane.model import HostStatus
from virtplane_engine import hoststate
from virtplane_engine.codes import Code
from virtplane_engine.settings import EngineSettings

S = EngineSettings()  # oVirt's defaults: 3 s polls, grace 2 polls or 60 s + 0.5 s/VM


def test_missed_polls_go_connecting_then_non_responsive_after_the_grace():
    h = hoststate.HostHealth(status=HostStatus.UP)
    assert hoststate.poll_ok(h, 0.0, "h1") is None
    t = hoststate.poll_failed(h, 3.0, S, 0, "h1", "connection refused")
    assert t is not None and t.status == HostStatus.CONNECTING
    assert t.code == Code.HOST_CONNECTING and "60 s" in t.message
    # more missed polls inside 60 s: still Connecting, no new event
    for now in (6.0, 9.0, 30.0, 60.0):
        assert hoststate.poll_failed(h, now, S, 0, "h1", "refused") is None
        assert h.status == HostStatus.CONNECTING
    t = hoststate.poll_failed(h, 60.5, S, 0, "h1", "refused")
    assert t is not None and t.status == HostStatus.NON_RESPONSIVE
    assert t.code == Code.HOST_NON_RESPONSIVE and t.reason == "refused"
    assert hoststate.poll_failed(h, 63.5, S, 0, "h1", "refused") is None  # no repeat
    t = hoststate.poll_ok(h, 66.5, "h1")
    assert t is not None and t.status == HostStatus.UP and t.code == Code.HOST_RECOVERED
    assert h.missed == 0 and h.reason == ""


def test_grace_grows_half_a_second_per_vm():
    h = hoststate.HostHealth(status=HostStatus.UP)
    hoststate.poll_ok(h, 0.0, "h1")
    for now in (3.0, 6.0, 9.0):
        hoststate.poll_failed(h, now, S, 20, "h1", "x")
    # 20 VMs: 60 + 10 = 70 s (oVirt's example)
    assert hoststate.poll_failed(h, 70.0, S, 20, "h1", "x") is None
    assert h.status == HostStatus.CONNECTING
    t = hoststate.poll_failed(h, 70.1, S, 20, "h1", "x")
    assert t is not None and t.status == HostStatus.NON_RESPONSIVE


def test_two_missed_polls_are_always_within_the_grace():
    short = EngineSettings(grace_seconds=0.0, grace_per_vm=0.0)
    h = hoststate.HostHealth(status=HostStatus.UP)
    hoststate.poll_ok(h, 0.0, "h1")
    assert hoststate.poll_failed(h, 100.0, short, 0, "h1", "x").status == HostStatus.CONNECTING
    assert hoststate.poll_failed(h, 200.0, short, 0, "h1", "x") is None
    t = hoststate.poll_failed(h, 300.0, short, 0, "h1", "x")
    assert t is not None and t.status == HostStatus.NON_RESPONSIVE


@pytest.mark.parametrize("status", sorted(hoststate.UNTOUCHED))
def test_administrator_statuses_are_never_changed_by_polls(status):
    h = hoststate.HostHealth(status=status, reason="asked")
    for now in range(0, 300, 3):
        assert hoststate.poll_failed(h, float(now), S, 0, "h1", "down") is None
    assert hoststate.poll_ok(h, 301.0, "h1") is None
    assert (h.status, h.reason) == (status, "asked")


def test_a_non_operational_host_returns_non_operational_with_its_reason():
    h = hoststate.HostHealth(status=HostStatus.NON_OPERATIONAL, reason="CPU model not servable")
    hoststate.poll_ok(h, 0.0, "h1")
    assert hoststate.poll_failed(h, 3.0, S, 0, "h1", "x").status == HostStatus.CONNECTING
    t = hoststate.poll_ok(h, 6.0, "h1")
    assert t is not None and t.status == HostStatus.NON_OPERATIONAL
    assert t.reason == "CPU model not servable" and t.code == Code.HOST_NON_OPERATIONAL


def test_a_host_never_seen_answering_gets_the_grace_from_its_first_miss():
    h = hoststate.HostHealth(status=HostStatus.UP)
    assert hoststate.poll_failed(h, 1000.0, S, 0, "h1", "x").status == HostStatus.CONNECTING
    for now in (1003.0, 1006.0):
        hoststate.poll_failed(h, now, S, 0, "h1", "x")
    assert h.status == HostStatus.CONNECTING
    t = hoststate.poll_failed(h, 1061.0, S, 0, "h1", "x")
    assert t is not None and t.status == HostStatus.NON_RESPONSIVE


@pytest.mark.parametrize("key, value, words", [
    ("host_interval", 0.0, "above 0"), ("grace_polls", -1, "0 or more"),
    ("workers", 0, "1 or more"), ("listen", "0.0.0.0:80", "loopback"),
    ("listen", "127.0.0.1:99999", "loopback"), ("listen", "localhost", "loopback"),
])
def test_settings_refuse_bad_values_naming_the_key(key, value, words):
    from virtplane.errors import ConfigError

    with pytest.raises(ConfigError, match=f"engine.{key}.*{words}"):
        EngineSettings(**{key: value})


def test_settings_come_from_the_engine_table(xdg):
    from virtplane import config

    folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
    folder.mkdir(parents=True)
    (folder / "virtplane.toml").write_text("[engine]\nhost_interval = 1\nvm_interval = 2.5\n")
    s = EngineSettings.from_config(config.load(), vm_interval=None, grace_polls=5)
    assert (s.host_interval, s.vm_interval, s.grace_polls, s.grace_seconds) == (1.0, 2.5, 5, 60)
