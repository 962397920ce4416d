"""Fencing, HA, maintenance, balancing and power saving against real libvirt hosts.

Two namespace hosts of this test run's own (tools/start-second-host.sh
/srv/vp-ha-PID-1 and -2, started for this module, fenced here, stopped and removed at
its end: the shared /srv/vp-h2 of other tests, qemu:///system and another run of these
tests are never touched): ``h1`` and ``hb``. Two namespace
hosts, not qemu:///system and one: inside a namespace host ``qemu:///system`` is
itself ("Attempt to migrate guest to the same host"), while each reaches the
other's socket under /srv.
``hb``'s power agent and soft-fence agent are ``namespace-host`` (docs/ha.md). Guests
have no disk (live migration needs no shared storage then) and no OS (KVM), except
the CPU-spinning tiny Linux guests of the balancing test (TCG).

Intervals are short (polls every 0.5 s, grace 1 s, no startup grace, a second failed
check 1 s after the first confirms); with two hosts one unreachable host is 50 % of
the cluster, which oVirt's default threshold (50 %) would never fence, so the tests
set ``fence_connectivity_threshold = 100``. Locally a missing component skips with
the reason; in CI it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import libvirt
import pytest

from tests.conftest import need
from tests.engine.conftest import EngineRun, wait_for
from tests.libvirt_hosts import reachable, running
from virtplane import model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "start-second-host.sh"
H1_ROOT = f"/srv/vp-ha-{os.getpid()}-1"
H1 = f"qemu+unix:///system?socket={H1_ROOT}/run/libvirt-sock"
HB_ROOT = f"/srv/vp-ha-{os.getpid()}-2"
HB = f"qemu+unix:///system?socket={HB_ROOT}/run/libvirt-sock"
PERF = REPO / "tests" / "perf" / "failover.json"

CONFIG = """
[engine]
host_interval = 0.5
vm_interval = 1.0
grace_polls = 1
grace_seconds = 1.0
grace_per_vm = 0.0
fence_startup_grace = 0.0
fence_confirm_interval = 1.0
soft_fence_timeout = 30.0
fence_connectivity_threshold = 100
ha_retry_interval = 2.0
maintenance_retry = 2.0
balance_interval = {balance}
load_source = "guests"
"""


def _destroy(names: list[str]) -> None:
    for uri in (H1, HB):
        if not reachable(uri):
            continue
        c = libvirt.open(uri)
        for name in names:
            try:
                c.lookupByName(name).destroy()
            except libvirt.libvirtError:
                pass  # not there: nothing to clean
        c.close()


def _start_hosts() -> None:
    for root in (H1_ROOT, HB_ROOT):
        caps = Path("/var/cache/libvirt/qemu/capabilities")
        seeded = Path(root, "cache", "qemu", "capabilities")
        if caps.is_dir() and not seeded.exists():
            # QEMU's capabilities as the main libvirtd probed them (valid while the
            # binaries are the same): a fresh host's libvirtd then starts in a second,
            # not after probing every emulator again
            shutil.copytree(caps, seeded)
        proc = subprocess.run(["bash", str(SCRIPT), root], capture_output=True, text=True,
                              timeout=120)
        need(proc.returncode == 0, f"namespace host {root} did not start: "
             f"{proc.stderr[-400:]} (libvirtd, tools/start-daemons.sh)")


@pytest.fixture(scope="module")
def hosts():
    """This run's two namespace hosts, stopped and removed at the end."""
    need(os.geteuid() == 0, "namespace hosts need root")
    _start_hosts()
    yield
    from virtplane_engine.fence_agents import NamespaceHostAgent
    from virtplane_engine.scheduling.fencing import FenceAction, FenceTarget

    for root in (H1_ROOT, HB_ROOT):  # its daemons and any QEMU left: all gone
        NamespaceHostAgent().run(FenceTarget(root, root, options={"root": root}),
                                 FenceAction.OFF)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cluster(hosts, engine: EngineRun, manager_factory, tmp_path, monkeypatch):
    """h1 + hb in cluster cl1, hb power-managed by the namespace-host agent; returns a
    function that starts the engine with a balance interval and policy."""
    _start_hosts()  # a test before may have left one powered off
    m = manager_factory(state_path=engine.state)
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    m.hosts.add("h1", "cl1", H1)
    m.hosts.add("hb", "cl1", HB)

    def fence(h: model.Host) -> None:
        h.fence_agent = h.soft_fence_agent = "namespace-host"
        h.fence_options = {"root": HB_ROOT, "script": str(SCRIPT)}

    m.context.store.modify(model.Host, "hb", fence)
    names: list[str] = []

    def start(balance: float = 60.0, policy: str = "none", setup: object = None,
              **params: str) -> object:
        if callable(setup):
            setup(m)
        if policy != "none":
            def set_policy(c: model.Cluster) -> None:
                c.scheduling_policy, c.scheduling_parameters = policy, dict(params)

            m.context.store.modify(model.Cluster, "cl1", set_policy)
        cfg = tmp_path / "virtplane.toml"
        cfg.write_text(CONFIG.format(balance=balance))
        monkeypatch.setenv("VIRTPLANE_CONFIG", str(cfg))
        m.close()
        engine.start()
        return m

    start.names = names  # type: ignore[attr-defined]
    yield start
    try:
        engine.stop()
    finally:
        _destroy(names)


