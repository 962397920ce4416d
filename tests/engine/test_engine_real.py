"""The engine against real components: libvirtd + QEMU (tools/start-daemons.sh), a second
libvirt host (tools/start-second-host.sh), a bind-mounted posixfs domain.

Short intervals keep them lean; every wait is bounded. Locally a missing component
skips with the reason; in CI (CI=true) it fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import libvirt
import pytest

from tests.conftest import need
from tests.engine.conftest import wait_for
from tests.libvirt_hosts import reachable, running
from virtplane import model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

H1 = "qemu:///system"
H2_ROOT = "/srv/vp-h2"
H2 = f"qemu+unix:///system?socket={H2_ROOT}/run/libvirt-sock"
REPO = Path(__file__).resolve().parents[2]


def _vm(engine, name: str) -> dict:
    rows = json.loads(engine.vp("vm", "list", "--json", check=True).stdout)
    return next(r for r in rows if r["name"] == name)


def _host_status(engine, name: str) -> str:
    rows = json.loads(engine.vp("host", "list", "--json", check=True).stdout)
    return str(next(r for r in rows if r["name"] == name)["status"])


def _state(manager_factory, engine, hosts: dict[str, str]):
    m = manager_factory(state_path=engine.state)
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    for name, uri in hosts.items():
        m.hosts.add(name, "cl1", uri)
    return m


def _cleanup(names: list[str]) -> None:
    for uri in (H1, H2):
        if not reachable(uri):
            continue
        c = libvirt.open(uri)
        for name in names:
            try:
                c.lookupByName(name).destroy()
            except libvirt.libvirtError:
                pass  # not there: nothing to clean
        c.close()


def test_qemu_killed_under_a_vm_is_down_with_the_reason_within_two_vm_intervals(
        engine, manager_factory):
    need(reachable(H1), f"libvirtd not reachable at {H1} (tools/start-daemons.sh)")
    name = f"vp-eng-kill-{os.getpid()}"
    m = _state(manager_factory, engine, {"h1": H1})
    m.vms.create(model.VmSpec(name=name, memory_mib=256), "cl1")
    m.close()
    vm_interval = 2.0
    engine.start("--host-interval", "0.5", "--vm-interval", str(vm_interval))
    try:
        engine.vp("vm", "start", name, check=True)
        pid = int(Path(f"/run/libvirt/qemu/{name}.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        row = wait_for(lambda: (r := _vm(engine, name))["status"] == "Down" and r,
                       2 * vm_interval + 2, "VM Down after QEMU was killed", every=0.1)
        took = time.monotonic() - killed
        assert took <= 2 * vm_interval + 1, took
        assert row["reason"].startswith("crashed"), row
        downs = [e for e in engine.events(119) if name in e["message"]]
        assert len(downs) == 1, downs  # after_vm_destroy path ran once
    finally:
        _cleanup([name])


def test_second_host_stopped_goes_connecting_then_non_responsive_then_up(
        engine, manager_factory):
    need(reachable(H2), f"second libvirtd not reachable at {H2} (tools/start-second-host.sh)")
    name = f"vp-eng-h2-{os.getpid()}"
    m = _state(manager_factory, engine, {"h2": H2})
    m.vms.create(model.VmSpec(name=name, memory_mib=256), "cl1")
    m.close()
    interval, grace = 0.5, 3.0
    engine.start("--host-interval", str(interval), "--vm-interval", "1", "--grace-polls", "2",
                 "--grace-seconds", str(grace), "--grace-per-vm", "0")
    script = str(REPO / "tools" / "start-second-host.sh")
    try:
        wait_for(lambda: _host_status(engine, "h2") == "Up", 10, "h2 Up")
        engine.vp("vm", "start", name, "--host", "h2", check=True)
        began = time.time()
        # the script waits for the daemons to exit (QEMU keeps running): the engine
        # notices meanwhile
        subprocess.run(["bash", script, "--stop", H2_ROOT], check=True, capture_output=True,
                       timeout=60)
        wait_for(lambda: _host_status(engine, "h2") == "NonResponsive",
                 grace + 4 * interval + 2, "h2 NonResponsive", every=0.1)
    finally:
        subprocess.run(["bash", script, H2_ROOT], check=True, capture_output=True,
                       timeout=120)
    try:
        wait_for(lambda: _host_status(engine, "h2") == "Up", 15, "h2 Up again")
        # the restarted libvirtd found its guest again; the VM poll reconciles the store
        # with it: still Up, on the same host
        row = wait_for(lambda: (r := _vm(engine, name))["status"] == "Up" and r, 10,
                       "the VM on h2 reconciled Up")
        assert row["host"] == "h2" and name in running(H2), row
    finally:
        _cleanup([name])
    events = {e["code"]: e for e in reversed(engine.events())}  # the first of each code
    for code in (9008, 12, 14):
        assert code in events, sorted(events)
    connecting, down, back = events[9008]["ts"], events[12]["ts"], events[14]["ts"]
    assert began <= connecting <= down <= back
    # Connecting for the grace (counted from the last good poll, up to one interval
    # before the first missed one, or a VM poll's bulk-stats call, which the host's
    # loop waits for, when the daemon went away during it: here within a second), then
    # NonResponsive within a poll of its end
    vm_poll = 1.0
    assert grace - interval - vm_poll - 0.2 <= down - connecting \
        <= grace + 2 * interval + 0.5, down - connecting


def test_engine_killed_mid_migration_job_restart_leaves_the_vm_on_exactly_one_host(
        engine, manager_factory):
    need(reachable(H1), f"libvirtd not reachable at {H1} (tools/start-daemons.sh)")
    need(reachable(H2), f"second libvirtd not reachable at {H2} (tools/start-second-host.sh)")
    name = f"vp-eng-mig-{os.getpid()}"
    m = _state(manager_factory, engine, {"h1": H1, "h2": H2})
    m.vms.create(model.VmSpec(name=name, memory_mib=512), "cl1")
    m.close()
    engine.start("--host-interval", "0.5", "--vm-interval", "1")
    try:
        engine.vp("vm", "start", name, "--host", "h1", check=True)
        out = engine.vp("--async", "vm", "migrate", name, "--to", "h2", "--bandwidth", "1",
                        check=True).stdout
        job_id = out.split()[1]
        wait_for(lambda: json.loads(engine.vp("job", "show", job_id, check=True).stdout)
                 ["status"] == "started", 20, "migration job started", every=0.1)
        time.sleep(0.5)  # the migration is on the wire
        engine.kill(signal.SIGKILL)
        engine.start("--host-interval", "0.5", "--vm-interval", "1")
        job = json.loads(engine.vp("job", "show", job_id, check=True).stdout)
        assert job["status"] in ("failed", "finished"), job

        def settled():
            where = [h for h, uri in (("h1", H1), ("h2", H2)) if name in running(uri)]
            row = _vm(engine, name)
            return len(where) == 1 and row["host"] == where[0] and row["status"] == "Up" \
                and (where, row)

        where, row = wait_for(settled, 90, "VM on exactly one host, the store agreeing")
        assert len(where) == 1
    finally:
        _cleanup([name])


def test_a_storage_domain_whose_mount_disappears_goes_inactive_and_back(
        engine, manager_factory, tmp_path):
    need(os.geteuid() == 0, "bind mounts need root")
    export = tmp_path / "export"
    export.mkdir()
    m = manager_factory(state_path=engine.state)
    m.datacenters.add("dc1")
    dom = m.storage.add("ex", "posixfs", "dc1", {"spec": str(export), "vfs_type": "none",
                                                   "options": "bind"})
    target = m.context.drivers.storage("posixfs").mount_point(dom)  # type: ignore[attr-defined]
    m.close()
    engine.start("--host-interval", "0.5", "--storage-interval", "0.5")

    def status() -> str:
        rows = json.loads(engine.vp("storage", "list", "--json", check=True).stdout)
        return str(next(r for r in rows if r["name"] == "ex")["status"])

    assert status() == "Active"
    subprocess.run(["umount", str(target)], check=True)
    export.rename(tmp_path / "gone")
    try:
        wait_for(lambda: status() == "Inactive", 15, "domain Inactive")
    finally:
        (tmp_path / "gone").rename(export)
    wait_for(lambda: status() == "Active", 15, "domain Active again")
    codes = [e["code"] for e in engine.events()]
    assert 970 in codes and 9504 in codes
    # the engine's probe mounts again what it finds unmounted: stop it first, then remove
    # the domain, which unmounts it and removes its mount point (a raw umount left the
    # empty mount point in /run/virtplane/mnt, one per run)
    engine.stop()
    engine.vp("storage", "remove", "ex", check=True)
    assert not os.path.lexists(target)
