"""``/vms``: list (with search), get, add (Blank or a template), update, remove, and the
lifecycle actions start, stop, shutdown, suspend, reboot, migrate.

A VM's XML is cached per (id, store revision): the revision moves on every
write, so a cached entry is never stale, and listing 1,000 unchanged VMs costs
one cheap query plus a join of strings (the SDK's ``vms_service().list()``
benchmark in tests/perf/bench_api.py).

The VM's node (memory policy, CPU topology) is made in :mod:`.vm_render`, whose names
this module re-exports; the lifecycle actions are in :mod:`.vm_actions`.
"""

from __future__ import annotations

import threading

from virtplane import model
from virtplane.errors import InvalidInput, NotFound
from virtplane.names import check_name
from virtplane_api_ovirt import _edits, enums, parse, updates
from virtplane_api_ovirt.authz.model import Kind
from virtplane_api_ovirt.base import (
    BLANK_ID,
    Call,
    Reply,
    Route,
    collection,
    entity,
    removed,
)
from virtplane_api_ovirt.render import Node, xml_entity
from virtplane_api_ovirt.resources import vm_actions
from virtplane_api_ovirt.resources.vm_render import MIB as MIB
from virtplane_api_ovirt.resources.vm_render import VM_LINKS as VM_LINKS
from virtplane_api_ovirt.resources.vm_render import guaranteed as guaranteed
from virtplane_api_ovirt.resources.vm_render import memory_bound_mib as memory_bound_mib
from virtplane_api_ovirt.resources.vm_render import shown_max_memory_mib as shown_max_memory_mib
from virtplane_api_ovirt.resources.vm_render import topology_of as topology_of
from virtplane_api_ovirt.resources.vm_render import vm_arch as vm_arch
from virtplane_api_ovirt.resources.vm_render import vm_node as vm_node
from virtplane_api_ovirt.search import Searcher


def _guaranteed(body: Node, memory_mib: int) -> str | None:
    """A body's ``memory_policy.guaranteed``, checked against the memory it will have."""
    value = parse.integer(body, "memory_policy", "guaranteed")
    if value is None:
        return None
    if not 0 <= value <= memory_mib * MIB:
        raise InvalidInput(
            f"<memory_policy><guaranteed> must be between 0 and the VM's "
            f"memory ({memory_mib * MIB} bytes), not {value}"
        )
    return str(value)


