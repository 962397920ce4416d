"""``/hosts``: list, get, add (by libvirt URI), remove, activate, deactivate.

oVirt adds a host by address and root password and installs VDSM on it;
virtplane reaches hosts through a hypervisor driver by URI, so ``<address>``
is taken as the URI when it is one (``qemu+ssh://root@h1/system``,
``test:///default``) and as ``qemu+ssh://root@ADDRESS/system`` otherwise. The
password is not used (key-based SSH, as libvirt does it). Ansible reads
``power_management``, ``spm`` and ``os`` without None checks: always present.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from virtplane import model
from virtplane.capabilities import HostCapabilities
from virtplane.errors import InvalidInput
from virtplane.names import check_name
from virtplane_api_ovirt import actions, enums, parse, updates
from virtplane_api_ovirt.authz.model import Kind
from virtplane_api_ovirt.base import (
    BASE,
    Call,
    Reply,
    Route,
    collection,
    entity,
    links,
    ref,
    removed,
)
from virtplane_api_ovirt.render import Node
from virtplane_api_ovirt.search import Searcher

HOST_LINKS = ("affinitylabels", "devices", "externalnetworkproviderconfigurations",
              "fenceagents", "hooks", "katelloerrata", "networkattachments", "nics",
              "numanodes", "permissions", "statistics", "storage",
              "storageconnectionextensions", "tags", "unmanagednetworks")


def address_of(host: model.Host) -> str:
    return urlsplit(host.uri).hostname or host.uri


def host_node(call: Call, host: model.Host, vms: list[model.Vm] | None = None) -> Node:
    path = f"{BASE}/hosts/{host.id}"
    caps = HostCapabilities.of(host.capabilities)
    running = [v for v in (vms if vms is not None else call.m.vms.list())
               if v.host_id == host.id]
    return {
        "href": path, "id": host.id, "name": host.name,
        "description": call.api.extras.get(host.id, "description"),
        "comment": call.api.extras.get(host.id, "comment"),
        "link": links(path, *HOST_LINKS),
        "address": address_of(host),
        "cpu": {"name": caps.cpu_model or "", "speed": 0,
                "topology": {"cores": 1, "sockets": max(caps.cpus, 1), "threads": 1}},
        "display": {"address": None},
        "external_status": "ok",
        "kdump_status": "disabled",
        "ksm": {"enabled": False},
        "memory": caps.memory_mib << 20,
        "os": {"custom_kernel_cmdline": "", "type": "virtplane",
               "version": {"full_version": host.driver}},
        "port": 54321,
        "power_management": {"automatic_pm_enabled": True, "enabled": False,
                             "kdump_detection": True},
        "protocol": "stomp",
        "spm": {"priority": 5, "status": "none"},
        "status": enums.host_status(host),
        "status_detail": host.status_reason or None,
        "summary": {"active": sum(v.status == model.VmStatus.UP for v in running),
                    "migrating": sum(enums.vm_status(v) == "migrating" for v in running),
                    "total": len(running)},
        "transparent_huge_pages": {"enabled": True},
        "type": "rhel",
        "update_available": False,
        "vgpu_placement": "consolidated",
        "cluster": ref("clusters", host.cluster_id),
    }


def _cluster_name(call: Call, host: model.Host) -> list[str]:
    cl = call.lookup(model.Cluster, host.cluster_id)
    return [cl.name] if cl else []


def _dc_name(call: Call, host: model.Host) -> list[str]:
    cl = call.lookup(model.Cluster, host.cluster_id)
    dc = call.lookup(model.DataCenter, cl.datacenter_id) if cl else None
    return [dc.name] if dc else []


def searcher(call: Call) -> Searcher[model.Host]:
    return Searcher("host", {
        "name": lambda h: [h.name], "id": lambda h: [h.id],
        "status": lambda h: [enums.host_status(h)], "address": lambda h: [address_of(h)],
        "cluster": lambda h: _cluster_name(call, h),
        "clusters.name": lambda h: _cluster_name(call, h),
        "datacenter": lambda h: _dc_name(call, h),
    }, lambda h: h.name)


def list_hosts(call: Call) -> Reply:
    found = call.search(searcher(call), call.only_visible(Kind.HOST, call.m.hosts.list()))
    vms = call.m.vms.list()
    return collection("hosts", "host", [host_node(call, h, vms) for h in found])


def get_host(call: Call) -> Reply:
    return entity("host", host_node(call, call.m.hosts.get(call.params["id"])))


#: a bare host address: a host name or IPv4 address, or an IPv6 address in brackets
_BARE_ADDRESS = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9._\-]{0,252})|\[[0-9A-Fa-f:.]+\])"
                           r"(?::[0-9]{1,5})?")


def uri_of(address: str) -> str:
    """The libvirt URI of a host's ``<address>``: itself when it is a URI, otherwise
    ``qemu+ssh://root@ADDRESS/system`` for a host name or IP address (with a port)."""
    if "://" in address:
        return address
    if not _BARE_ADDRESS.fullmatch(address):
        raise InvalidInput(f"host address {address!r} is neither a libvirt URI nor a host "
                           "name or IP address (letters, digits, '.' and '-', starting "
                           "with a letter or digit; an IPv6 address in brackets; an "
                           "optional :PORT)")
    return f"qemu+ssh://root@{address}/system"


