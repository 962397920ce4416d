"""A thin XML-RPC client for the Oracle VM 3 agent (``ovs-agent``, port 8899).

It mirrors the agent API object by object, as CloudStack's OVM3 plugin does
(``Linux``, ``Network``, ``Pool``, ``Repository``, ``StoragePlugin``, ``Xen``,
``Ntp``, ``Common``, ``CloudStack``); the virtplane driver
(:mod:`virtplane_ovm3.driver`) sits on top. Calls are positional with the bare
agent function name and POSTed to ``/``; ``<nil/>`` (Python ``None``) and
``<i8>`` are understood both ways; discover_* calls return an XML document in
a string, parsed here with xmltodict. Faults become :class:`AgentFault`,
network trouble and timeouts :class:`virtplane.errors.HostUnreachable`; the
password never appears in a message.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import xmlrpc.client
from typing import Any
from urllib.parse import urlsplit
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape as xml_escape

from virtplane.errors import HostUnreachable, HypervisorError, InvalidInput
from virtplane.secrets import refuse_password_in_uri

DEFAULT_PORT = 8899


class AgentFault(HypervisorError):
    """The agent answered with an XML-RPC fault (the message names the call)."""

    def __init__(self, method: str, code: int, text: str) -> None:
        super().__init__(f"OVM3 agent call {method} failed (fault {code}): {text}")
        self.method, self.code, self.text = method, code, text


class AuthFailed(HypervisorError):
    """The agent refused the credentials (HTTP 401/403)."""


class _Marshaller(xmlrpc.client.Marshaller):
    """Sends ints beyond 32 bits as ``<i8>``, as the agent's Java clients do."""

    dispatch = dict(xmlrpc.client.Marshaller.dispatch)

    def dump_long(self, value: int, write: Any) -> None:
        if -(2**31) <= value < 2**31:
            write(f"<value><int>{value}</int></value>\n")
        else:
            write(f"<value><i8>{value}</i8></value>\n")

    dispatch[int] = dump_long  # type: ignore[assignment]


class _Transport(xmlrpc.client.SafeTransport):
    """HTTP or HTTPS with a connect/reply timeout and a TLS context of our choosing."""

    def __init__(self, tls: bool, timeout: float, context: ssl.SSLContext | None,
                 authorization: str | None = None) -> None:
        super().__init__(use_builtin_types=False, context=context)
        self._tls = tls
        self._timeout = timeout
        self._ctx = context
        self._authorization = authorization

    def make_connection(self, host: Any) -> Any:
        if self._connection and host == self._connection[0] and self._connection[1]:
            return self._connection[1]
        chost, self._extra_headers, _x509 = self.get_host_info(host)
        if self._authorization is not None:
            # built by AgentClient from the password as read: xmlrpc's own user:password@
            # handling percent-decodes it, so a password with "%41" would not authenticate
            self._extra_headers = [*self._extra_headers,
                                   ("Authorization", self._authorization)]
        conn: http.client.HTTPConnection
        if self._tls:
            conn = http.client.HTTPSConnection(chost, timeout=self._timeout,
                                               context=self._ctx)
        else:
            conn = http.client.HTTPConnection(chost, timeout=self._timeout)
        self._connection = host, conn
        return conn


