"""VDSM's key names beside virtplane's, in the stats and capabilities payloads.

Hook scripts written for VDSM read ``getAllVmStats`` and ``getCapabilities``
payloads by VDSM's names (``vmId``, ``cpuUser``, ``network``, ``cpuFlags``,
``kvmEnabled`` ...); oVirt's engine reads them too. Drivers report in
virtplane's own names (``cpu_time_ns``, ``nics``, ``cpu_features`` ...), which
embedders and the CLI already use, so the services add VDSM's keys *beside*
them, before the ``after_get_*`` hooks run: a script sees both, and whatever it
adds or changes is what the service returns. A key a driver already reports by
VDSM's name is left as it is.

The mapping runs in the services' call path, never in a driver's bulk call
(the engine's monitoring reads the driver directly and pays nothing for it),
and costs a few dictionary operations per VM, disk and NIC.

VDSM reports most numbers as strings (its XML-RPC past); so does this module,
for the keys it adds. See docs/hook_scripts.md for the table of keys.
"""

from __future__ import annotations

import platform
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

#: previous CPU samples kept for rates (one per VM): more than this and the oldest half
#: goes, so VMs that left a long-running engine do not pile up
MAX_SAMPLES = 10_000

_LOCAL_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:///")

#: libvirt bulk-stats disk keys -> VDSM's ``disks`` keys
_DISK_KEYS = (("rd.bytes", "readBytes"), ("wr.bytes", "writtenBytes"),
              ("rd.reqs", "readOps"), ("wr.reqs", "writeOps"),
              ("allocation", "truesize"), ("physical", "apparentsize"))
#: libvirt bulk-stats NIC keys -> VDSM's ``network`` keys
_NIC_KEYS = (("rx.bytes", "rx"), ("tx.bytes", "tx"), ("rx.errs", "rxErrors"),
             ("rx.drop", "rxDropped"), ("tx.errs", "txErrors"), ("tx.drop", "txDropped"))


def _pct(nanoseconds: float, seconds: float) -> str:
    """VDSM's ``_usage_percentage``: CPU nanoseconds over an interval, as a percentage
    (of one CPU), formatted as VDSM's XML-RPC layer did (two decimals)."""
    return f"{100 * nanoseconds / seconds / 1e9:.2f}"


