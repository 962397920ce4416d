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
from virtplane_ovm3 import answers
from virtplane_ovm3.answers import BadAnswer, quote

DEFAULT_PORT = 8899
#: the largest reply body read from an agent (a bigger one is refused, not buffered)
MAX_REPLY_BYTES = 32 << 20


class AgentFault(HypervisorError):
    """The agent answered with an XML-RPC fault (the message names the agent and the
    call, and quotes the fault's text on one line)."""

    def __init__(self, method: str, code: Any, text: Any, display: str = "") -> None:
        where = f"OVM3 agent {display} call" if display else "OVM3 agent call"
        super().__init__(f"{where} {method} failed (fault {quote(code, 24)}): "
                         f"{quote(text, 400)}")
        self.method, self.code, self.text = method, code, text


class _TooBig(Exception):
    pass


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

    def parse_response(self, response: Any) -> Any:
        """As xmlrpc's, but a reply (decompressed) beyond MAX_REPLY_BYTES is refused."""
        stream = response
        if response.getheader("Content-Encoding", "") == "gzip":
            stream = xmlrpc.client.GzipDecodedResponse(response)
        parser, unmarshaller = self.getparser()
        total = 0
        while data := stream.read(65536):
            total += len(data)
            if total > MAX_REPLY_BYTES:
                raise _TooBig(total)
            parser.feed(data)
        if stream is not response:
            stream.close()
        parser.close()
        return unmarshaller.close()


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
            raise AgentFault(method, exc.faultCode, exc.faultString, self.display) from None
        except _TooBig:
            self.close()  # the rest of the reply is never read
            raise BadAnswer(f"OVM3 agent {self.display} answered {method} with more than "
                            f"{MAX_REPLY_BYTES} bytes; refused") from None
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
                IndexError, KeyError, AttributeError, OverflowError,
                UnicodeError) as exc:
            # a reply that is not XML, or XML that is not an XML-RPC response (a proxy's
            # error page, another service on the port): the agent is not what answers
            raise HypervisorError(f"OVM3 agent {self.display} answered {method} with "
                                  f"something that is not an XML-RPC response "
                                  f"({quote(str(exc), 200)}); is the URL the agent's "
                                  "(port 8899)?") from None
        except (OSError, http.client.HTTPException) as exc:
            raise HostUnreachable(f"OVM3 agent {self.display} unreachable during {method}: "
                                  f"{quote(str(exc), 200)}") from None

    def close(self) -> None:
        self._transport.close()


def parse_xml(text: Any, root: str, where: str = "OVM3 agent") -> dict[str, Any]:
    """A discover_* reply: an XML document inside a string, whose ``root`` element
    must be a struct (or empty); ``where`` names the agent and call in errors."""
    import xmltodict

    if not isinstance(text, str):
        raise answers.bad(where, f"sent {type(text).__name__} {quote(text, 60)} where {root} "
                                 "XML was expected")
    try:
        doc = xmltodict.parse(text)
    except (ExpatError, ValueError) as exc:
        raise answers.bad(where, f"unreadable {root} XML: {quote(str(exc), 120)}") from None
    if not isinstance(doc, dict) or root not in doc:
        raise answers.bad(where, f"the reply has no {root} element")
    body = doc[root]
    if body is None:
        return {}  # an empty element (e.g. not in a pool)
    return dict(answers.struct(body, where, root))


