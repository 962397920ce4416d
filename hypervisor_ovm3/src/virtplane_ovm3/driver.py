"""The virtplane side of the ``ovm3`` driver: one :class:`Ovm3Connection` per server.

What the agent API gives is what this driver offers; the rest is refused with
the reason, never faked: no pause/resume, hibernation, snapshots of running
VMs or disk hot-plug (CloudStack's OVM3 plugin has none of these either), and
live migration only between servers of one server pool.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
import uuid as uuidlib
from typing import TYPE_CHECKING, Any

import xmltodict

from virtplane.errors import HostUnreachable, HypervisorError, InvalidInput, VirtplaneError
from virtplane_ovm3 import answers, vmcfg
from virtplane_ovm3.answers import quote
from virtplane_ovm3.client import Agent, AgentClient, AgentFault, listify
from virtplane_ovm3.settings import Ovm3Settings

if TYPE_CHECKING:
    from virtplane.domxml import Domain

log = logging.getLogger("virtplane.ovm3")

SUPPORTED_VERSIONS = ("3.2.", "3.3.")
REPO_ROOT = "/OVS/Repositories"
ROLES = "xen,utility"

#: xend's six state flags r b p s c d -> VDSM status
_FLAGS = {"r": "Up", "b": "Up", "p": "Paused", "s": "Powering down", "c": "Down", "d": "Down"}


def password(settings: Ovm3Settings) -> str | None:
    if settings.password_file:
        try:
            with open(settings.password_file, encoding="utf-8") as f:
                return f.readline().rstrip("\n")
        except OSError as exc:
            raise InvalidInput(f"[plugin.ovm3] password_file {settings.password_file}: "
                               f"{exc.strerror}") from None
    return os.environ.get(settings.password_env)


def dedash(u: str) -> str:
    return u.replace("-", "")


class Ovm3Connection:
    """A connection to one OVM3 server's agent."""

    #: hooks get ``vm.cfg`` (a :class:`virtplane.payloads.ConfigPayload`), not libvirt XML
    config_format = "vm.cfg"
    live_snapshots = False

    def __init__(self, uri: str, settings: Ovm3Settings) -> None:
        self.uri = uri
        self.settings = settings
        self.client = AgentClient(uri, password(settings), verify_tls=settings.verify_tls,
                                  ca_file=settings.ca_file, timeout=settings.timeout_seconds)
        self.agent = Agent(self.client)

    # ------------------------------------------------------------ config

    parse_config = staticmethod(vmcfg.parse)
    render_config = staticmethod(vmcfg.render)

    def native_config(self, xml: str) -> str:
        """``vm.cfg`` text for a domain virtplane built."""
        return vmcfg.render(vmcfg.from_domain(xml, self.settings.bridges))

    def adapt_domain(self, domain: Domain, arch: str, virt_type: str | None) -> None:
        """A Xen domain: ``hvm`` when ``virt_type`` says so, else paravirtualised
        (``linux``) as CloudStack creates them (plugin API 2.0)."""
        if arch != "x86_64":
            raise InvalidInput(f"OVM3 servers run x86_64 guests, not {arch}")
        if virt_type not in (None, *vmcfg.DOMAIN_TYPES):
            raise InvalidInput(f"custom property virt_type={virt_type!r} is not allowed on "
                               f"OVM3; use {' or '.join(vmcfg.DOMAIN_TYPES)}")
        domain.type = "xen"
        domain.os.type = "hvm" if virt_type == "hvm" else "linux"

    def render(self, domain: dict[str, Any], arch: str, virt_type: str | None = None) -> None:
        """Plugin API 1.x form of :meth:`adapt_domain` (deprecated), kept while the core
        and the plugin kit still call it."""
        from virtplane.domxml import render_through

        render_through(domain, lambda dom: self.adapt_domain(dom, arch, virt_type))

    # ------------------------------------------------------------ host

    def server(self) -> dict[str, Any]:
        """``discover_server``, refused unless the server runs OVM 3.2.x or 3.3.x."""
        info = self.agent.linux.discover_server()
        w = f"OVM3 agent {self.client.display} discover_server"
        for key in ("OVM_Version", "Agent_Version", "CPU_Type", "Hostname", "Registered_IP",
                    "Pool_Unique_Id", "Manager_Unique_Id", "Membership_State",
                    "Server_Roles"):
            if info.get(key) is not None:
                answers.text(info[key], w, key, 255)
        version = str(info.get("OVM_Version") or "")
        if not version.startswith(SUPPORTED_VERSIONS):
            raise HypervisorError(f"{self.client.display} runs Oracle VM {version or '?'}; "
                                  "only 3.2.x and 3.3.x are supported")
        return info

    def capabilities(self) -> dict[str, Any]:
        info = self.server()
        hw = self.agent.linux.discover_hardware()
        w = f"OVM3 agent {self.client.display} discover_hardware"
        vmm_hw = answers.struct(hw.get("VMM") or {}, w, "VMM")
        phys = answers.struct(vmm_hw.get("PhysicalInfo") or {}, w, "PhysicalInfo")

        def n(key: str, default: int, lo: int, hi: int) -> int:
            value = phys.get(key)
            return default if value is None else answers.count(value, w, key, lo, hi)

        threads, cores = n("ThreadsPerCore", 1, 1, 64), n("CoresPerSocket", 1, 1, 4096)
        sockets, nodes = n("SocketsPerNode", 1, 1, 1024), n("Nodes", 1, 1, 1024)
        khz = n("CPUKHz", 0, 0, 10**8)
        total, free = n("TotalPages", 0, 0, 1 << 40), n("FreePages", 0, 0, 1 << 40)
        if free > total:
            raise answers.bad(w, f"FreePages {free} is more than TotalPages {total}")
        ws = f"OVM3 agent {self.client.display} discover_server"
        vmm = answers.struct(answers.struct(info.get("VMM") or {}, ws, "VMM").get("Version")
                             or {}, ws, "VMM Version")
        parts = [answers.text(vmm.get(k, d), ws, f"VMM Version {k}", 32)
                 for k, d in (("Major", "?"), ("Minor", "?"), ("Extra", ""))]
        extra = parts[2].replace(".", "")
        return {
            "hypervisor": "xen", "driver": "ovm3",
            "hypervisor_version": f"{parts[0]}.{parts[1]}.{extra}",
            "ovm_version": info.get("OVM_Version"), "agent_version": info.get("Agent_Version"),
            "hostname": info.get("Hostname"), "ip": info.get("Registered_IP"),
            "arch": "x86_64", "guest_arches": ["x86_64"],
            "domain_types": list(vmcfg.DOMAIN_TYPES),
            "cpu": {"model": info.get("CPU_Type"), "sockets": sockets * nodes,
                    "cores": cores, "threads": threads,
                    "mhz": khz // 1000},
            "memory_bytes": total * 4096,
            "free_memory_bytes": free * 4096,
            "pool_id": info.get("Pool_Unique_Id") or None,
            "manager_id": info.get("Manager_Unique_Id") or None,
            "membership": info.get("Membership_State"),
            "roles": info.get("Server_Roles"),
        }

    def host_stats(self) -> dict[str, Any]:
        s = self.agent.cloudstack.ovs_dom0_stats(self.settings.bridges.get("default", "xenbr0"))
        w = f"OVM3 agent {self.client.display} ovs_dom0_stats"

        def n(key: str, hi: float) -> float:
            return answers.number(s.get(key, 0), w, key, 0, hi)

        free, total = int(n("free", 2.0**50)), int(n("total", 2.0**50))
        if free > total:
            raise answers.bad(w, f"free {free} KiB is more than total {total} KiB")
        return {"cpu_percent": n("cpu", 100.0 * 4096),
                "memory_free_bytes": free * 1024, "memory_total_bytes": total * 1024,
                "rx_bytes": int(n("rx", 2.0**63)), "tx_bytes": int(n("tx", 2.0**63))}

    def ping(self) -> None:
        reply = self.agent.common.echo("put")
        if reply != "put":
            raise HostUnreachable(f"OVM3 agent {self.client.display} answered echo with "
                                  f"{reply!r}, not 'put'")

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------ setup

    def repositories(self) -> list[dict[str, Any]]:
        return self.agent.repository.discover_repository_db()

    def repo_id(self) -> str:
        mounted = [r for r in self.repositories() if r.get("Status", "Mounted") == "Mounted"]
        if not mounted:
            raise HypervisorError(f"{self.client.display} has no mounted repository; run "
                                  "`virtplane host setup HOST -o repository=server:/export`")
        return str(mounted[0]["@Uuid"])  # checked: 32 hex digits

    def setup(self, repository: str | None = None, pool_alias: str | None = None,
              pool_id: str | None = None, pool_vip: str | None = None,
              pool_create: bool = False, vlans: list[tuple[str, str, int]] | None = None
              ) -> list[str]:
        """Prepare the server the way CloudStack does; returns what was done.

        Roles ``xen,utility``; ownership taken with the manager UUID (refused if
        another manager owns it); the NFS ``repository`` mounted under
        ``/OVS/Repositories/<id>``; a server pool created (``pool_create``) or
        joined; VLAN bridges ``(bridge, interface, vlan)``; and on 3.3 the
        NOZEROCONF check.
        """
        done: list[str] = []
        info = self.server()
        if info.get("Server_Roles") != ROLES:
            self.agent.pool.update_server_roles(ROLES)
            done.append(f"server roles set to {ROLES}")
        owner = str(info.get("Manager_Unique_Id") or "")
        if info.get("Membership_State") == "Unowned" or not owner:
            self.agent.pool.take_ownership(self.settings.manager_uuid, "")
            done.append(f"ownership taken as manager {self.settings.manager_uuid}")
        elif owner != self.settings.manager_uuid:
            raise HypervisorError(f"{self.client.display} is owned by manager {owner}, not "
                                  f"this one ({self.settings.manager_uuid}); release it there "
                                  "first")
        if repository:
            done += self._repository(repository)
        if pool_vip:
            done += self._pool(info, pool_alias or "virtplane", pool_id, pool_vip, pool_create)
        for bridge, dev, vlan in vlans or []:
            done.append(self.vlan_bridge(bridge, dev, vlan))
        if str(info.get("OVM_Version", "")).startswith("3.3."):
            problem = self.nozeroconf_problem()
            if problem:
                raise HypervisorError(problem)
            done.append("NOZEROCONF in place (no link-local address outside control0)")
        return done

    def _repository(self, remote: str) -> list[str]:
        if ":" not in remote:
            raise InvalidInput(f"repository {remote!r} must be an NFS export, server:/path")
        repo = dedash(str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"nfs://{remote}")))
        local = f"{REPO_ROOT}/{repo}"
        known = {str(r["@Uuid"]): r for r in self.repositories()}
        if repo in known and known[repo].get("Status", "Mounted") == "Mounted":
            return [f"repository {remote} already mounted at {local}"]
        self.agent.repository.mount_repository_fs(remote, local)
        if repo in known:
            self.agent.repository.add_repository(remote, local)
            return [f"repository {remote} mounted again at {local}"]
        self.agent.repository.create_repository(remote, local, repo, "virtplane repository")
        return [f"repository {remote} created and mounted at {local}"]

    def _pool(self, info: dict[str, Any], alias: str, pool_id: str | None, vip: str,
              create: bool) -> list[str]:
        try:
            ipaddress.ip_address(vip)
        except ValueError:
            raise InvalidInput(f"pool_vip {vip!r} is not an IP address") from None
        current = self.agent.pool.discover_server_pool()
        pid = dedash(pool_id or str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"ovm3-pool:{alias}")))
        if current:
            w = f"OVM3 agent {self.client.display} discover_server_pool"
            current_id = answers.text(current.get("Unique_Id"), w, "Unique_Id", 64)
            if dedash(current_id) != pid:
                raise HypervisorError(f"{self.client.display} is in server pool "
                                      f"{current_id}, not {pid}")
            return [f"already in server pool {alias}"]
        w = f"OVM3 agent {self.client.display} discover_server"
        name = answers.text(info.get("Hostname"), w, "Hostname", 255)
        ip = answers.text(info.get("Registered_IP"), w, "Registered_IP", 64)
        if create:
            self.agent.pool.create_server_pool(alias, pid, vip, 1, name, ip, ROLES)
            return [f"server pool {alias} ({pid}) created with VIP {vip}"]
        self.agent.pool.join_server_pool(alias, pid, vip, 1, name, ip, ROLES)
        return [f"joined server pool {alias} ({pid})"]

    def vlan_bridge(self, bridge: str, dev: str, vlan: int) -> str:
        if not 1 <= int(vlan) <= 4094:
            raise InvalidInput(f"VLAN id {vlan} is out of range 1-4094")
        name = f"{bridge}.{vlan}"
        vmcfg.check_bridge(name, "VLAN bridge")
        vmcfg.check_bridge(dev, "VLAN interface")
        reply = self.agent.network.ovs_vlan_bridge("start", name, dev, int(vlan))
        if not reply.startswith(("start", "Added")):
            raise HypervisorError(f"OVM3 agent {self.client.display} ovs_vlan_bridge {name} on "
                                  f"{dev}: unexpected reply {quote(reply, 120)}")
        return f"VLAN bridge {name} on {dev} (VLAN {vlan})"

    def nozeroconf_problem(self) -> str | None:
        """OVM 3.3 needs ``NOZEROCONF=yes`` in /etc/sysconfig/network, or the host takes a
        169.254/16 link-local address that collides with CloudStack-style control0.
        The agent has no call reading that file, so the effect is checked: no bridge but
        control0 may hold a link-local address."""
        net = self.agent.network.discover_network()
        w = f"OVM3 agent {self.client.display} discover_network"
        for dev in listify(answers.struct(net.get("Bridges") or {}, w, "Bridges").get("Device")):
            dev = answers.struct(dev, w, "a bridge Device")
            name = answers.text(dev.get("@Name"), w, "a bridge's Name", 64)
            for fam in listify(dev.get("Family")):
                fam = answers.struct(fam, w, f"bridge {quote(name, 20)} Family")
                addr = fam.get("Address")
                if addr is None:
                    continue
                try:
                    ip = ipaddress.ip_address(answers.text(addr, w, f"bridge {name} Address",
                                                           64))
                except ValueError:
                    raise answers.bad(w, f"bridge {quote(name, 20)} Address {quote(addr, 64)} "
                                         "is not an IP address") from None
                if name != "control0" and ip in ipaddress.ip_network("169.254.0.0/16"):
                    return (f"{self.client.display}: bridge {name} holds link-local {addr}: "
                            "NOZEROCONF=yes is missing from /etc/sysconfig/network (OVM 3.3); "
                            "add it and restart the network service")
        return None

    # ------------------------------------------------------------ VMs

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
        the started VM back) stops and deletes it again, so nothing stays defined."""
        params = vmcfg.check_params(vmcfg.parse(xml), name)
        repo, vm_id = self.repo_id(), str(params["uuid"])
        try:
            self.agent.xen.create_vm(repo, vm_id, params)
        except AgentFault:
            raise  # the agent says it made nothing
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
        self.agent.xen.stop_vm(repo, vm_id, False)
        deadline = time.monotonic() + timeout
        how = "shutdown"
        while self._running(repo, vm_id):
            if time.monotonic() > deadline:
                self.agent.xen.stop_vm(repo, vm_id, True)
                how = "destroyed"
                break
            time.sleep(self.settings.shutdown_poll_seconds)
        self.agent.xen.delete_vm(repo, vm_id)
        return how

    def _running(self, repo: str, vm_id: str) -> bool:
        vm = self.agent.xen.list_vm(repo, vm_id)
        return bool(vm and vm.get("domid") not in (None, "", "-1"))

    def destroy(self, name: str) -> None:
        repo, vm_id = self._ids(name)
        self.agent.xen.stop_vm(repo, vm_id, True)
        self.agent.xen.delete_vm(repo, vm_id)

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

    # ------------------------------------------------------------ devices

    def _nic(self, name: str, xml: str) -> tuple[str, str, dict[str, Any], str]:
        doc = xmltodict.parse(xml)
        if "interface" not in doc:
            raise self._unsupported(f"hot-plugging a {next(iter(doc))}")
        repo, vm_id = self._ids(name)
        config = self.agent.xen.get_vm_config(repo, vm_id)  # checked: vif a list of strings
        vif = vmcfg.vif_entry(doc["interface"], str(config.get("uuid", vm_id)),
                              self.settings.bridges)
        return repo, vm_id, config, vif

    def attach_device(self, name: str, xml: str) -> None:
        repo, vm_id, config, vif = self._nic(name, xml)
        config["vif"] = [*config.get("vif", []), vif]
        self.agent.xen.configure_vm(repo, vm_id, config)

    def detach_device(self, name: str, xml: str) -> None:
        repo, vm_id, config, vif = self._nic(name, xml)
        mac = vif.split(",")[0]
        kept = [v for v in config.get("vif", []) if not str(v).startswith(mac)]
        if len(kept) == len(config.get("vif", [])):
            raise HypervisorError(f"VM {name!r} has no NIC with {mac}")
        config["vif"] = kept
        self.agent.xen.configure_vm(repo, vm_id, config)

    def update_device(self, name: str, xml: str) -> None:
        raise self._unsupported("changing a device of a running VM")

    # ------------------------------------------------------------ migration

    def migrate(self, name: str, dest_uri: str, **kwargs: Any) -> None:
        """Live migration inside one server pool; anything else is refused, not faked."""
        dest = Ovm3Connection(dest_uri, self.settings)
        try:
            mine = self.agent.pool.discover_server_pool()
            theirs = dest.agent.pool.discover_server_pool()
        finally:
            dest.close()
        mine_id = quote(mine.get("Unique_Id") or "", 64) if mine else ""
        theirs_id = quote(theirs.get("Unique_Id") or "", 64) if theirs else ""
        if not mine_id or not theirs_id or mine_id != theirs_id:
            raise HypervisorError(
                f"OVM3 migrates only inside a server pool: {self.client.display} is in "
                f"{mine_id or 'no pool'}, {dest.client.display} in {theirs_id or 'no pool'}")
        repo, vm_id = self._ids(name)
        self.agent.xen.migrate_vm(repo, vm_id, dest.client.host, True)
        progress = kwargs.get("progress")
        if progress is not None:
            progress(100)
