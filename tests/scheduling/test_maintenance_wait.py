"""``virtplane host maintenance --wait``: the CLI's wait on a scripted host (the real
engine runs it in tests/engine/test_ha_real.py, scenario 3)."""

from __future__ import annotations

import pytest

from virtplane import model
from virtplane.cli.objects import wait_for_maintenance


class Script:
    """A host whose status follows a script, one step per poll; a fake clock."""

    def __init__(self, steps: list[tuple[str, str]]) -> None:
        self.steps, self.polls, self.t = steps, 0, 0.0

    def get(self) -> model.Host:
        status, reason = self.steps[min(self.polls, len(self.steps) - 1)]
        self.polls += 1
        h = model.Host("hb", "cl1", "kvm", "test:///default")
        h.status, h.status_reason = model.HostStatus(status), reason
        return h

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


PREP = "PreparingForMaintenance"


def test_waits_until_maintenance_printing_each_new_reason(capsys):
    s = Script([(PREP, "maintenance requested: moving 2 VM(s) away")] * 3
               + [(PREP, "maintenance requested: VM a cannot leave: no host can take it")]
               + [("Maintenance", "maintenance requested")])
    rc = wait_for_maintenance(s.get, 60, said="host hb: PreparingForMaintenance "
                              "maintenance requested: moving 2 VM(s) away",
                              clock=s.clock, sleep=s.sleep)
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and s.polls == 5
    assert out == ["host hb: PreparingForMaintenance maintenance requested: VM a cannot "
                   "leave: no host can take it", "host hb: Maintenance maintenance requested"]


def test_gives_up_after_the_timeout_with_the_reason(capsys):
    s = Script([(PREP, "maintenance requested: VM a cannot leave: no host can take it")])
    rc = wait_for_maintenance(s.get, 10, every=0.5, clock=s.clock, sleep=s.sleep)
    err = capsys.readouterr().err
    assert rc == 1 and s.t == pytest.approx(10.0)
    assert "still PreparingForMaintenance after 10 s" in err and "VM a cannot leave" in err


def test_stops_when_the_host_is_activated_instead(capsys):
    s = Script([(PREP, "moving"), ("Up", "")])
    assert wait_for_maintenance(s.get, 60, clock=s.clock, sleep=s.sleep) == 1
    assert "is Up, not going to Maintenance" in capsys.readouterr().err