def _max_memory(body: Node, memory_mib: int) -> int | None:
    """A body's ``memory_policy.max`` in MiB, at least the memory the VM will have
    (None: absent, or no room above the memory). Its upper bound is the core's
    (the OS's maximum, and osrules.MAX_MEMORY_MIB): a 400 naming max_memory_mib."""
    value = parse.integer(body, "memory_policy", "max")
    if value is None:
        return None
    if value < memory_mib * MIB:
        raise InvalidInput(
            f"<memory_policy><max> must be at least the VM's memory "
            f"({memory_mib * MIB} bytes), not {value}"
        )
    return -(-value // MIB) if value > memory_mib * MIB else None


def _topology(body: Node) -> str | None:
    """``sockets:cores:threads`` of a body's ``<cpu><topology>`` (None when absent)."""
    topology = parse.child(parse.child(body, "cpu"), "topology")
    if topology is None:
        return None
    given = [parse.integer(topology, k) for k in ("sockets", "cores", "threads")]
    parts = [1 if p is None else p for p in given]
    if any(p < 1 for p in parts):
        raise InvalidInput("<cpu><topology> sockets, cores and threads must be at least 1")
    return ":".join(str(p) for p in parts)


def _cluster_name(call: Call, vm: model.Vm) -> list[str]:
    cluster = call.lookup(model.Cluster, vm.cluster_id)
    return [cluster.name] if cluster else []


def _host_name(call: Call, vm: model.Vm) -> list[str]:
    host = call.lookup(model.Host, vm.host_id) if vm.host_id else None
    return [host.name] if host else []


def searcher(call: Call) -> Searcher[model.Vm]:
    return Searcher(
        "VM",
        {
            "name": lambda v: [v.name],
            "id": lambda v: [v.id],
            "status": lambda v: [enums.vm_status(v)],
            "cluster": lambda v: _cluster_name(call, v),
            "clusters.name": lambda v: _cluster_name(call, v),
            "cluster.name": lambda v: _cluster_name(call, v),
            "host": lambda v: _host_name(call, v),
            "host.name": lambda v: _host_name(call, v),
            "hosts.name": lambda v: _host_name(call, v),
            "os": lambda v: [v.spec.os or "other"],
            "description": lambda v: [v.spec.custom_properties.get("description", "")],
        },
        lambda v: v.name,
    )


class _Cache:
    """id -> (revision, VM, XML) of every VM listed so far."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[int, model.Vm, str]] = {}
        self.lock = threading.Lock()


def _cache(call: Call) -> _Cache:
    with call.api.lock:
        cache = call.api.caches.get("vms")
        if cache is None:
            cache = call.api.caches["vms"] = _Cache()
    assert isinstance(cache, _Cache)
    return cache


def _current(call: Call, versions: dict[str, int] | None = None) -> list[tuple[model.Vm, str]]:
    """Every VM (or those of ``versions``, id -> revision) and its XML, sorted by name;
    only rows whose revision moved are read."""
    cache = _cache(call)
    every = versions is None
    if versions is None:
        versions = call.m.store.versions(model.Vm)
    entries = cache.entries
    out: list[tuple[model.Vm, str]] = []
    fresh: dict[str, tuple[int, model.Vm, str]] = {}
    for vm_id, revision in versions.items():
        hit = entries.get(vm_id)
        if hit is None or hit[0] != revision:
            try:
                vm = call.m.store.get(model.Vm, vm_id)
            except NotFound:
                continue  # removed since versions() was read
            hit = (vm.revision, vm, xml_entity("vm", vm_node(call, vm)))
            fresh[vm_id] = hit
        out.append((hit[1], hit[2]))
    with cache.lock:
        entries.update(fresh)
        if every:
            for gone in set(entries) - set(versions):
                entries.pop(gone, None)
    out.sort(key=lambda pair: pair[0].name)
    return out


def _visible_versions(call: Call) -> dict[str, int] | None:
    """id -> revision of the VMs the caller may see; None: every VM. Read through the
    store's id and cluster indexes, so a user who sees 100 of 10,000 VMs costs about
    what 100 VMs cost (the bench in tests/perf/bench_authz.py)."""
    visible = call.visible
    scope = visible.vm_scope() if visible is not None else None
    if scope is None:
        return None
    vm_ids, cluster_ids = scope
    store = call.m.store
    found = store.versions(model.Vm, cluster_ids=cluster_ids) if cluster_ids else {}
    if vm_ids - found.keys():
        found.update(store.versions(model.Vm, ids=vm_ids - found.keys()))
    return found


def list_vms(call: Call) -> Reply:
    pairs = _current(call, _visible_versions(call))
    visible = call.visible
    if visible is not None and not visible.everything:  # the scope's answer, checked
        pairs = [(vm, xml) for vm, xml in pairs if visible.sees(Kind.VM, vm)]
    if call.query.get("search") or call.query.get("max"):
        xml_of = {vm.id: xml for vm, xml in pairs}
        found = call.search(searcher(call), [vm for vm, _ in pairs])
        pairs = [(vm, xml_of[vm.id]) for vm in found]
    vms = [vm for vm, _ in pairs]
    return collection(
        "vms", "vm", lambda: [vm_node(call, v) for v in vms], [xml for _, xml in pairs]
    )


def get_vm(call: Call) -> Reply:
    return entity("vm", vm_node(call, call.m.vms.get(call.params["id"])))


def _spec_from(body: Node, name: str) -> model.VmSpec:
    memory = parse.integer(body, "memory")
    topology = parse.child(parse.child(body, "cpu"), "topology")
    vcpus = 1
    if topology is not None:
        vcpus = (
            (parse.integer(topology, "sockets") or 1)
            * (parse.integer(topology, "cores") or 1)
            * (parse.integer(topology, "threads") or 1)
        )
    spec = model.VmSpec(name=name, vcpus=vcpus)
    if memory:
        spec.memory_mib = max(1, -(-memory // MIB))
    os_type = parse.text(body, "os", "type")
    if os_type and os_type != "other":
        spec.os = os_type
    display = parse.text(body, "display", "type")
    if display:
        spec.display = model.DisplaySpec(type=display)
    description = parse.text(body, "description")
    if description:
        spec.custom_properties["description"] = description
    enabled, priority = _high_availability(body)
    if enabled is not None:
        spec.highly_available = enabled
    if priority is not None:
        spec.ha_priority = priority
    return spec


def _high_availability(body: Node) -> tuple[bool | None, int | None]:
    """A body's ``<high_availability>``: whether the engine restarts the VM when its
    host fails, and its restart priority (0-100; oVirt's low/medium/high are 1/50/100).

    :raises InvalidInput: not a boolean, or a priority outside 0-100.
    """
    enabled = parse.boolean(body, "high_availability", "enabled")
    priority = parse.integer(body, "high_availability", "priority")
    if priority is not None and not 0 <= priority <= 100:
        raise InvalidInput(f"<high_availability><priority> must be from 0 to 100, not {priority}")
    return enabled, priority


def add_vm(call: Call) -> Reply:
    body = call.need_body("vm")
    name = parse.text(body, "name")
    cluster = parse.ref(body, "cluster")
    if not name:
        raise InvalidInput("a VM needs a <name>")
    if not cluster:
        raise InvalidInput("a VM needs a <cluster> (by id or name)")
    template = parse.ref(body, "template") or BLANK_ID
    extra = updates.extra_fields(updates.given(body, "comment"), "comment")
    topology = _topology(body)
    if template in (BLANK_ID, "Blank"):
        spec = _spec_from(body, name)
        spec.max_memory_mib = _max_memory(body, spec.memory_mib)
        wanted = _guaranteed(body, spec.memory_mib)
        vm = call.m.vms.create(spec, cluster)
        if topology:
            extra["topology"] = topology
        if wanted is not None:
            extra["guaranteed"] = wanted
    else:
        tpl = call.m.templates.get(template)
        vm = call.m.templates.create_vm(tpl.id, name, cluster, clone=bool(call.flag("clone")))
        extra["template"] = tpl.id
    updates.apply_extras(call, vm.id, extra)
    return entity("vm", vm_node(call, vm), status=201)


def update_vm(call: Call) -> Reply:
    """PUT: name, description, comment, memory (its maximum and guarantee), CPU
    topology, OS and high availability; all but the description, comment, guarantee
    and high availability need the VM Down
    (409 otherwise: virtplane has no next-run configuration); anything else is
    refused with 501."""
    vm = call.m.vms.get(call.params["id"])
    body = call.need_body("vm")
    changes = updates.asked(body, vm_node(call, vm))
    extra = updates.extra_fields(changes, "comment")
    fields = updates.take(
        changes,
        "name",
        "description",
        "memory",
        "memory_policy.max",
        "os.type",
        "cpu.topology.sockets",
        "cpu.topology.cores",
        "cpu.topology.threads",
    )
    if "memory_policy.guaranteed" in changes or "memory" in fields:
        changes.pop("memory_policy.guaranteed", None)
        memory_mib = (
            _spec_from(body, vm.name).memory_mib if "memory" in fields else vm.spec.memory_mib
        )
        wanted_guarantee = _guaranteed(body, memory_mib)
        if wanted_guarantee is not None:
            extra["guaranteed"] = wanted_guarantee
    if not updates.same_ref(
        body, "cluster", vm.cluster_id, lambda key: call.m.clusters.get(key).id
    ):
        changes["cluster"] = parse.ref(body, "cluster") or ""
    # high availability may change in any status (the engine reads it when a host fails)
    ha = updates.take(changes, "high_availability.enabled", "high_availability.priority")
    updates.refuse("VM", changes)
    enabled, priority = _high_availability(body) if ha else (None, None)
    wanted = _spec_from(body, fields.get("name", vm.name))
    if "memory_policy.max" in fields:  # against the memory the VM will have
        wanted.max_memory_mib = _max_memory(
            body, wanted.memory_mib if "memory" in fields else vm.spec.memory_mib
        )
    topology = _topology(body) if any(k.startswith("cpu.") for k in fields) else None
    if topology is not None:
        extra["topology"] = topology
    # the VM list caches each VM's XML per revision: what the API keeps itself is
    # written before the VM's new revision, and put back if that write fails
    before = {k: call.api.extras.get(vm.id, k) for k in extra}
    updates.apply_extras(call, vm.id, extra)
    try:
        vm = _write(call, vm, fields, wanted, topology, bool(extra))
    except BaseException:
        updates.apply_extras(call, vm.id, before)
        raise
    if ha:
        vm = call.m.vms.set_high_availability(
            vm.id,
            enabled if "high_availability.enabled" in ha else None,
            priority if "high_availability.priority" in ha else None,
        )
    return entity("vm", vm_node(call, vm))


def _write(
    call: Call,
    vm: model.Vm,
    fields: dict[str, str],
    wanted: model.VmSpec,
    topology: str | None,
    touched: bool,
) -> model.Vm:
    """Store an update's changes of the VM record (see update_vm)."""
    if set(fields) - {"description"}:
        if "name" in fields:
            check_name("VM", fields["name"])
            call.m.store.require_free(model.Vm, fields["name"], "VM")

        def change(spec: model.VmSpec) -> None:
            spec.name = wanted.name
            if "memory" in fields:
                spec.memory_mib = wanted.memory_mib
            if "memory_policy.max" in fields:
                spec.max_memory_mib = wanted.max_memory_mib
            if "os.type" in fields:
                spec.os = wanted.os
            if topology is not None:
                spec.vcpus = wanted.vcpus
            if "description" in fields:
                _describe(spec, fields["description"])

        what = f"changing its {', '.join(sorted(fields))}"
        return _edits.edit_down_vm(call, vm.id, change, what)
    if fields or touched:
        description = fields.get("description")

        def touch(current: model.Vm) -> None:  # a new revision: the list cache moves on
            if description is not None:
                _describe(current.spec, description)

        return call.m.store.modify(model.Vm, vm.id, touch)
    return vm


def _describe(spec: model.VmSpec, description: str) -> None:
    if description:
        spec.custom_properties["description"] = description
    else:
        spec.custom_properties.pop("description", None)


def remove_vm(call: Call) -> Reply:
    vm = call.m.vms.get(call.params["id"])
    call.m.vms.remove(vm.id)
    call.api.extras.forget(vm.id)
    return removed()


ROUTES: list[Route] = [
    ("GET", "/vms", list_vms),
    ("POST", "/vms", add_vm),
    ("GET", "/vms/{id}", get_vm),
    ("PUT", "/vms/{id}", update_vm),
    ("DELETE", "/vms/{id}", remove_vm),
    *vm_actions.ROUTES,
]