class AgentClient:
    """One agent: ``AgentClient("https://oracle@host:8899", password)``.

    :param verify_tls: check the agent's certificate (default); ``False`` is the
        explicit opt-out for self-signed agents.
    :param ca_file: trust this CA (or certificate) instead of the system store.
    :param timeout: seconds for connecting and for each reply.
    """

    def __init__(self, url: str, password: str | None, *, verify_tls: bool = True,
                 ca_file: str | None = None, timeout: float = 60.0) -> None:
        refuse_password_in_uri(url, "OVM3 agent URL", "[plugin.ovm3] password_file or the "
                               "VIRTPLANE_OVM3_PASSWORD environment variable (password_env)")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise InvalidInput(f"OVM3 agent URL {url!r} must start with http:// or https://")
        if not parts.hostname:
            raise InvalidInput(f"OVM3 agent URL {url!r} names no host")
        self.user = parts.username or "oracle"
        self.host = parts.hostname
        self.port = parts.port or DEFAULT_PORT
        self.tls = parts.scheme == "https"
        self.display = f"{parts.scheme}://{self.user}@{self.host}:{self.port}"
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=ca_file)
            if not verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        # Basic auth from the user and the password exactly as given (never percent-decoded)
        token = base64.b64encode(f"{self.user}:{password or ''}".encode()).decode("ascii")
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6
        self._target = f"{host}:{self.port}"
        self._transport = _Transport(self.tls, timeout, context, f"Basic {token}")
        self.timeout = timeout

    def call(self, method: str, *args: Any) -> Any:
        """Call an agent function with positional arguments; return its result."""
        body = ("<?xml version='1.0'?>\n<methodCall>\n<methodName>"
                f"{xml_escape(method)}</methodName>\n"
                f"{_Marshaller('utf-8', allow_none=True).dumps(args)}</methodCall>\n")
        try:
            reply = self._transport.request(self._target, "/", body.encode("utf-8"))
            return reply[0] if len(reply) == 1 else reply
        except xmlrpc.client.Fault as exc:
            raise AgentFault(method, exc.faultCode, exc.faultString) from None
        except xmlrpc.client.ProtocolError as exc:
            if exc.errcode in (401, 403):
                raise AuthFailed(f"OVM3 agent {self.display} refused user {self.user!r}: "
                                 f"{exc.errcode} {exc.errmsg} (check the agent password)"
                                 ) from None
            raise HostUnreachable(f"OVM3 agent {self.display}: HTTP {exc.errcode} "
                                  f"{exc.errmsg} on {method}") from None
        except ssl.SSLCertVerificationError as exc:
            raise HostUnreachable(
                f"OVM3 agent {self.display}: certificate not trusted ({exc.verify_message}); "
                "give ca_file, or set verify_tls = false for a self-signed agent") from None
        except TimeoutError:
            raise HostUnreachable(f"OVM3 agent {self.display} did not answer {method} within "
                                  f"{self.timeout:g} s") from None
        except (ExpatError, xmlrpc.client.ResponseError, ValueError, TypeError,
                IndexError) as exc:
            # a reply that is not XML, or XML that is not an XML-RPC response (a proxy's
            # error page, another service on the port): the agent is not what answers
            raise HypervisorError(f"OVM3 agent {self.display} answered {method} with "
                                  f"something that is not an XML-RPC response ({exc}); is "
                                  "the URL the agent's (port 8899)?") from None
        except (OSError, http.client.HTTPException) as exc:
            raise HostUnreachable(f"OVM3 agent {self.display} unreachable during {method}: "
                                  f"{exc}") from None

    def close(self) -> None:
        self._transport.close()


def parse_xml(text: Any, root: str) -> dict[str, Any]:
    """A discover_* reply: an XML document inside a string."""
    import xmltodict

    if not isinstance(text, str):
        raise HypervisorError(f"OVM3 agent sent {type(text).__name__} where {root} XML "
                              "was expected")
    try:
        doc = xmltodict.parse(text)
    except ExpatError as exc:
        raise HypervisorError(f"OVM3 agent sent unreadable {root} XML: {exc}") from None
    if root not in doc:
        raise HypervisorError(f"OVM3 agent reply has no {root} element")
    return doc[root] or {}  # an empty element (e.g. not in a pool) is None


def listify(x: Any) -> list[Any]:
    """xmltodict gives one child as a dict and several as a list."""
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


class _Object:
    def __init__(self, client: AgentClient) -> None:
        self.c = client


class Common(_Object):
    def get_api_version(self) -> int:
        return int(self.c.call("get_api_version")[0])

    def echo(self, msg: str) -> str:
        return str(self.c.call("echo", msg))


class Linux(_Object):
    def discover_server(self) -> dict[str, Any]:
        return dict(parse_xml(self.c.call("discover_server"), "Discover_Server_Result")
                    .get("Server") or {})

    def discover_hardware(self) -> dict[str, Any]:
        return dict(parse_xml(self.c.call("discover_hardware"), "Discover_Hardware_Result")
                    .get("NodeInformation") or {})

    def discover_mounted_file_systems(self, fs_type: str = "nfs") -> list[dict[str, Any]]:
        data = parse_xml(self.c.call("discover_mounted_file_systems", fs_type),
                         "Discover_Mounted_File_Systems_Result")
        out = []
        for fs in listify(data.get("Filesystem")):
            for mount in listify(fs.get("Mount")):
                out.append({"type": fs.get("@Type"), "dir": mount.get("@Dir"),
                            "device": mount.get("Device"), "options": mount.get("Mount_Options")})
        return out

    def copy_file(self, src: str, dst: str, sparse: bool = True) -> None:
        self.c.call("copy_file", src, dst, sparse)


class Network(_Object):
    def discover_network(self) -> dict[str, Any]:
        data = parse_xml(self.c.call("discover_network"), "Discover_Network_Result")
        return dict((data.get("Network") or {}).get("Active") or {})

    def ovs_br_config(self, action: str, bridge: str, dev: str) -> str:
        return str(self.c.call("ovs_br_config", action, bridge, dev))

    def ovs_vlan_bridge(self, action: str, bridge: str, net: str, vlan: int) -> str:
        return str(self.c.call("ovs_vlan_bridge", action, bridge, net, vlan))