def _vm(engine: EngineRun, name: str) -> dict:
    rows = json.loads(engine.vp("vm", "list", "--json", check=True).stdout)
    return next(r for r in rows if r["name"] == name)


def _host(engine: EngineRun, name: str) -> dict:
    rows = json.loads(engine.vp("host", "list", "--json", check=True).stdout)
    return next(r for r in rows if r["name"] == name)


def _create(engine: EngineRun, names: list[str], name: str, *extra: str) -> None:
    names.append(name)
    engine.vp("vm", "create", name, "--cluster", "cl1", "--memory", "256", *extra,
              check=True)


def _events_of(engine: EngineRun, name: str) -> list[dict]:
    """Events of one object (``virtplane events`` names it ``vm NAME``, ``host NAME``)."""
    return [e for e in engine.events() if str(e.get("object")).split()[-1:] == [name]]


def _codes(engine: EngineRun, name: str) -> list[int]:
    return [e["code"] for e in _events_of(engine, name)]


def test_fenced_host_ha_vm_restarts_elsewhere_exactly_once_non_ha_stays_down(
        engine, cluster):
    pid = os.getpid()
    ha, plain = f"vp-ha-{pid}", f"vp-noha-{pid}"
    cluster()
    names = cluster.names
    _create(engine, names, ha, "--ha", "--ha-priority", "50")
    _create(engine, names, plain)
    wait_for(lambda: _host(engine, "hb")["status"] == "Up", 10, "hb Up")
    # a plain start of the same VM, for the failover budget
    engine.vp("vm", "start", ha, "--host", "h1", check=True)
    engine.vp("vm", "destroy", ha, check=True)
    engine.vp("vm", "start", ha, "--host", "hb", check=True)
    engine.vp("vm", "start", plain, "--host", "hb", check=True)
    assert {ha, plain} <= running(HB)

    # host b dies: its libvirtd and QEMUs are gone (the agent's power off, by hand)
    from virtplane_engine.fence_agents import NamespaceHostAgent
    from virtplane_engine.scheduling.fencing import FenceAction, FenceTarget

    died = time.time()
    NamespaceHostAgent().run(FenceTarget("hb", "hb", options={"root": HB_ROOT}),
                             FenceAction.OFF)
    row = wait_for(lambda: (r := _vm(engine, ha))["status"] == "Up" and r["host"] == "h1"
                   and r, 60, "the HA VM Up on h1", every=0.1)
    assert row["host"] == "h1"
    wait_for(lambda: _host(engine, "hb")["status"] == "Up", 60, "hb powered on and Up again")
    time.sleep(2)  # a few more polls: nothing may start it a second time
    assert ha in running(H1) and ha not in running(HB)
    assert plain not in running(H1) and plain not in running(HB)
    p = _vm(engine, plain)
    assert p["status"] == "Down" and p["reason"].startswith("fenced"), p
    ha_codes, plain_codes = _codes(engine, ha), _codes(engine, plain)
    assert ha_codes.count(506) == 1, ha_codes  # restarted exactly once
    assert 9602 in ha_codes and 100020 in ha_codes, ha_codes
    assert 100027 in plain_codes and 100020 in plain_codes and 506 not in plain_codes, \
        plain_codes
    host_events = _events_of(engine, "hb")
    ts = {e["code"]: e["ts"] for e in reversed(host_events)}  # the first of each
    assert 100024 in ts, [e["code"] for e in host_events]
    vm_events = _events_of(engine, ha)
    vm_ts = {e["code"]: e["ts"] for e in reversed(vm_events)}
    # the engine's own figures: its start jobs of the same VM before the death (no CLI
    # process around them; their mean, starts vary by a few tenths here), and the
    # restart's event, written as soon as the VM is Up on h1
    began = [e["ts"] for e in vm_events if e["code"] == 100010 and e["ts"] < died]
    ended = [e["ts"] for e in vm_events if e["code"] == 100011 and e["ts"] < died]
    plain_start = sum(b - a for a, b in zip(began, ended, strict=True)) / len(began)
    failover = vm_ts[506] - died
    detection = ts[12] - died
    fencing = ts[100024] - ts[12]
    budget = detection + fencing + 1.3 * plain_start
    figures = {"failover_s": round(failover, 2), "detection_s": round(detection, 2),
               "fencing_s": round(fencing, 2), "plain_start_s": round(plain_start, 2),
               "budget_s": round(budget, 2), "within_budget": failover <= budget,
               "note": "detection: death to NonResponsive (grace 1 s, polls 0.5 s); "
                       "fencing: NonResponsive to power off confirmed (second failed check "
                       "1 s later); a KVM guest without OS and disk"}
    print("failover:", json.dumps(figures))
    PERF.write_text(json.dumps(figures, indent=2) + "\n")
    # the bound, reported (tests/perf/failover.json); asserted with 2 s of slack:
    # the restart races the kernel tearing down the killed QEMUs on this 2-core machine,
    # and single starts here vary by half a second
    assert failover <= budget + 2.0, figures


