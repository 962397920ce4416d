"""The engine's real fence agents: the fence-agents stdin protocol, ssh soft fencing,
and the project's namespace hosts.

Each is a class in the entry-point group ``virtplane.fence_agents`` (see
:mod:`virtplane_engine.scheduling.fencing` for the protocol). A host names its
power agent in ``Host.fence_agent`` and its soft-fence agent in
``Host.soft_fence_agent``, with options in ``Host.fence_options``
(``virtplane fencing set``). Agents only act; whether to fence at all is
:func:`~virtplane_engine.scheduling.fencing_rules.decide`'s job.

* ``fence-agents`` runs a ClusterLabs ``fence_*`` program (Debian's
  ``fence-agents`` package) with ``key=value`` lines on stdin, as VDSM does;
* ``ssh`` soft-fences: restarts the host's libvirtd over ssh (oVirt restarts vdsmd);
* ``namespace-host`` drives a libvirt host started by ``tools/start-second-host.sh``
  in its own mount namespace: power off kills its daemons and QEMUs by their pid
  files, power on runs the script again, soft fencing restarts only libvirtd inside
  the same namespace (its QEMUs keep running).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from virtplane_engine.scheduling.fencing import (
    FenceAction,
    FenceError,
    FenceResult,
    FenceTarget,
    PowerState,
)

log = logging.getLogger("virtplane.engine.fence")

#: seconds an agent program or command may take
DEFAULT_TIMEOUT = 60.0


@runtime_checkable
class SupportsSoftFence(Protocol):
    """An agent that can restart a host's management daemon, leaving its VMs running."""

    def soft_fence(self, target: FenceTarget) -> FenceResult:
        """Restart the host's agent (libvirtd); ``ok`` when it was restarted."""


def _timeout(target: FenceTarget) -> float:
    try:
        return float(target.options.get("timeout", DEFAULT_TIMEOUT))
    except ValueError:
        raise FenceError(f"fence option timeout={target.options['timeout']!r} of host "
                         f"{target.host_name} is not a number of seconds") from None


class FenceAgentsProgram:
    """A ``fence_*`` program of the fence-agents project, spoken to on stdin.

    Options: ``agent`` (``fence_ipmilan``; a bare name is looked up in ``/usr/sbin``),
    and any option the program takes (``ipaddr``, ``login``, ``lanplus`` ...); the
    target's address, login, password and port fill ``ipaddr``, ``login``, ``passwd``
    and ``port`` when set. The program's status output (``Status: ON``/``OFF``) is
    the power state; exit status 0 means the action was done, 2 (for ``status``)
    means off.
    """

    name: ClassVar[str] = "fence-agents"

    def run(self, target: FenceTarget, action: FenceAction) -> FenceResult:
        agent = target.options.get("agent", "")
        if not agent:
            raise FenceError(f"host {target.host_name}: the fence-agents agent needs the "
                             "option agent=fence_NAME (e.g. fence_ipmilan)")
        program = agent if "/" in agent else f"/usr/sbin/{agent}"
        lines = {k: v for k, v in target.options.items() if k not in ("agent", "timeout")}
        for key, value in (("ipaddr", target.address), ("login", target.login),
                           ("passwd", target.password), ("port", target.port)):
            if value and key not in lines:
                lines[key] = value
        lines["action"] = action.value
        stdin = "".join(f"{k}={v}\n" for k, v in lines.items())
        try:
            proc = subprocess.run([program], input=stdin, capture_output=True, text=True,
                                  timeout=_timeout(target), check=False)
        except FileNotFoundError:
            raise FenceError(f"host {target.host_name}: fence program {program} is not "
                             "installed (Debian: apt-get install fence-agents)") from None
        except subprocess.TimeoutExpired:
            raise FenceError(f"host {target.host_name}: {program} {action.value} did not "
                             f"answer within {_timeout(target):g} s") from None
        text = (proc.stdout + proc.stderr).strip()
        power = PowerState.UNKNOWN
        upper = text.upper()
        if "STATUS: ON" in upper:
            power = PowerState.ON
        elif "STATUS: OFF" in upper:
            power = PowerState.OFF
        if action is FenceAction.STATUS:
            if proc.returncode == 2 and power is PowerState.UNKNOWN:
                power = PowerState.OFF
            return FenceResult(action, proc.returncode in (0, 2), power, text)
        if proc.returncode != 0:
            return FenceResult(action, False, power, text or f"exit status {proc.returncode}")
        if power is PowerState.UNKNOWN:
            power = {FenceAction.OFF: PowerState.OFF, FenceAction.ON: PowerState.ON}.get(
                action, PowerState.UNKNOWN)
        return FenceResult(action, True, power, text)


