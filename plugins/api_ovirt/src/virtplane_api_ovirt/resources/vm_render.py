"""A VM as the SDK's ``Vm`` type reads it, with the memory policy and CPU topology oVirt
shows: the node every ``/vms`` reply (and the list cache) is made of.
:mod:`virtplane_api_ovirt.resources.vms` re-exports these names.
"""

from __future__ import annotations

from virtplane import model, osrules
from virtplane_api_ovirt import enums
from virtplane_api_ovirt.base import BASE, BLANK_ID, Call, links, ref
from virtplane_api_ovirt.render import Node

MIB = 1 << 20
VM_LINKS = (
    "affinitylabels",
    "applications",
    "cdroms",
    "diskattachments",
    "graphicsconsoles",
    "hostdevices",
    "katelloerrata",
    "mediateddevices",
    "nics",
    "numanodes",
    "permissions",
    "reporteddevices",
    "sessions",
    "snapshots",
    "statistics",
    "tags",
    "watchdogs",
)


def vm_arch(call: Call, vm: model.Vm) -> str:
    if vm.spec.arch:
        return vm.spec.arch
    cluster = call.lookup(model.Cluster, vm.cluster_id)
    return cluster.architecture if cluster else "x86_64"


def vm_node(call: Call, vm: model.Vm) -> Node:
    """A VM as the SDK's ``Vm`` type reads it (Ansible dereferences ``cpu`` and
    several nested defaults without checking them for None, so they are always there)."""
    spec = vm.spec
    path = f"{BASE}/vms/{vm.id}"
    memory = spec.memory_mib * MIB
    extras = call.api.extras
    template = extras.get(vm.id, "template") or BLANK_ID
    sockets, cores, threads = topology_of(extras.get(vm.id, "topology"), spec.vcpus)
    return {
        "href": path,
        "id": vm.id,
        "name": spec.name,
        "description": spec.custom_properties.get("description", ""),
        "comment": extras.get(vm.id, "comment"),
        "link": links(path, *VM_LINKS),
        "bios": {"boot_menu": {"enabled": False}, "type": "cluster_default"},
        "cpu": {
            "architecture": vm_arch(call, vm),
            "topology": {"cores": cores, "sockets": sockets, "threads": threads},
        },
        "delete_protected": False,
        "display": {"type": spec.display.type if spec.display else "vnc"},
        "high_availability": {"enabled": spec.highly_available, "priority": spec.ha_priority},
        "io": {"threads": 0},
        "memory": memory,
        "memory_policy": {
            "ballooning": True,
            "guaranteed": guaranteed(extras.get(vm.id, "guaranteed"), memory),
            "max": shown_max_memory_mib(call, spec, vm.cluster_id) * MIB,
        },
        "os": {"boot": {"devices": ["hd"]}, "type": spec.os or "other"},
        "sso": {"methods": [{"id": "guest_agent"}]},
        "start_paused": False,
        "stateless": False,
        "type": "server",
        "usb": {"enabled": False},
        "next_run_configuration_exists": False,
        "origin": "ovirt",
        "run_once": False,
        "status": enums.vm_status(vm),
        "status_detail": vm.status_reason or None,
        "stop_reason": vm.status_reason or None,
        "cluster": ref("clusters", vm.cluster_id),
        "host": ref("hosts", vm.host_id),
        "template": ref("templates", template),
        "original_template": ref("templates", template),
    }


def memory_bound_mib(call: Call, spec: model.VmSpec, cluster_id: str | None) -> int:
    """The most memory (MiB) the core lets this VM have or grow to:
    :func:`virtplane.osrules.max_memory_bound_mib` of its OS at its cluster's
    compatibility version (the bound ``osrules.check`` puts on ``max_memory_mib``, which
    refuses a larger ``<memory_policy><max>`` with a 400). Just
    :data:`virtplane.osrules.MAX_MEMORY_MIB` when the cluster or its architecture is
    unknown."""
    cluster = call.lookup(model.Cluster, cluster_id) if cluster_id else None
    if cluster is None or cluster.architecture not in call.m.loaded("architecture"):
        return osrules.MAX_MEMORY_MIB
    arch = call.m.arch
    return osrules.max_memory_bound_mib(
        arch.osinfo, arch.os_name(spec, cluster), cluster.compat_version
    )


def shown_max_memory_mib(call: Call, spec: model.VmSpec, cluster_id: str | None) -> int:
    """``<memory_policy><max>`` in MiB as oVirt shows it: the configured maximum, else
    four times the memory, capped at what the VM may have (:func:`memory_bound_mib`;
    showing more would tell a client, or Ansible sending it back, a maximum the API
    itself refuses), and never below the memory."""
    if spec.max_memory_mib:
        return spec.max_memory_mib
    return max(spec.memory_mib, min(spec.memory_mib * 4, memory_bound_mib(call, spec, cluster_id)))


def guaranteed(stored: str, memory: int) -> int:
    """The memory shown as guaranteed: what the client asked for, while it is at most
    the VM's memory (virtplane never takes memory back from a guest, so all of it is
    guaranteed in fact), else the memory."""
    return int(stored) if stored.isdigit() and int(stored) <= memory else memory


def topology_of(stored: str, vcpus: int) -> tuple[int, int, int]:
    """(sockets, cores, threads): as the client set them while their product is still
    the VM's vCPUs, else one socket per vCPU."""
    try:
        sockets, cores, threads = (int(p) for p in stored.split(":"))
    except ValueError:
        return vcpus, 1, 1
    return (sockets, cores, threads) if sockets * cores * threads == vcpus else (vcpus, 1, 1)