def test_libvirtd_killed_soft_fencing_restarts_it_vms_untouched(engine, cluster):
    name = f"vp-soft-{os.getpid()}"
    cluster()
    _create(engine, cluster.names, name, "--ha")
    wait_for(lambda: _host(engine, "hb")["status"] == "Up", 10, "hb Up")
    engine.vp("vm", "start", name, "--host", "hb", check=True)
    qemu = int(Path(HB_ROOT, "run", "qemu", f"{name}.pid").read_text())
    os.kill(int(Path(HB_ROOT, "run", "libvirtd.pid").read_text()), signal.SIGKILL)
    wait_for(lambda: _host(engine, "hb")["status"] == "NonResponsive", 15, "hb NonResponsive",
             every=0.1)
    wait_for(lambda: _host(engine, "hb")["status"] == "Up", 40, "hb Up after soft fencing",
             every=0.2)
    row = wait_for(lambda: (r := _vm(engine, name))["status"] == "Up" and r, 15,
                   "the VM Up again on hb")
    assert row["host"] == "hb"
    os.kill(qemu, 0)  # the very same QEMU still runs
    assert int(Path(HB_ROOT, "run", "qemu", f"{name}.pid").read_text()) == qemu
    assert name not in running(H1)
    codes = [e["code"] for e in engine.events()]
    assert 100022 in codes and 100024 not in codes and 506 not in codes, codes


def test_maintenance_migrates_both_vms_away_then_maintenance(engine, cluster):
    pid = os.getpid()
    a, b = f"vp-mnt-a-{pid}", f"vp-mnt-b-{pid}"
    cluster()
    for n in (a, b):
        _create(engine, cluster.names, n)
    wait_for(lambda: _host(engine, "hb")["status"] == "Up", 10, "hb Up")
    for n in (a, b):
        engine.vp("vm", "start", n, "--host", "hb", check=True)
    # --wait: the CLI returns once the engine has moved both VMs and hb is in Maintenance
    proc = engine.vp("host", "maintenance", "hb", "--wait", "--timeout", "60", check=True)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("host hb: PreparingForMaintenance"), proc.stdout
    assert lines[-1].startswith("host hb: Maintenance"), proc.stdout
    assert _host(engine, "hb")["status"] == "Maintenance"
    for n in (a, b):
        row = _vm(engine, n)
        assert row["status"] == "Up" and row["host"] == "h1", row
    assert {a, b} <= running(H1) and not {a, b} & running(HB)
    codes = [e["code"] for e in engine.events()]
    assert codes.count(63) >= 2 and 100050 in codes and 100051 in codes, codes
    engine.vp("host", "maintenance", "hb", "--off", check=True)
    assert _host(engine, "hb")["status"] == "Up"


@pytest.fixture(scope="module")
def tiny_guest():
    out = REPO / ".work" / "tiny-guest"
    proc = subprocess.run(["bash", str(REPO / "tools" / "build-tiny-guest.sh"), str(out)],
                          capture_output=True, text=True)
    need(proc.returncode == 0, f"could not build the tiny guest: {proc.stderr[-500:]}")
    return out