class VmStatsShaper:
    """Adds VDSM's ``getAllVmStats`` keys to a driver's stats of one VM.

    CPU percentages are rates, so the previous sample of each VM is kept (VDSM
    does the same between its samplings); the first time a VM is seen the rate
    is taken since it started when that is known, else it is ``0.00`` as in
    VDSM before its second sample.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, tuple[float, float, float]] = {}
        self._lock = threading.Lock()

    def shape(self, report: dict[str, Any], *, vm_id: str | None = None,
              vm_type: str = "", elapsed: float | None = None) -> dict[str, Any]:
        """Add VDSM's keys to ``report`` (changed in place and returned).

        ``vm_id`` is the VM's id when the caller knows it (else the reported
        ``uuid``, which virtplane sets to the id); ``elapsed`` the seconds since
        the VM started, when the driver does not report ``uptime_seconds``.
        """
        now = self._clock()
        vm_id = vm_id or report.get("uuid")
        if report.get("uptime_seconds") is not None:
            elapsed = float(report["uptime_seconds"])
        add = report.setdefault
        add("vmId", vm_id)
        add("vmName", report.get("name"))
        add("vmType", vm_type)
        add("statusTime", str(int(now * 1000)))
        # virtplane only reports a VM it could read: its monitor answered
        add("monitorResponse", "0")
        if elapsed is not None:
            add("elapsedTime", str(int(elapsed)))
        if report.get("vcpus") is not None:
            add("vcpuCount", str(report["vcpus"]))
        self._cpu(report, str(vm_id or report.get("name")), now, elapsed)
        self._memory(report)
        self._disks(report)
        self._network(report, now)
        return report

    def _cpu(self, report: dict[str, Any], key: str, now: float,
             elapsed: float | None) -> None:
        total = report.get("cpu_time_ns")
        if total is None and report.get("cpu_time_seconds") is not None:
            total = float(report["cpu_time_seconds"]) * 1e9
        user, system = report.get("cpu_user_ns"), report.get("cpu_system_ns")
        usersys = float(user or 0) + float(system or 0)
        if user is not None or system is not None:
            report.setdefault("cpuUsage", str(int(usersys)))
        if total is None:
            report.setdefault("cpuUser", "0.00")
            report.setdefault("cpuSys", "0.00")
            return
        total = float(total)
        with self._lock:
            previous = self._last.get(key)
            if len(self._last) >= MAX_SAMPLES:
                for old in list(self._last)[:MAX_SAMPLES // 2]:
                    del self._last[old]
            self._last[key] = (now, total, usersys)
        if previous is not None and now > previous[0] and total >= previous[1]:
            interval, d_total, d_usersys = (now - previous[0], total - previous[1],
                                            usersys - previous[2])
        elif elapsed:
            interval, d_total, d_usersys = elapsed, total, usersys
        else:
            interval = d_total = d_usersys = 0.0
        if interval <= 0:
            report.setdefault("cpuUser", "0.00")
            report.setdefault("cpuSys", "0.00")
            return
        # VDSM's arithmetic: cpuSys is the host-side user+system time, cpuUser the rest
        report.setdefault("cpuSys", _pct(d_usersys, interval))
        report.setdefault("cpuUser", _pct(max(d_total - d_usersys, 0.0), interval))

    @staticmethod
    def _memory(report: dict[str, Any]) -> None:
        available = report.get("balloon_available_kib")
        unused = report.get("balloon_unused_kib")
        used = 0
        if available and unused is not None:
            used = int(100 * (float(available) - float(unused)) / float(available))
        report.setdefault("memUsage", str(max(used, 0)))
        if report.get("balloon_kib") is not None:
            current = str(report["balloon_kib"])
            report.setdefault("balloonInfo", {
                "balloon_max": str(report.get("balloon_max_kib") or current),
                "balloon_min": "0", "balloon_cur": current, "balloon_target": current})

    @staticmethod
    def _disks(report: dict[str, Any]) -> None:
        disks = report.get("disks")
        if not isinstance(disks, dict):
            return
        for stats in disks.values():
            if not isinstance(stats, dict):
                continue
            for ours, theirs in _DISK_KEYS:
                if ours in stats:
                    stats.setdefault(theirs, str(stats[ours]))
            for zero in ("readLatency", "writeLatency", "flushLatency"):
                stats.setdefault(zero, "0")
            stats.setdefault("readRate", "0.0")
            stats.setdefault("writeRate", "0.0")

    @staticmethod
    def _network(report: dict[str, Any], now: float) -> None:
        nics = report.get("nics")
        if "network" in report or not isinstance(nics, dict):
            return
        network = {}
        for name, stats in nics.items():
            entry: dict[str, Any] = {"name": name, "state": "unknown", "sampleTime": now}
            if isinstance(stats, dict):
                entry.update((theirs, str(stats[ours])) for ours, theirs in _NIC_KEYS
                             if ours in stats)
                if stats.get("mac"):
                    entry["macAddr"] = stats["mac"]
            network[name] = entry
        report["network"] = network


# ------------------------------------------------------------------ capabilities


def _os_release() -> dict[str, str]:
    """This machine's OS as VDSM's ``operatingSystem`` (name, version, release)."""
    try:
        release = platform.freedesktop_os_release()
    except OSError:
        release = {}
    return {"name": release.get("NAME", platform.system()),
            "version": release.get("VERSION_ID", ""),
            "release": platform.release()}


def host_caps(caps: dict[str, Any], uri: str, driver: str) -> dict[str, Any]:
    """Add VDSM's ``getCapabilities`` keys to ``caps`` (changed in place and returned).

    ``caps`` holds virtplane's keys (the driver's, then the typed ones);
    ``operatingSystem`` is read from ``/etc/os-release`` when the host is this
    machine (a URI with no server part, ``qemu:///system``) and left empty
    otherwise, unless the driver reported it.
    """
    add = caps.setdefault
    cpu: Mapping[str, Any] = caps["cpu"] if isinstance(caps.get("cpu"), Mapping) else {}
    types = caps.get("domain_types")
    kvm = isinstance(types, Mapping) and any("kvm" in t for t in types.values())
    add("kvmEnabled", "true" if kvm else "false")
    add("cpuModel", caps.get("cpu_model") or cpu.get("model") or "")
    models = [f"model_{m}" for m in caps.get("usable_cpu_models") or []]
    add("cpuFlags", ",".join([*(caps.get("cpu_features") or []), *models]))
    cells = max(len(caps.get("numa_cells") or []), 1)
    sockets = int(caps.get("sockets") or 0) * cells or int(cpu.get("sockets") or 0)
    cores = int(caps.get("cores") or cpu.get("cores") or 0)
    threads = int(caps.get("threads") or cpu.get("threads") or 1)
    add("cpuSockets", str(sockets))
    add("cpuCores", str(cores * sockets))
    add("cpuThreads", str(int(caps.get("cpus") or 0) or cores * sockets * threads))
    add("cpuSpeed", str(caps.get("mhz") or cpu.get("mhz") or 0))
    add("memSize", str(caps.get("memory_mib") or 0))
    add("vmTypes", [driver])
    add("hooks", {})
    if "operatingSystem" not in caps:
        local = _LOCAL_URI.match(uri) is not None
        caps["operatingSystem"] = (_os_release() if local
                                   else {"name": "", "version": "", "release": ""})
    return caps
