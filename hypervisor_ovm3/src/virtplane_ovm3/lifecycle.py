"""The VM side of an ``ovm3`` connection: start, stop, reboot, state and statistics
of the guests on one server, through the agent's ``xen`` calls.

What the agent API has no call for (pause/resume, hibernation, snapshots of a
running VM) is refused with the reason, never faked.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from virtplane.errors import HostUnreachable, HypervisorError, VirtplaneError
from virtplane_ovm3 import answers, vmcfg
from virtplane_ovm3.answers import quote
from virtplane_ovm3.client import AgentFault, listify
from virtplane_ovm3.host import REPO_ROOT, Ovm3HostBase

log = logging.getLogger("virtplane.ovm3")

#: xend's six state flags r b p s c d -> VDSM status
_FLAGS = {"r": "Up", "b": "Up", "p": "Paused", "s": "Powering down", "c": "Down", "d": "Down"}


class Ovm3VmBase(Ovm3HostBase):
    """The guests of one OVM3 server (the VM calls of the connection)."""

    def _find(self, name: str) -> dict[str, Any] | None:
        for vm in self.agent.xen.list_vms():
            if vm.get("name") == name:
                return vm
        return None

    def _ids(self, name: str) -> tuple[str, str]:
        vm = self._find(name)
        if vm is None:
            raise HypervisorError(f"VM {name!r} is not on {self.client.display}")
        # CloudStack reads the repository from the first disk's path; a disk kept
        # elsewhere falls back to the server's mounted repository
        vbds = listify(vm["device"].get("vbd"))  # checked: structs
        known = {str(r["@Uuid"]) for r in self.repositories()}
        repo = None
        if vbds and str(vbds[0].get("uname", "")).startswith("file:" + REPO_ROOT + "/"):
            repo = str(vbds[0]["uname"]).split("/")[3]
        # only a repository the server itself lists is taken from a disk path
        return repo if repo in known else self.repo_id(), str(vm["uuid"])

    def start(self, name: str, xml: str, flags: int = 0) -> str:
        """create_vm + start_vm; whatever fails after create_vm (the start, or reading
        the started VM back) stops and deletes it again, so nothing stays defined. A
        create_vm refused because a stop left this VM's stopped definition behind
        deletes that and creates it again (:meth:`_cleared_leftover`)."""
        params = vmcfg.check_params(vmcfg.parse(xml), name)
        repo, vm_id = self.repo_id(), str(params["uuid"])
        try:
            try:
                self.agent.xen.create_vm(repo, vm_id, params)
            except AgentFault:
                if not self._cleared_leftover(name, repo, vm_id):
                    raise  # the agent says it made nothing
                self.agent.xen.create_vm(repo, vm_id, params)
        except AgentFault:
            raise
        except BaseException as exc:
            # no readable answer: it may have been made
            self._undo(repo, vm_id, exc, stop=False)
            raise
        try:
            self.agent.xen.start_vm(repo, vm_id)
            live = self._live_xml(name, repo, vm_id)
            # the caller reads the state next: a listing that cannot be read must undo
            # the start here, or the VM would be recorded Down while it runs
            self.state(name)
            return live
        except BaseException as exc:
            self._undo(repo, vm_id, exc)
            raise

    def _cleared_leftover(self, name: str, repo: str, vm_id: str) -> bool:
        """Delete a stopped definition of this very VM (same uuid and name) that a stop
        left behind when its ``delete_vm`` failed; whether there was one. A running
        guest, another VM's config or one that cannot be read is left alone."""
        try:
            if self._listed(repo, vm_id) is not None:
                return False
            cfg = self.agent.xen.get_vm_config(repo, vm_id)
        except VirtplaneError:
            return False  # nothing defined under this id (or unreadable): not a leftover
        if str(cfg.get("uuid", "")).lower() != vm_id.lower() or cfg.get("name") != name:
            return False
        self.agent.xen.delete_vm(repo, vm_id)
        log.info("OVM3 agent %s: deleted the stopped definition of VM %r (%s) an earlier "
                 "stop left behind, before starting it", self.client.display, name, vm_id)
        return True

    def _delete_stopped(self, name: str, repo: str, vm_id: str) -> None:
        """``delete_vm`` of a guest that stopped: a failure leaves only its definition
        on the server (the next start deletes it first, :meth:`_cleared_leftover`), so
        it is logged and the VM is Down all the same."""
        try:
            self.agent.xen.delete_vm(repo, vm_id)
        except VirtplaneError as exc:
            log.warning("OVM3 agent %s: VM %r stopped, but deleting its definition failed "
                        "(%s); its next start deletes it first", self.client.display, name,
                        quote(str(exc), 200))

    def _undo(self, repo: str, vm_id: str, exc: BaseException, stop: bool = True) -> None:
        """Stop (forced) and delete a VM whose start failed; what fails is logged."""
        steps: list[tuple[Any, tuple[Any, ...]]] = [(self.agent.xen.delete_vm, (repo, vm_id))]
        if stop:
            steps.insert(0, (self.agent.xen.stop_vm, (repo, vm_id, True)))
        for call, args in steps:
            try:
                call(*args)
            except VirtplaneError as undo_exc:
                log.warning("OVM3 agent %s: undoing the start of %s after %s: %s",
                            self.client.display, vm_id, quote(str(exc), 200),
                            quote(str(undo_exc), 200))

    def live_xml(self, name: str) -> str:
        repo, vm_id = self._ids(name)
        return self._live_xml(name, repo, vm_id)

    def _live_xml(self, name: str, repo: str, vm_id: str) -> str:
        """The running VM's vm.cfg, read back: it must be the VM asked for."""
        cfg = self.agent.xen.get_vm_config(repo, vm_id)
        w = f"OVM3 agent {self.client.display} get_vm_config"
        if str(cfg.get("uuid", "")).lower() != vm_id.lower() or cfg.get("name") != name:
            raise answers.bad(w, f"the config of {vm_id} names VM {quote(cfg.get('name'), 60)} "
                                 f"({quote(cfg.get('uuid'), 40)}), not {name!r} ({vm_id})")
        return vmcfg.render(cfg)

    def shutdown(self, name: str, timeout: float) -> str:
        repo, vm_id = self._ids(name)
        self._stop(name, repo, vm_id, force=False)
        deadline = time.monotonic() + timeout
        how = "shutdown"
        while self._running(repo, vm_id):
            if time.monotonic() > deadline:
                self._stop(name, repo, vm_id, force=True)
                how = "destroyed"
                break
            time.sleep(self.settings.shutdown_poll_seconds)
        self._delete_stopped(name, repo, vm_id)
        return how

    def _stop(self, name: str, repo: str, vm_id: str, force: bool) -> None:
        """``stop_vm``; when the call fails, what the server says decides (``list_vm``).

        The agent may stop the guest and still fail the call (a fault raised after
        xend stopped it, a reply that comes too late): a guest the agent no longer
        lists as running is stopped as asked, so the failure is logged and the stop
        goes on, and the VM is recorded Down. A guest that still runs, or whose state
        cannot be read, raises the call's error saying so (the VM stays Up).
        """
        call = "stop_vm (forced)" if force else "stop_vm"
        try:
            self.agent.xen.stop_vm(repo, vm_id, force)
        except VirtplaneError as exc:
            kind = HostUnreachable if isinstance(exc, HostUnreachable) else HypervisorError
            try:
                vm = self._listed(repo, vm_id)
                state = None if vm is None else self._status(vm)[1]
            except VirtplaneError as probe:
                raise kind(f"{exc} (whether VM {name!r} stopped is unknown: its state could "
                           f"not be read: {quote(str(probe), 200)})") from exc
            if state is not None:
                raise kind(f"{exc} (VM {name!r} is still running on {self.client.display}: "
                           f"{state})") from exc
            log.warning("OVM3 agent %s: %s of VM %r failed (%s), but the agent lists it as "
                        "stopped; going on", self.client.display, call, name,
                        quote(str(exc), 200))

    def _listed(self, repo: str, vm_id: str) -> dict[str, Any] | None:
        """The guest's ``list_vm`` entry while it runs (has a domain id), else None."""
        vm = self.agent.xen.list_vm(repo, vm_id)
        return vm if vm and vm.get("domid") not in (None, "", "-1") else None

    def _running(self, repo: str, vm_id: str) -> bool:
        return self._listed(repo, vm_id) is not None

    def destroy(self, name: str) -> None:
        repo, vm_id = self._ids(name)
        self._stop(name, repo, vm_id, force=True)
        self._delete_stopped(name, repo, vm_id)

    def reboot(self, name: str) -> None:
        self.agent.xen.reboot_vm(*self._ids(name), 3)

    def _unsupported(self, what: str) -> HypervisorError:
        return HypervisorError(f"{what} is not available on OVM3 (the agent API has no call "
                               "for it)")

    def pause(self, name: str) -> None:
        raise self._unsupported("pausing a VM")

    def resume(self, name: str) -> None:
        raise self._unsupported("resuming a VM")

    def save(self, name: str, path: str) -> None:
        raise self._unsupported("hibernation")

    def restore(self, name: str, path: str, xml: str | None) -> str:
        raise self._unsupported("restoring a hibernated VM")

    def snapshot_disks(self, name: str, disks: list[tuple[str, dict[str, Any]]],
                       memory_path: str | None) -> None:
        raise self._unsupported("a snapshot of a running VM")

    def state(self, name: str) -> tuple[str, str]:
        vm = self._find(name)
        if vm is None:
            return "Down", "not on the server"
        return self._status(vm)

    def _status(self, vm: dict[str, Any]) -> tuple[str, str]:
        w = f"OVM3 agent {self.client.display} list_vms"
        flags = answers.text(vm.get("state", ""), w, f"VM {quote(vm['name'], 60)} state", 16)
        for flag in flags.replace("-", ""):
            if flag in _FLAGS:
                return _FLAGS[flag], f"xen state {flags}"
        return "Up", f"xen state {flags}"

    def vnc_port(self, name: str) -> int | None:
        vm = self._find(name)
        return None if vm is None else self._vnc(vm)

    def _vnc(self, vm: dict[str, Any]) -> int | None:
        vfbs = listify(vm["device"].get("vfb"))  # checked: structs
        if not vfbs or vfbs[0].get("location") is None:
            return None
        w = f"OVM3 agent {self.client.display} list_vms"
        location = answers.text(vfbs[0]["location"], w,
                                f"VM {quote(vm['name'], 60)} vfb location", 64)
        if ":" not in location:
            return None
        return answers.count(location.rsplit(":", 1)[1], w,
                             f"VM {quote(vm['name'], 60)} VNC port", 1, 65535)

    def all_vm_stats(self) -> list[dict[str, Any]]:
        """list_vms, then ``ovs_domU_stats`` per guest (the agent has no bulk call)."""
        out = []
        for vm in self.agent.xen.list_vms():  # checked: names and uuids, no duplicates
            if vm["name"] == "Domain-0":
                continue
            s = self.agent.cloudstack.ovs_domU_stats(vm["name"])
            w = f"OVM3 agent {self.client.display} ovs_domU_stats {quote(vm['name'], 60)}"
            wl = f"OVM3 agent {self.client.display} list_vms {quote(vm['name'], 60)}"

            def num(key: str, hi: float = 2.0**63, where: str = w,
                    src: dict[str, Any] = s) -> float:
                return answers.number(src.get(key, 0), where, key, 0, hi)

            out.append({
                "name": vm["name"], "uuid": vm["uuid"], "status": self._status(vm)[0],
                "vcpus": answers.count(s.get("vcpus", vm.get("vcpus", 0)), w, "vcpus", 0, 4096),
                "memory_mib": answers.count(vm.get("memory", 0), wl, "memory", 0, 1 << 32),
                "cpu_time_seconds": num("cputime", 2.0**53),
                "uptime_seconds": num("uptime", 2.0**53),
                "net_rx_bytes": int(num("rx_bytes")), "net_tx_bytes": int(num("tx_bytes")),
                "disk_read_bytes": int(num("rd_bytes")),
                "disk_write_bytes": int(num("wr_bytes")),
                "vnc_port": self._vnc(vm),
            })
        return out