def test_evenly_distributed_moves_one_spinning_vm_and_nothing_moves_back(
        engine, cluster, tiny_guest, tmp_path):
    """Two guests spinning a CPU each on hb (TCG tiny Linux guests; load_source = guests,
    so hb's load is their CPU demand, the time they ran plus the time their vCPUs waited
    for a physical CPU: ~100 % of its 2 CPUs however busy the machine is, h1 0 %): after
    CpuOverCommitDurationMinutes (1, the smallest) one moves to h1 (50 % / 50 %, under
    HighUtilization 60), and the following cycles move nothing."""
    pid = os.getpid()
    names = [f"vp-spin-a-{pid}", f"vp-spin-b-{pid}"]

    def setup(m) -> None:
        for n in names:
            cluster.names.append(n)
            m.vms.create(model.VmSpec(
                name=n, memory_mib=256,
                boot=model.BootSpec(kernel=str(tiny_guest / "vmlinuz"),
                                    initrd=str(tiny_guest / "initrd.img"),
                                    cmdline="console=ttyS0 tiny_spin"),
                serial_log=str(tmp_path / f"{n}.log"),
                custom_properties={"virt_type": "qemu"}), "cl1")

    cluster(balance=5.0, policy="evenly_distributed", setup=setup, HighUtilization="60",
            CpuOverCommitDurationMinutes="1")
    wait_for(lambda: _host(engine, "hb")["status"] == "Up", 10, "hb Up")
    for n in names:
        engine.vp("vm", "start", n, "--host", "hb", check=True)
    # the load is their demand only if libvirt reports the vCPUs' wait for a CPU
    c = libvirt.open(HB)
    try:
        stats = c.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_VCPU)
    finally:
        c.close()
    found = {dom.name(): raw for dom, raw in stats}
    assert all("vcpu.0.delay" in found.get(n, {}) for n in names), \
        "libvirt reports no vcpu.N.delay (scheduler statistics): the guests' CPU demand " \
        "cannot be measured here"
    try:
        moved = wait_for(lambda: [e for e in engine.events(12001)], 150,
                         "a balancing move (event 12001)", every=1.0)
    except AssertionError:
        print(json.dumps(engine.status().get("load"), indent=1))
        print(engine.vp("scheduling", "balance", "--dry-run").stdout)
        raise
    assert len(moved) == 1, moved
    which = next(n for n in names if n in moved[0]["message"].split()[4:5])
    wait_for(lambda: _vm(engine, which)["host"] == "h1" and _vm(engine, which)["status"]
             == "Up", 60, "the moved VM Up on h1", every=0.5)
    time.sleep(16)  # three more cycles
    assert len(engine.events(12001)) == 1, engine.events(12001)
    # one spinning vCPU on each 2-CPU host: ~50 % each, under HighUtilization (60)
    load = engine.status()["load"]
    print("loads after the move:", json.dumps(load))
    for host in ("h1", "hb"):
        assert 35.0 <= load[host]["cpu_percent"] < 60.0, load
    stay = next(n for n in names if n != which)
    assert _vm(engine, stay)["host"] == "hb" and _vm(engine, which)["host"] == "h1"
    dry = engine.vp("scheduling", "balance", "--dry-run", check=True).stdout
    assert "[dry run]" in dry and "would move" not in dry, dry


def test_power_saving_empties_an_idle_host_into_maintenance(engine, cluster):
    """Idle guests (no OS, KVM) on both hosts: after CpuOverCommitDurationMinutes under
    LowUtilization, hb's only VM moves to h1 (emptying a host is what counts) and, with
    EnableAutomaticHostPowerManagement, the empty power-managed hb goes to Maintenance."""
    pid = os.getpid()
    on_h1, on_hb = [f"vp-ps-a-{pid}", f"vp-ps-b-{pid}"], f"vp-ps-c-{pid}"
    cluster(balance=5.0)
    for n in (*on_h1, on_hb):
        _create(engine, cluster.names, n)
    wait_for(lambda: _host(engine, "hb")["status"] == "Up", 10, "hb Up")
    for n in on_h1:
        engine.vp("vm", "start", n, "--host", "h1", check=True)
    engine.vp("vm", "start", on_hb, "--host", "hb", check=True)
    # the policy only now: with both hosts empty its first cycle would (rightly) put one
    # of them into maintenance at once
    engine.vp("scheduling", "policy", "set", "cl1", "power_saving", "-p",
              "CpuOverCommitDurationMinutes=1", "-p", "EnableAutomaticHostPowerManagement=true",
              "-p", "HostsInReserve=0", check=True)
    wait_for(lambda: _host(engine, "hb")["status"] == "Maintenance", 150,
             "hb in Maintenance by power saving", every=1.0)
    for n in (*on_h1, on_hb):
        row = _vm(engine, n)
        assert row["status"] == "Up" and row["host"] == "h1", row
    moves = engine.events(12001)
    assert len(moves) == 1 and on_hb in moves[0]["message"], moves
    assert any("maintenance" in e["message"] for e in engine.events(100062))