class Pool(_Object):
    def discover_server_pool(self) -> dict[str, Any]:
        data = parse_xml(self.c.call("discover_server_pool"), "Discover_Server_Pool_Result")
        return dict(data.get("Server_Pool") or {})

    def take_ownership(self, manager_uuid: str, api_url: str = "") -> None:
        self.c.call("take_ownership", manager_uuid, api_url)

    def update_server_roles(self, roles: str) -> None:
        self.c.call("update_server_roles", roles)

    def create_server_pool(self, alias: str, pool_id: str, vip: str, num: int, name: str,
                           ip: str, roles: str = "xen,utility") -> None:
        self.c.call("create_server_pool", alias, pool_id, vip, num, name, ip, roles)

    def join_server_pool(self, alias: str, pool_id: str, vip: str, num: int, name: str,
                         ip: str, roles: str = "xen,utility") -> None:
        self.c.call("join_server_pool", alias, pool_id, vip, num, name, ip, roles)

    def leave_server_pool(self, pool_id: str) -> None:
        self.c.call("leave_server_pool", pool_id)

    def set_pool_member_ip_list(self, ips: list[str]) -> None:
        self.c.call("set_pool_member_ip_list", ips)


class Repository(_Object):
    def discover_repository_db(self) -> list[dict[str, Any]]:
        data = parse_xml(self.c.call("discover_repository_db"), "Discover_Repository_Db_Result")
        return [dict(r) for r in listify((data.get("RepositoryDbList") or {}).get("Repository"))]

    def mount_repository_fs(self, remote: str, local: str) -> None:
        self.c.call("mount_repository_fs", remote, local)

    def create_repository(self, remote: str, local: str, repo_id: str, alias: str) -> None:
        self.c.call("create_repository", remote, local, repo_id, alias)

    def add_repository(self, remote: str, local: str) -> None:
        self.c.call("add_repository", remote, local)


class StoragePlugin(_Object):
    NFS = "oracle.generic.NFSPlugin.GenericNFSPlugin"

    def create(self, ss: dict[str, Any], sd: dict[str, Any], path: str,
               size: int) -> dict[str, Any]:
        return dict(self.c.call("storage_plugin_create", self.NFS, ss, sd, path, "File", size))

    def destroy(self, ss: dict[str, Any], sd: dict[str, Any], fileprops: dict[str, Any]) -> None:
        self.c.call("storage_plugin_destroy", self.NFS, ss, sd, fileprops)

    def mount(self, ss: dict[str, Any], sd: dict[str, Any], mountpoint: str) -> Any:
        return self.c.call("storage_plugin_mount", self.NFS, ss, sd, mountpoint, "", True, [])


class Xen(_Object):
    def list_vms(self) -> list[dict[str, Any]]:
        return [dict(v) for v in self.c.call("list_vms")]

    def list_vm(self, repo: str, vm: str) -> dict[str, Any] | None:
        r = self.c.call("list_vm", repo, vm)
        return dict(r) if r else None

    def get_vm_config(self, repo: str, vm: str) -> dict[str, Any]:
        return dict(self.c.call("get_vm_config", repo, vm))

    def create_vm(self, repo: str, vm: str, params: dict[str, Any]) -> None:
        self.c.call("create_vm", repo, vm, params)

    def configure_vm(self, repo: str, vm: str, params: dict[str, Any]) -> None:
        self.c.call("configure_vm", repo, vm, params)

    def start_vm(self, repo: str, vm: str) -> None:
        self.c.call("start_vm", repo, vm)

    def stop_vm(self, repo: str, vm: str, force: bool = False) -> None:
        self.c.call("stop_vm", repo, vm, force)

    def reboot_vm(self, repo: str, vm: str, wait: int = 3) -> None:
        self.c.call("reboot_vm", repo, vm, wait)

    def delete_vm(self, repo: str, vm: str) -> None:
        self.c.call("delete_vm", repo, vm)

    def migrate_vm(self, repo: str, vm: str, dest: str, live: bool = True) -> None:
        self.c.call("migrate_vm", repo, vm, dest, live)


class Ntp(_Object):
    def get_ntp(self) -> tuple[list[str], bool, bool]:
        servers, is_server, running = self.c.call("get_ntp")
        return list(servers), bool(is_server), bool(running)


class CloudStack(_Object):
    """The helper module CloudStack installs into the agent (``cloudstack.py``)."""

    def ovs_domU_stats(self, domain: str) -> dict[str, str]:  # noqa: N802 (agent's name)
        return {str(k): str(v) for k, v in self.c.call("ovs_domU_stats", domain).items()}

    def ovs_dom0_stats(self, bridge: str) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.c.call("ovs_dom0_stats", bridge).items()}

    def get_vncport(self, vm: str) -> str:
        return str(self.c.call("get_vncport", vm))


class Agent:
    """Every agent object over one client: ``Agent(client).xen.list_vms()``."""

    def __init__(self, client: AgentClient) -> None:
        self.client = client
        self.common, self.linux, self.network = Common(client), Linux(client), Network(client)
        self.pool, self.repository = Pool(client), Repository(client)
        self.storage, self.xen, self.ntp = StoragePlugin(client), Xen(client), Ntp(client)
        self.cloudstack = CloudStack(client)
