"""A stand-in for the Oracle VM 3 agent (``ovs-agent``) serving its XML-RPC API on
loopback, for the ovm3 driver's tests.

No OVM3 server can run on these machines, so this follows the documented
protocol (../shared/reference/ovm3_lsm.md part A, from CloudStack's OVM3
plugin and its canned agent replies): calls POSTed to ``/`` with HTTP Basic
auth, positional arguments, ``<nil/>`` for None, discover_* replies as XML
documents inside strings, faults with code 1 and a Python-exception text.
It keeps state (ownership, roles, pool, repositories, bridges, VMs) and can
fail on purpose: wrong credentials (401), a fault for a named method, slow
replies, a dropped connection mid-call, any OVM version, and a call that does
its work and then answers with a fault or too late (``fail_after``,
``slow_after``: the agent stopped the guest, the caller sees an error).
"""

from __future__ import annotations

import base64
import ssl
import threading
import xmlrpc.client
from http.server import ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape
from xmlrpc.server import SimpleXMLRPCDispatcher, SimpleXMLRPCRequestHandler

#: agents by their IP, so that migrate_vm can hand a VM to its destination
REGISTRY: dict[str, FakeAgent] = {}


def _xml(root: str, body: str) -> str:
    return f'<?xml version="1.0" ?><{root}>{body}</{root}>'


def _leaves(d: dict[str, Any]) -> str:
    return "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in d.items())


