"""The server side of an ``ovm3`` connection: the agent client, discovery, host
statistics, and ``host setup`` (roles, ownership, repository, server pool, VLAN
bridges, the NOZEROCONF check), done the way CloudStack prepares a server.

:class:`Ovm3HostBase` is the base of :class:`virtplane_ovm3.driver.Ovm3Connection`;
the VM part (:mod:`virtplane_ovm3.lifecycle`) builds on it.
"""

from __future__ import annotations

import ipaddress
import os
import uuid as uuidlib
from typing import Any

from virtplane.errors import HostUnreachable, HypervisorError, InvalidInput
from virtplane_ovm3 import answers, vmcfg
from virtplane_ovm3.answers import quote
from virtplane_ovm3.client import Agent, AgentClient, listify
from virtplane_ovm3.settings import Ovm3Settings

SUPPORTED_VERSIONS = ("3.2.", "3.3.")
REPO_ROOT = "/OVS/Repositories"
ROLES = "xen,utility"


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


class Ovm3HostBase:
    """A connection to one OVM3 server's agent: the server itself."""

    def __init__(self, uri: str, settings: Ovm3Settings) -> None:
        self.uri = uri
        self.settings = settings
        self.client = AgentClient(uri, password(settings), verify_tls=settings.verify_tls,
                                  ca_file=settings.ca_file, timeout=settings.timeout_seconds)
        self.agent = Agent(self.client)

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
