"""A template's ``<memory_policy><max>`` as GET shows it when it has no maximum of its own.

Before: four times the memory, whatever that came to (a template of 2 TiB showed 8 TiB,
beyond its OS's ``resources.maximum.ram``, a maximum the API refuses on a VM made from
it). Now the same as a VM's (tests/api/test_memory_policy_max_cap.py): the configured
maximum, else four times the memory capped at the bound the input check uses (the OS's
maximum at the template's cluster's version, never above ``osrules.MAX_MEMORY_MIB``,
just that bound when the cluster is unknown), never below the memory.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

from tests.api.raw_http import XML, Client
from virtplane import model, osrules

MIB = 1 << 20
OS_MAX_MIB = 4194304  # resources.maximum.ram of osinfo's "other" (and of every OS shipped)


def _shown_max(client: Client, tpl_id: str) -> int:
    status, _headers, body = client.api("GET", f"/templates/{tpl_id}")
    assert status == 200, body
    return int(ElementTree.fromstring(body).findtext("memory_policy/max") or "-1")


def _template_of(client: Client, world: Any, name: str, memory_mib: int,
                 max_memory_mib: int | None = None) -> str:
    """A template made through the API (so it is in cluster c1) from a new VM."""
    vm = world.vms.create(model.VmSpec(name=f"{name}-vm", memory_mib=memory_mib,
                                       max_memory_mib=max_memory_mib), "c1")
    xml = f"<template><name>{name}</name><vm><id>{vm.id}</id></vm></template>"
    status, _headers, body = client.api("POST", "/templates", xml.encode(), XML)
    assert status == 201, body
    return ElementTree.fromstring(body).get("id") or ""


def test_default_max_is_capped_at_what_the_os_allows(client: Client, world: Any) -> None:
    tpl_id = _template_of(client, world, "big", OS_MAX_MIB // 2)
    assert _shown_max(client, tpl_id) == OS_MAX_MIB * MIB  # was 2 * OS_MAX_MIB MiB
    status, _headers, listed = client.api("GET", "/templates")
    assert status == 200
    tops = {t.findtext("name"): t.findtext("memory_policy/max")
            for t in ElementTree.fromstring(listed).findall("template")}
    assert tops["big"] == str(OS_MAX_MIB * MIB)


def test_small_and_configured_maxima_are_unchanged(client: Client, world: Any) -> None:
    assert _shown_max(client, _template_of(client, world, "small", 1024)) == 4096 * MIB
    assert _shown_max(client, _template_of(client, world, "set", 1024, 1536)) == 1536 * MIB


def test_without_a_cluster_the_absolute_bound_caps_it(client: Client, world: Any) -> None:
    """A template made outside the API has no cluster of record: capped at
    MAX_MEMORY_MIB (four times 8 TiB would be 32 TiB), never below its memory."""
    vm = world.vms.create(model.VmSpec(name="src", memory_mib=1024), "c1")
    tpl = world.templates.create(vm.id, "free")
    world.store.modify(model.Template, tpl.id,
                       lambda t: setattr(t.spec, "memory_mib", osrules.MAX_MEMORY_MIB // 2))
    assert _shown_max(client, tpl.id) == osrules.MAX_MEMORY_MIB * MIB
    world.store.modify(model.Template, tpl.id,
                       lambda t: setattr(t.spec, "memory_mib", 2 * osrules.MAX_MEMORY_MIB))
    assert _shown_max(client, tpl.id) == 2 * osrules.MAX_MEMORY_MIB * MIB


def test_one_bound_for_the_os_rules_and_what_get_shows(world: Any) -> None:
    """osrules.max_memory_bound_mib is the bound osrules.check applies to
    max_memory_mib, and the one the API caps a shown maximum at (VMs and templates)."""
    repo = world.arch.osinfo
    cluster = world.clusters.get("c1")
    bound = osrules.max_memory_bound_mib(repo, "other", cluster.compat_version)
    assert bound == OS_MAX_MIB
    assert osrules.max_memory_bound_mib(repo, "no-such-os", "4.8") == osrules.MAX_MEMORY_MIB

    def problems(top: int) -> list[str]:
        spec = model.VmSpec(name="v", memory_mib=1024, max_memory_mib=top, os="other")
        return [p for p in osrules.check(spec, cluster, repo, "other", None, None)
                if "max_memory_mib" in p]

    assert problems(bound) == []
    assert problems(bound + 1) and f"to {bound} MiB" in problems(bound + 1)[0]
