"""``/hosts``: list, get, add (by libvirt URI), remove, activate, deactivate.

oVirt adds a host by address and root password and installs VDSM on it;
virtplane reaches hosts through a hypervisor driver by URI, so ``<address>``
is taken as the URI when it is one (``qemu+ssh://root@h1/system``,
``test:///default``) and as ``qemu+ssh://root@ADDRESS/system`` otherwise. The
password is not used (key-based SSH, as libvirt does it). Ansible reads
``power_management``, ``spm`` and ``os`` without None checks: always present.
"""

from __future__ import annotations

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


def uri_of(address: str) -> str:
    return address if "://" in address else f"qemu+ssh://root@{address}/system"


def add_host(call: Call) -> Reply:
    body = call.need_body("host")
    name, address = parse.text(body, "name"), parse.text(body, "address")
    cluster = parse.ref(body, "cluster") or "Default"
    if not name or not address:
        raise InvalidInput("a host needs a <name> and an <address> (a libvirt URI or a "
                           "host name reached as qemu+ssh://root@NAME/system)")
    extra = updates.extra_fields(updates.given(body, "description", "comment"))
    host = call.m.hosts.add(name, cluster, uri_of(address))
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