def child(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """An element of a parsed discover_* document that must hold elements (or be absent)."""
    value = data.get(key)
    return {} if value is None else dict(answers.struct(value, where, key))


def listify(x: Any) -> list[Any]:
    """xmltodict gives one child as a dict and several as a list."""
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


class _Object:
    def __init__(self, client: AgentClient) -> None:
        self.c = client

    def w(self, method: str) -> str:
        """Who answered what, for a message: ``OVM3 agent https://oracle@h:8899 list_vms``."""
        return f"OVM3 agent {self.c.display} {method}"


class Common(_Object):
    def get_api_version(self) -> int:
        w = self.w("get_api_version")
        reply = answers.array(self.c.call("get_api_version"), w, "the reply")
        return answers.count(reply[0] if reply else None, w, "the API version", 0, 1000)

    def echo(self, msg: str) -> str:
        return quote(self.c.call("echo", msg), 64)


class Linux(_Object):
    def discover_server(self) -> dict[str, Any]:
        w = self.w("discover_server")
        return child(parse_xml(self.c.call("discover_server"), "Discover_Server_Result", w),
                     "Server", w)

    def discover_hardware(self) -> dict[str, Any]:
        w = self.w("discover_hardware")
        return child(parse_xml(self.c.call("discover_hardware"), "Discover_Hardware_Result",
                               w), "NodeInformation", w)

    def discover_mounted_file_systems(self, fs_type: str = "nfs") -> list[dict[str, Any]]:
        w = self.w("discover_mounted_file_systems")
        data = parse_xml(self.c.call("discover_mounted_file_systems", fs_type),
                         "Discover_Mounted_File_Systems_Result", w)
        out = []
        for fs in listify(data.get("Filesystem")):
            fs = answers.struct(fs, w, "Filesystem")
            for mount in listify(fs.get("Mount")):
                mount = answers.struct(mount, w, "Mount")
                out.append({"type": fs.get("@Type"), "dir": mount.get("@Dir"),
                            "device": mount.get("Device"), "options": mount.get("Mount_Options")})
        return out

    def copy_file(self, src: str, dst: str, sparse: bool = True) -> None:
        self.c.call("copy_file", src, dst, sparse)


class Network(_Object):
    def discover_network(self) -> dict[str, Any]:
        w = self.w("discover_network")
        data = parse_xml(self.c.call("discover_network"), "Discover_Network_Result", w)
        return child(child(data, "Network", w), "Active", w)

    def ovs_br_config(self, action: str, bridge: str, dev: str) -> str:
        return str(self.c.call("ovs_br_config", action, bridge, dev))

    def ovs_vlan_bridge(self, action: str, bridge: str, net: str, vlan: int) -> str:
        return str(self.c.call("ovs_vlan_bridge", action, bridge, net, vlan))


class Pool(_Object):
    def discover_server_pool(self) -> dict[str, Any]:
        w = self.w("discover_server_pool")
        data = parse_xml(self.c.call("discover_server_pool"), "Discover_Server_Pool_Result", w)
        return child(data, "Server_Pool", w)

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
        w = self.w("discover_repository_db")
        data = parse_xml(self.c.call("discover_repository_db"), "Discover_Repository_Db_Result",
                         w)
        repos = [dict(answers.struct(r, w, "Repository")) for r in
                 listify(child(data, "RepositoryDbList", w).get("Repository"))]
        seen: set[str] = set()
        for r in repos:
            rid = answers.repo_id(r.get("@Uuid"), w, "Repository Uuid")
            if rid in seen:
                raise answers.bad(w, f"repository {rid} is listed twice")
            seen.add(rid)
            r["@Uuid"] = rid
            status = r.get("Status", "Mounted")
            r["Status"] = answers.text(status, w, f"repository {rid} Status", 64)
        return repos

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
        return dict(answers.struct(self.c.call("storage_plugin_create", self.NFS, ss, sd,
                                               path, "File", size),
                                   self.w("storage_plugin_create"), "the file properties"))

    def destroy(self, ss: dict[str, Any], sd: dict[str, Any], fileprops: dict[str, Any]) -> None:
        self.c.call("storage_plugin_destroy", self.NFS, ss, sd, fileprops)

    def mount(self, ss: dict[str, Any], sd: dict[str, Any], mountpoint: str) -> Any:
        return self.c.call("storage_plugin_mount", self.NFS, ss, sd, mountpoint, "", True, [])


class Xen(_Object):
    def list_vms(self) -> list[dict[str, Any]]:
        """Every domain, each checked (name and uuid strings; no name or uuid twice)."""
        w = self.w("list_vms")
        out = []
        names: set[str] = set()
        uuids: set[str] = set()
        for i, v in enumerate(answers.array(self.c.call("list_vms"), w, "the VM list")):
            vm = _domain(v, w, f"VM list entry {i}")
            if vm["name"] in names or vm["uuid"] in uuids:
                raise answers.bad(w, f"VM {quote(vm['name'], 80)} ({vm['uuid']}) is listed "
                                     "twice")
            names.add(vm["name"])
            uuids.add(vm["uuid"])
            out.append(vm)
        return out

    def list_vm(self, repo: str, vm: str) -> dict[str, Any] | None:
        r = self.c.call("list_vm", repo, vm)
        return _domain(r, self.w("list_vm"), "the VM") if r is not None else None

    def get_vm_config(self, repo: str, vm: str) -> dict[str, Any]:
        return dict(answers.config(self.c.call("get_vm_config", repo, vm),
                                   self.w("get_vm_config")))

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
        w = self.w("get_ntp")
        reply = answers.array(self.c.call("get_ntp"), w, "the reply")
        if len(reply) != 3:
            raise answers.bad(w, f"the reply has {len(reply)} items, not 3")
        servers = [answers.text(x, w, "an NTP server", 255)
                   for x in answers.array(reply[0], w, "the NTP servers", 64)]
        return servers, bool(reply[1]), bool(reply[2])


class CloudStack(_Object):
    """The helper module CloudStack installs into the agent (``cloudstack.py``)."""

    def _stats(self, method: str, arg: str) -> dict[str, Any]:
        w = self.w(method)
        stats = answers.struct(self.c.call(method, arg), w, "the statistics")
        if len(stats) > 100:
            raise answers.bad(w, f"the statistics have {len(stats)} keys")
        return {str(k): v for k, v in stats.items()}

    def ovs_domU_stats(self, domain: str) -> dict[str, Any]:  # noqa: N802 (agent's name)
        """Counters as the agent sends them (strings); the driver checks each it reads."""
        return self._stats("ovs_domU_stats", domain)

    def ovs_dom0_stats(self, bridge: str) -> dict[str, Any]:
        return self._stats("ovs_dom0_stats", bridge)

    def get_vncport(self, vm: str) -> str:
        return quote(self.c.call("get_vncport", vm), 16)


def _domain(value: Any, where: str, field: str) -> dict[str, Any]:
    """A list_vms/list_vm entry: a struct whose name and uuid are strings, and whose
    ``device`` (when given) is a struct of arrays of structs."""
    vm = dict(answers.struct(value, where, field))
    vm["name"] = answers.text(vm.get("name"), where, f"{field} name", 255)
    if vm["name"] == "":
        raise answers.bad(where, f"{field} has an empty name")
    uuid = vm.get("uuid")
    if vm["name"] == "Domain-0" and uuid is None:
        uuid = "00000000-0000-0000-0000-000000000000"
    vm["uuid"] = answers.uuid(uuid, where, f"{field} ({quote(vm['name'], 60)}) uuid")
    device = answers.struct(vm.get("device") or {}, where, f"{field} device")
    for kind in ("vbd", "vfb"):
        for i, d in enumerate(listify(device.get(kind))):
            answers.struct(d, where, f"{field} device.{kind}[{i}]")
    vm["device"] = device
    return vm


class Agent:
    """Every agent object over one client: ``Agent(client).xen.list_vms()``."""

    def __init__(self, client: AgentClient) -> None:
        self.client = client
        self.common, self.linux, self.network = Common(client), Linux(client), Network(client)
        self.pool, self.repository = Pool(client), Repository(client)
        self.storage, self.xen, self.ntp = StoragePlugin(client), Xen(client), Ntp(client)
        self.cloudstack = CloudStack(client)
