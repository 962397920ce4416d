"""``/networks`` and ``/vnicprofiles``: derived from the VMs' NICs, one set per data center.

virtplane has no network objects yet: a NIC names a hypervisor network
(libvirt's ``default`` unless told otherwise). Each data center shows oVirt's
management network ``ovirtmgmt`` (libvirt's ``default``) plus every other
network its VMs' NICs use, each with one vNIC profile of the same name, at
ids derived from (data center, network), so clients can look them up, pick a
profile and add NICs with it as the SDK's ``add_vm_nic.py`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from virtplane import model
from virtplane.errors import NotFound
from virtplane_api_ovirt import guard
from virtplane_api_ovirt.authz.model import Kind
from virtplane_api_ovirt.base import (
    BASE,
    Call,
    Reply,
    Route,
    collection,
    derived_id,
    entity,
    links,
    ref,
)
from virtplane_api_ovirt.render import Node
from virtplane_api_ovirt.search import Searcher

MANAGEMENT = "ovirtmgmt"
#: oVirt network name -> virtplane (hypervisor) network name
TO_HYPERVISOR = {MANAGEMENT: "default"}
FROM_HYPERVISOR = {v: k for k, v in TO_HYPERVISOR.items()}


@dataclass(frozen=True)
class Network:
    dc_id: str
    name: str  # the oVirt name

    @property
    def id(self) -> str:
        return derived_id("network", self.dc_id, self.name)

    @property
    def profile_id(self) -> str:
        return derived_id("vnicprofile", self.dc_id, self.name)

    @property
    def hypervisor_name(self) -> str:
        return TO_HYPERVISOR.get(self.name, self.name)


def networks(call: Call) -> list[Network]:
    clusters = {c.id: c.datacenter_id for c in call.m.clusters.list()}
    found = {Network(dc.id, MANAGEMENT) for dc in call.m.datacenters.list()}
    for vm in call.m.vms.list():
        dc_id = clusters.get(vm.cluster_id)
        if dc_id is not None:
            found |= {Network(dc_id, FROM_HYPERVISOR.get(n.network, n.network))
                      for n in vm.spec.nics}
    return sorted(found, key=lambda n: (n.name, n.dc_id))


def network_of(call: Call, vm: model.Vm, nic: model.NicSpec) -> Network:
    cl = call.lookup(model.Cluster, vm.cluster_id)
    return Network(cl.datacenter_id if cl else "", FROM_HYPERVISOR.get(nic.network, nic.network))


def network_node(net: Network) -> Node:
    path = f"{BASE}/networks/{net.id}"
    return {"href": path, "id": net.id, "name": net.name, "description": "",
            "comment": "", "link": links(path, "permissions", "vnicprofiles"),
            "mtu": 0, "stp": False, "usages": ["vm"] if net.name != MANAGEMENT else
            ["management", "vm"], "vm": True,
            "data_center": ref("datacenters", net.dc_id)}


def profile_node(net: Network) -> Node:
    path = f"{BASE}/vnicprofiles/{net.profile_id}"
    return {"href": path, "id": net.profile_id, "name": net.name, "description": "",
            "link": links(path, "permissions"), "pass_through": {"mode": "disabled"},
            "port_mirroring": False, "network": ref("networks", net.id)}


def _dc_name(call: Call, net: Network) -> list[str]:
    dc = call.lookup(model.DataCenter, net.dc_id)
    return [dc.name] if dc else []


def searcher(call: Call) -> Searcher[Network]:
    return Searcher("network", {
        "name": lambda n: [n.name], "id": lambda n: [n.id],
        "datacenter": lambda n: _dc_name(call, n), "datacenter.name": lambda n: _dc_name(call, n),
    }, lambda n: n.name)


def list_networks(call: Call) -> Reply:
    found = call.search(searcher(call), networks(call))
    return collection("networks", "network", [network_node(n) for n in found])


def network_by_id(call: Call, net_id: str) -> Network | None:
    """The network with this id, or None."""
    return next((net for net in networks(call) if net.id == net_id), None)


guard.DERIVED[Kind.NETWORK] = network_by_id


def get_network(call: Call) -> Reply:
    net = network_by_id(call, call.params["id"])
    if net is None:
        raise NotFound(f"no network with id {call.params['id']}")
    return entity("network", network_node(net))


def dc_networks(call: Call) -> Reply:
    dc = call.m.datacenters.get(call.params["id"])
    return collection("networks", "network",
                      [network_node(n) for n in networks(call) if n.dc_id == dc.id])


def cluster_networks(call: Call) -> Reply:
    cl = call.m.clusters.get(call.params["id"])
    return collection("networks", "network",
                      [network_node(n) for n in networks(call) if n.dc_id == cl.datacenter_id])


def list_profiles(call: Call) -> Reply:
    return collection("vnic_profiles", "vnic_profile", [profile_node(n) for n in networks(call)])


def get_profile(call: Call) -> Reply:
    for net in networks(call):
        if net.profile_id == call.params["id"]:
            return entity("vnic_profile", profile_node(net))
    raise NotFound(f"no vNIC profile with id {call.params['id']}")


def network_profiles(call: Call) -> Reply:
    nets = [n for n in networks(call) if n.id == call.params["id"]]
    if not nets:
        raise NotFound(f"no network with id {call.params['id']}")
    return collection("vnic_profiles", "vnic_profile", [profile_node(n) for n in nets])


def profile_by_id(call: Call, profile_id: str) -> Network:
    for net in networks(call):
        if profile_id in (net.profile_id, net.name):
            return net
    raise NotFound(f"no vNIC profile {profile_id!r}")


ROUTES: list[Route] = [
    ("GET", "/networks", list_networks),
    ("GET", "/networks/{id}", get_network),
    ("GET", "/networks/{id}/vnicprofiles", network_profiles),
    ("GET", "/datacenters/{id}/networks", dc_networks),
    ("GET", "/clusters/{id}/networks", cluster_networks),
    ("GET", "/vnicprofiles", list_profiles),
    ("GET", "/vnicprofiles/{id}", get_profile),
]