class SshSoftFence:
    """Soft fencing over ssh: runs ``soft_fence_command`` (default ``systemctl restart
    libvirtd``) as ``login@address`` (BatchMode: keys only, never a password prompt).
    It switches no power: power actions raise :class:`FenceError`."""

    name: ClassVar[str] = "ssh"

    def run(self, target: FenceTarget, action: FenceAction) -> FenceResult:
        raise FenceError(f"host {target.host_name}: the ssh agent only soft-fences (restarts "
                         "libvirtd); power actions need a power agent (fence-agents)")

    def soft_fence(self, target: FenceTarget) -> FenceResult:
        if not target.address:
            raise FenceError(f"host {target.host_name}: ssh soft fencing needs the host's "
                             "address (fence option address=...)")
        command = target.options.get("soft_fence_command", "systemctl restart libvirtd")
        who = f"{target.login}@{target.address}" if target.login else target.address
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", who, command]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True,
                                  timeout=_timeout(target), check=False)
        except subprocess.TimeoutExpired:
            raise FenceError(f"host {target.host_name}: ssh did not finish within "
                             f"{_timeout(target):g} s") from None
        except FileNotFoundError:
            raise FenceError("ssh is not installed on the engine's machine") from None
        text = (proc.stdout + proc.stderr).strip()
        return FenceResult(FenceAction.REBOOT, proc.returncode == 0, PowerState.ON,
                           text or f"{shlex.join(argv)}: exit status {proc.returncode}")


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill(pid: int | None, sig: int) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        log.debug("pid %d already gone", pid)


class NamespaceHostAgent:
    """Power and soft fencing for a namespace host of ``tools/start-second-host.sh``.

    Options: ``root`` (the host's folder, e.g. ``/srv/vp-h2``) and, for power on,
    ``script`` (the path of ``start-second-host.sh``). The host's daemons write their
    pid files in ``ROOT/run`` and its QEMUs theirs in ``ROOT/run/qemu``; nothing else
    on the machine is touched. "Power" is on while its libvirtd or one of its QEMUs
    runs.
    """

    name: ClassVar[str] = "namespace-host"

    def _root(self, target: FenceTarget) -> Path:
        root = target.options.get("root", "")
        if not root or not Path(root, "run").is_dir():
            raise FenceError(f"host {target.host_name}: namespace-host needs the option "
                             f"root=FOLDER of a host started by start-second-host.sh "
                             f"(got {root!r})")
        return Path(root)

    @staticmethod
    def _qemus(root: Path) -> list[int]:
        found = []
        for f in sorted((root / "run" / "qemu").glob("*.pid")):
            pid = _pid(f)
            if _alive(pid):
                assert pid is not None
                found.append(pid)
        return found

    def _power(self, root: Path) -> PowerState:
        daemon = _alive(_pid(root / "run" / "libvirtd.pid"))
        return PowerState.ON if daemon or self._qemus(root) else PowerState.OFF

    def run(self, target: FenceTarget, action: FenceAction) -> FenceResult:
        root = self._root(target)
        if action is FenceAction.STATUS:
            power = self._power(root)
            return FenceResult(action, True, power, f"{root}: power {power.value}")
        if action in (FenceAction.OFF, FenceAction.REBOOT):
            self._off(root)
            power = self._power(root)
            if action is FenceAction.OFF:
                return FenceResult(action, power is PowerState.OFF, power,
                                   f"{root}: daemons and QEMUs killed; power {power.value}")
        return self._on(target, root, action)

    def _off(self, root: Path) -> None:
        """SIGKILL, as a power cut: QEMUs first (they are what must surely be dead)."""
        victims = self._qemus(root) + [
            p for p in (_pid(root / "run" / f"{d}.pid")
                        for d in ("libvirtd", "virtlockd", "virtlogd")) if _alive(p)]
        for pid in victims:
            _kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in victims) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _on(self, target: FenceTarget, root: Path, action: FenceAction) -> FenceResult:
        script = target.options.get("script", "")
        if not script:
            raise FenceError(f"host {target.host_name}: namespace-host needs the option "
                             "script=PATH/start-second-host.sh to power the host on")
        try:
            proc = subprocess.run(["bash", script, str(root)], capture_output=True,
                                  text=True, timeout=_timeout(target), check=False)
        except subprocess.TimeoutExpired:
            raise FenceError(f"host {target.host_name}: {script} did not finish within "
                             f"{_timeout(target):g} s") from None
        power = self._power(root)
        return FenceResult(action, proc.returncode == 0 and power is PowerState.ON, power,
                           (proc.stdout + proc.stderr).strip())

    def soft_fence(self, target: FenceTarget) -> FenceResult:
        """Restart libvirtd alone, inside the namespace its virtlogd still runs in (so its
        QEMUs, whose monitors it reconnects to, are untouched)."""
        root = self._root(target)
        old = _pid(root / "run" / "libvirtd.pid")
        if _alive(old):
            _kill(old, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _alive(old) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(old):
                _kill(old, signal.SIGKILL)
        anchor = _pid(root / "run" / "virtlogd.pid")
        if not _alive(anchor):
            return FenceResult(FenceAction.REBOOT, False, self._power(root),
                               f"{root}: its virtlogd is gone too, so its namespace is; soft "
                               "fencing cannot restart libvirtd there")
        env = {**os.environ, "LIBVIRT_LOG_OUTPUTS": "2:file:/var/log/libvirt/libvirtd.log"}
        argv = ["nsenter", "-t", str(anchor), "-m", "--", "libvirtd", "-d", "-p",
                str(root / "run" / "libvirtd.pid")]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                                  timeout=_timeout(target), check=False,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        except subprocess.TimeoutExpired:
            raise FenceError(f"host {target.host_name}: restarting libvirtd did not finish "
                             f"within {_timeout(target):g} s") from None
        # libvirtd -d returns once the daemon reports it started (its status pipe)
        ok = proc.returncode == 0 and _alive(_pid(root / "run" / "libvirtd.pid"))
        return FenceResult(FenceAction.REBOOT, ok, self._power(root),
                           (proc.stdout + proc.stderr).strip()
                           or f"{root}: libvirtd restarted in its namespace")