class FakeAgent:
    """The agent's state and its methods (each a public method with the agent's name)."""

    def __init__(self, ip: str, hostname: str, version: str = "3.3.1-1065") -> None:
        self.ip, self.hostname, self.version = ip, hostname, version
        self.roles = ""
        self.manager: str | None = None
        self.pool: dict[str, Any] | None = None
        self.repos: dict[str, dict[str, str]] = {}
        self.bridges: dict[str, dict[str, str]] = {
            "xenbr0": {"phys": "eth0", "address": ip},
            "control0": {"phys": "", "address": "169.254.0.1"}}
        self.vms: dict[str, dict[str, Any]] = {}   # uuid -> {repo, config, domid}
        self.files: dict[str, int] = {}
        self.calls: list[str] = []
        self.fail: dict[str, str] = {}             # method -> fault text
        #: method -> fault text answered after the method ran (its effect stays)
        self.fail_after: dict[str, str] = {}
        #: method -> seconds the reply waits after the method ran (other calls are
        #: answered meanwhile), so a caller's timeout ends the call after its effect
        self.slow_after: dict[str, float] = {}
        self.delay = 0.0
        self.drop: set[str] = set()                # methods whose connection is cut
        self.stop_ignored = False                  # the guest ignores a graceful stop
        #: method -> f(real answer or None, *params) giving the answer sent instead
        #: (a hostile or broken agent; the fuzzers in test_agent_answer_fuzz.py use it)
        self.answers: dict[str, Any] = {}
        #: method -> the raw HTTP reply body sent instead of an XML-RPC response
        self.raw: dict[str, bytes] = {}
        #: method -> (faultCode, faultString) answered instead of running it
        self.faults: dict[str, tuple[Any, Any]] = {}
        self._next_domid = 1
        self.lock = threading.Lock()
        REGISTRY[ip] = self

    # ----------------------------------------------------------- Common / Linux

    def echo(self, msg: str) -> str:
        return msg

    def get_api_version(self) -> list[int]:
        return [3]

    def discover_server(self) -> str:
        major, minor = self.version.split(".")[:2]
        server = {
            "Unique_Id": f"{abs(hash(self.ip)):032x}"[:32], "Agent_Version": self.version,
            "OVM_Version": self.version, "CPU_Type": "x86_64", "OS_Type": "Linux",
            "Hypervisor_Type": "xen", "Hypervisor_Name": "Xen",
            "Pool_Unique_Id": (self.pool or {}).get("id", ""),
            "Manager_Unique_Id": self.manager or "", "Hostname": self.hostname,
            "Registered_IP": self.ip, "Server_Roles": self.roles,
            "Membership_State": "Pooled" if self.pool else (
                "Owned" if self.manager else "Unowned"),
        }
        vmm = "<VMM><Version><Major>4</Major><Minor>1</Minor><Extra>.3OVM</Extra></Version>" \
              "<Capabilities>xen-3.0-x86_64 hvm-3.0-x86_32</Capabilities></VMM>"
        del major, minor
        return _xml("Discover_Server_Result", f"<Server>{_leaves(server)}{vmm}</Server>")

    def discover_hardware(self) -> str:
        phys = {"ThreadsPerCore": 2, "CoresPerSocket": 4, "SocketsPerNode": 1, "Nodes": 1,
                "CPUKHz": 2400000, "TotalPages": 4194304, "FreePages": 3145728}
        return _xml("Discover_Hardware_Result",
                    f"<NodeInformation><VMM><PhysicalInfo>{_leaves(phys)}</PhysicalInfo></VMM>"
                    "<DMTF><System><UUID>fake</UUID></System></DMTF></NodeInformation>")

    def copy_file(self, src: str, dst: str, sparse: bool = True) -> None:
        if src not in self.files:
            raise RuntimeError(f"Command: ['cp', '{src}', '{dst}'] failed (1): stderr: "
                               "No such file")
        self.files[dst] = self.files[src]

    # ----------------------------------------------------------- Network

    def discover_network(self) -> str:
        devs = "".join(
            f'<Device Name="{n}"><Family Type="AF_INET"><Address>{b["address"]}</Address>'
            "<Netmask>255.255.255.0</Netmask></Family>"
            + (f"<Interfaces><PhyInterface>{b['phys']}</PhyInterface></Interfaces>"
               if b["phys"] else "") + "</Device>"
            for n, b in self.bridges.items())
        return _xml("Discover_Network_Result",
                    f"<Network><Active><Bridges>{devs}</Bridges></Active></Network>")

    def ovs_vlan_bridge(self, action: str, bridge: str, net: str, vlan: int) -> str:
        if action != "start":
            raise RuntimeError(f"unsupported action {action}")
        self.bridges[bridge] = {"phys": f"{net}.{vlan}", "address": ""}
        if self.version.startswith("3.3."):
            return f"Added bridge {bridge}"
        return f"start bridge={bridge} netdev={net} vlan {vlan}"

    def ovs_br_config(self, action: str, bridge: str, dev: str) -> str:
        return f"{action} bridge {bridge}"

    # ----------------------------------------------------------- Pool

    def discover_server_pool(self) -> str:
        if not self.pool:
            return '<?xml version="1.0" ?><Discover_Server_Pool_Result/>'
        p = self.pool
        members = "".join(f"<Member><Registered_IP>{ip}</Registered_IP></Member>"
                          for ip in p["members"])
        body = _leaves({"Unique_Id": p["id"], "Pool_Alias": p["alias"],
                        "Master_Virtual_Ip": p["vip"], "Primary_Virtual_Ip": p["vip"]})
        return _xml("Discover_Server_Pool_Result",
                    f"<Server_Pool>{body}<Member_List>{members}</Member_List></Server_Pool>")

    def take_ownership(self, manager: str, url: str) -> None:
        if self.manager and self.manager != manager:
            raise RuntimeError(f"Server already owned by manager {self.manager}")
        self.manager = manager

    def update_server_roles(self, roles: str) -> None:
        if not set(roles.split(",")) <= {"xen", "utility"}:
            raise Exception(f"Invalid roles: {roles}")  # noqa: TRY002 (the agent's text)
        self.roles = roles

    def create_server_pool(self, alias: str, pid: str, vip: str, num: int, name: str,
                           ip: str, roles: str) -> None:
        self._need_owner()
        self.pool = {"id": pid, "alias": alias, "vip": vip, "members": [ip]}

    def join_server_pool(self, alias: str, pid: str, vip: str, num: int, name: str,
                         ip: str, roles: str) -> None:
        self._need_owner()
        master = next((a for a in REGISTRY.values() if a.pool and a.pool["id"] == pid), None)
        if master is None:
            raise RuntimeError(f"No server pool {pid} to join")
        master.pool["members"].append(ip)  # type: ignore[index]
        self.pool = master.pool

    def _need_owner(self) -> None:
        if not self.manager:
            raise RuntimeError("Server is not owned by a manager")

    # ----------------------------------------------------------- Repository

    def discover_repository_db(self) -> str:
        repos = "".join(
            f'<Repository Uuid="{rid}">' + _leaves({
                "Fs_location": r["remote"], "Mount_point": r["local"], "Filesystem_type": "nfs",
                "Alias": r["alias"], "Manager_uuid": self.manager or "",
                "Status": r["status"]}) + "</Repository>"
            for rid, r in self.repos.items())
        return _xml("Discover_Repository_Db_Result", f"<RepositoryDbList>{repos}</RepositoryDbList>")

    def mount_repository_fs(self, remote: str, local: str) -> None:
        if ":" not in remote:
            raise RuntimeError(f"mount: {remote}: not an NFS export")
        for r in self.repos.values():
            if r["local"] == local:
                r["status"] = "Mounted"
        self._mounted = (remote, local)

    def create_repository(self, remote: str, local: str, rid: str, alias: str) -> None:
        self._need_owner()
        self.repos[rid] = {"remote": remote, "local": local, "alias": alias, "status": "Mounted"}

    def add_repository(self, remote: str, local: str) -> None:
        pass

    # ----------------------------------------------------------- StoragePlugin

    def storage_plugin_create(self, impl: str, ss: dict[str, Any], sd: dict[str, Any],
                              path: str, kind: str, size: int) -> dict[str, Any]:
        self.files[path] = size
        return {"fr_type": kind, "ondisk_sz": "0", "fs_uuid": sd.get("uuid", ""),
                "file_path": path, "file_sz": str(size)}

    def storage_plugin_destroy(self, impl: str, ss: Any, sd: Any, props: dict[str, Any]) -> None:
        self.files.pop(props["file_path"], None)

    # ----------------------------------------------------------- Xen

    def _vm(self, repo: str, vm: str) -> dict[str, Any]:
        v = self.vms.get(vm)
        if v is None or v["repo"] != repo:
            raise RuntimeError(f"VM {vm} not found in repository {repo}")
        return v

    def _listing(self, uuid: str, v: dict[str, Any]) -> dict[str, Any]:
        cfg = v["config"]
        vbds = [{"uname": d.split(",")[0], "dev": d.split(",")[1], "mode": d.split(",")[2]}
                for d in cfg.get("disk", [])]
        vfbs = [{"location": f"0.0.0.0:{5900 + v['domid']}"}] if cfg.get("vfb") else []
        return {"name": cfg["name"], "uuid": uuid, "state": v["state"],
                "memory": str(cfg["memory"]), "vcpus": str(cfg["vcpus"]),
                "domid": str(v["domid"]), "device": {"vbd": vbds, "vfb": vfbs,
                                                     "vif": cfg.get("vif", [])}}

    def list_vms(self) -> list[dict[str, Any]]:
        dom0 = {"name": "Domain-0", "uuid": "00000000-0000-0000-0000-000000000000",
                "state": "r-----", "domid": "0", "memory": "2048", "vcpus": "4"}
        return [dom0] + [self._listing(u, v) for u, v in self.vms.items() if v["domid"]]

    def list_vm(self, repo: str, vm: str) -> dict[str, Any] | None:
        v = self._vm(repo, vm)
        return self._listing(vm, v) if v["domid"] else None

    def get_vm_config(self, repo: str, vm: str) -> dict[str, Any]:
        return dict(self._vm(repo, vm)["config"])

    def create_vm(self, repo: str, vm: str, params: dict[str, Any]) -> None:
        if repo not in self.repos:
            raise RuntimeError(f"Repository {repo} is not mounted")
        if vm in self.vms:
            raise RuntimeError(f"VM {vm} already exists")
        for key in ("name", "uuid", "memory", "vcpus"):
            if key not in params:
                raise RuntimeError(f"create_vm: missing {key}")
        for d in params.get("disk", []):
            path, dev, mode = d.split(",")
            if not (mode in ("w", "w!", "r") and path.startswith("file:")):
                raise RuntimeError(f"bad disk entry {d}")
        self.vms[vm] = {"repo": repo, "config": dict(params), "domid": 0, "state": "------"}

    def configure_vm(self, repo: str, vm: str, params: dict[str, Any]) -> None:
        self._vm(repo, vm)["config"] = dict(params)

    def start_vm(self, repo: str, vm: str) -> None:
        v = self._vm(repo, vm)
        for vif in v["config"].get("vif", []):
            bridge = dict(p.split("=", 1) for p in vif.split(","))["bridge"]
            if bridge not in self.bridges:
                raise RuntimeError(f"Error: Device 0 (vif) could not be connected. "
                                   f"Could not find bridge device {bridge}")
        v["domid"], v["state"] = self._next_domid, "r-----"
        self._next_domid += 1

    def stop_vm(self, repo: str, vm: str, force: bool = False) -> None:
        v = self._vm(repo, vm)
        if force or not self.stop_ignored:
            v["domid"], v["state"] = 0, "------"

    def reboot_vm(self, repo: str, vm: str, wait: int = 3) -> None:
        v = self._vm(repo, vm)
        if not v["domid"]:
            raise RuntimeError(f"Domain {vm} is not running")
        v["domid"] = self._next_domid
        self._next_domid += 1

    def delete_vm(self, repo: str, vm: str) -> None:
        v = self._vm(repo, vm)
        if v["domid"]:
            raise RuntimeError(f"Domain {vm} is running")
        del self.vms[vm]

    def migrate_vm(self, repo: str, vm: str, dest: str, live: bool = True) -> None:
        v = self._vm(repo, vm)
        target = REGISTRY.get(dest)
        if target is None:
            raise RuntimeError(f"Cannot connect to {dest}")
        if not (self.pool and target.pool and self.pool["id"] == target.pool["id"]):
            raise RuntimeError(f"{dest} is not in this server pool")
        target.repos.setdefault(repo, dict(self.repos[repo]))
        target.vms[vm] = dict(v)
        del self.vms[vm]

    # ----------------------------------------------------------- CloudStack helper

    def ovs_domU_stats(self, domain: str) -> dict[str, str]:  # noqa: N802
        for v in self.vms.values():
            if v["config"]["name"] == domain and v["domid"]:
                return {"rd_bytes": "4096", "wr_bytes": "8192", "rd_ops": "2", "wr_ops": "3",
                        "tx_bytes": "100", "rx_bytes": "200", "cputime": "1.5",
                        "uptime": "12.0", "vcpus": str(v["config"]["vcpus"])}
        raise RuntimeError(f"Domain {domain} not running")

    def ovs_dom0_stats(self, bridge: str) -> dict[str, str]:
        return {"cpu": "3.5", "free": "12582912", "total": "16777216", "tx": "10", "rx": "20"}

    def get_vncport(self, vm: str) -> str:
        return "5900"


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/", "/RPC2")

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        server: AgentServer = self.server  # type: ignore[assignment]
        expected = base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="ovs-agent"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _params, method = xmlrpc.client.loads(body)
        agent = server.agent
        if method in agent.drop:
            self.connection.shutdown(2)  # cut mid-call, no reply
            self.close_connection = True
            return
        if agent.delay:
            threading.Event().wait(agent.delay)
        if method in agent.raw:
            reply = agent.raw[method]
        else:
            reply = server._marshaled_dispatch(body, None, self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


class AgentServer(ThreadingHTTPServer, SimpleXMLRPCDispatcher):
    """Serves a :class:`FakeAgent` on ``ip:port`` (HTTP, or HTTPS with ``cert``/``key``)."""

    daemon_threads = True
    logRequests = False

    def __init__(self, agent: FakeAgent, port: int = 0, user: str = "oracle",
                 password: str = "secret", cert: str | None = None,
                 key: str | None = None) -> None:
        ThreadingHTTPServer.__init__(self, (agent.ip, port), _Handler)
        SimpleXMLRPCDispatcher.__init__(self, allow_none=True, encoding="utf-8",
                                        use_builtin_types=False)
        self.agent, self.user, self.password = agent, user, password
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if cert else "http"
        self.port = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def _dispatch(self, method: str, params: Any) -> Any:
        agent = self.agent
        try:
            with agent.lock:
                reply = self._run(method, params)
                if method in agent.fail_after:
                    raise RuntimeError(agent.fail_after[method])
                return reply
        finally:
            if method in agent.slow_after:  # outside the lock
                threading.Event().wait(agent.slow_after[method])

    def _run(self, method: str, params: Any) -> Any:
        agent = self.agent
        agent.calls.append(method)
        if method in agent.fail:
            raise RuntimeError(agent.fail[method])
        if method in agent.faults:
            raise xmlrpc.client.Fault(*agent.faults[method])
        func = getattr(agent, method, None)
        if method in agent.answers:
            real = None
            if func is not None:
                try:
                    real = func(*params)
                except Exception:  # noqa: BLE001 (the hostile answer replaces it)
                    real = None
            return agent.answers[method](real, *params)
        if func is None or method.startswith("_"):
            raise Exception(f'method "{method}" is not supported')  # noqa: TRY002
        return func(*params)

    def url(self, user: str = "oracle") -> str:
        return f"{self.scheme}://{user}@{self.agent.ip}:{self.port}"

    def __enter__(self) -> AgentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()
        REGISTRY.pop(self.agent.ip, None)