def _require_superuser_for(call: Call, uri: str) -> None:
    """Refuse (403) a URI part only a SuperUser on System may give (a file or socket
    of the engine's machine, weaker host authentication) to anyone else."""
    parts = call.m.hosts.privileged_uri_parts(uri)
    if not parts:
        return
    from virtplane_api_ovirt.authz import Forbidden, codes
    from virtplane_api_ovirt.authz.model import SYSTEM, ActionGroup
    from virtplane_api_ovirt.authz.tree import StoreTree

    authz = call.api.authz
    tree = call.tree or StoreTree(call.m.store)
    if authz.check(call.user, ActionGroup.CONFIGURE_ENGINE, SYSTEM, tree).granted:
        return
    message = (f"{call.user} may not add a host whose URI gives {'; '.join(parts)}: these "
               "reach the engine's own machine or weaken how the host is authenticated, so "
               "only a SuperUser on System may give them; leave them out (the host's "
               "defaults apply)")
    authz.audit(SYSTEM.id, f"Refused: POST /hosts by {call.user}: {message}",
                code=codes.DENIED, level="warning",
                correlation_id=call.query.get("correlation_id"))
    raise Forbidden(message)


def add_host(call: Call) -> Reply:
    body = call.need_body("host")
    name, address = parse.text(body, "name"), parse.text(body, "address")
    cluster = parse.ref(body, "cluster") or "Default"
    if not name or not address:
        raise InvalidInput("a host needs a <name> and an <address> (a libvirt URI or a "
                           "host name reached as qemu+ssh://root@NAME/system)")
    extra = updates.extra_fields(updates.given(body, "description", "comment"))
    uri = uri_of(address)
    _require_superuser_for(call, uri)
    host = call.m.hosts.add(name, cluster, uri)
    updates.apply_extras(call, host.id, extra)
    return entity("host", host_node(call, host), status=201)


def update_host(call: Call) -> Reply:
    """PUT: name, description and comment (moving a host to another cluster is not
    supported: 501)."""
    host = call.m.hosts.get(call.params["id"])
    body = call.need_body("host")
    changes = updates.asked(body, host_node(call, host))
    name = updates.take(changes, "name").get("name")
    extra = updates.extra_fields(changes)
    if not updates.same_ref(body, "cluster", host.cluster_id,
                            lambda key: call.m.clusters.get(key).id):
        changes["cluster"] = parse.ref(body, "cluster") or ""
    updates.refuse("host", changes)
    if name is not None:
        check_name("host", name)
        call.m.store.require_free(model.Host, name, "host")

        def apply(current: model.Host) -> model.Host:
            current.name = name
            return current

        host = call.m.store.modify(model.Host, host.id, apply)
    updates.apply_extras(call, host.id, extra)
    return entity("host", host_node(call, host))


def remove_host(call: Call) -> Reply:
    host = call.m.hosts.get(call.params["id"])
    call.m.hosts.remove(host.id)
    call.api.extras.forget(host.id)
    return removed()


def _activate(call: Call) -> Reply:
    host = call.m.hosts.get(call.params["id"])
    return actions.run(call, "host.activate", host.id,
                       lambda: call.m.hosts.maintenance(host.id, on=False))


def _deactivate(call: Call) -> Reply:
    host = call.m.hosts.get(call.params["id"])
    return actions.run(call, "host.deactivate", host.id,
                       lambda: call.m.hosts.maintenance(host.id, on=True))


def _refresh(call: Call) -> Reply:
    host = call.m.hosts.get(call.params["id"])
    return actions.run(call, "host.refresh", host.id, lambda: call.m.hosts.check(host.id))


def _no_statistics(call: Call) -> Reply:
    call.m.hosts.get(call.params["id"])
    return collection("statistics", "statistic", [])


ROUTES: list[Route] = [
    ("GET", "/hosts", list_hosts),
    ("POST", "/hosts", add_host),
    ("GET", "/hosts/{id}", get_host),
    ("PUT", "/hosts/{id}", update_host),
    ("DELETE", "/hosts/{id}", remove_host),
    ("POST", "/hosts/{id}/activate", _activate),
    ("POST", "/hosts/{id}/deactivate", _deactivate),
    ("POST", "/hosts/{id}/refresh", _refresh),
    ("GET", "/hosts/{id}/statistics", _no_statistics),
]
