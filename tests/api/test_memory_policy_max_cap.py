"""A VM's ``<memory_policy><max>`` as GET shows it when the VM has no maximum of its own.

Before: four times the memory, whatever that came to: a VM of 2 TiB showed 8 TiB,
beyond its OS's ``resources.maximum.ram`` (4 TiB for every OS shipped), a maximum the
API itself refuses on input (400 naming ``max_memory_mib``). Now, as in oVirt, the
configured maximum, else four times the memory capped at the bound the input check
uses (the OS's maximum, never above ``osrules.MAX_MEMORY_MIB``), never below the memory.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

from tests.api.raw_http import XML, Client
from virtplane import model, osrules

MIB = 1 << 20
OS_MAX_MIB = 4194304  # resources.maximum.ram of osinfo's "other" (and of every OS shipped)


def _shown_max(client: Client, vm_id: str) -> int:
    status, _headers, body = client.api("GET", f"/vms/{vm_id}")
    assert status == 200, body
    return int(ElementTree.fromstring(body).findtext("memory_policy/max") or "-1")


def _post(client: Client, name: str, memory: int, top: int) -> tuple[int, bytes]:
    xml = (f"<vm><name>{name}</name><cluster><name>c1</name></cluster><template><name>Blank"
           f"</name></template><memory>{memory}</memory>"
           f"<memory_policy><max>{top}</max></memory_policy></vm>")
    status, _headers, body = client.api("POST", "/vms", xml.encode(), XML)
    return status, body


def test_default_max_is_capped_at_what_the_os_allows(client: Client, world: Any) -> None:
    big = world.vms.create(model.VmSpec(name="big", memory_mib=OS_MAX_MIB // 2), "c1")
    assert big.spec.max_memory_mib is None
    assert _shown_max(client, big.id) == OS_MAX_MIB * MIB  # was 2 * OS_MAX_MIB MiB
    # what GET shows is a maximum the API accepts back; what it showed before is not
    status, body = _post(client, "copy", OS_MAX_MIB // 2 * MIB, OS_MAX_MIB * MIB)
    assert status == 201, body
    status, body = _post(client, "old", OS_MAX_MIB // 2 * MIB, 2 * OS_MAX_MIB * MIB)
    assert status == 400 and b"max_memory_mib" in body
    # the list shows the same
    status, _headers, listed = client.api("GET", "/vms")
    assert status == 200
    tops = {vm.findtext("name"): vm.findtext("memory_policy/max")
            for vm in ElementTree.fromstring(listed).findall("vm")}
    assert tops["big"] == str(OS_MAX_MIB * MIB)


def test_default_max_of_a_small_vm_is_still_four_times_its_memory(
        client: Client, world: Any) -> None:
    vm = world.vms.create(model.VmSpec(name="small", memory_mib=1024), "c1")
    assert _shown_max(client, vm.id) == 4096 * MIB


def test_a_configured_max_is_shown_as_it_is(client: Client, world: Any) -> None:
    vm = world.vms.create(model.VmSpec(name="set", memory_mib=1024, max_memory_mib=1536), "c1")
    assert _shown_max(client, vm.id) == 1536 * MIB


def test_default_max_is_never_below_the_memory(client: Client, world: Any) -> None:
    """A VM stored with more memory than its OS allows (before the check) shows its
    memory as the maximum, never less, and never above the absolute bound's reach."""
    vm = world.vms.create(model.VmSpec(name="legacy", memory_mib=1024), "c1")
    world.store.modify(model.Vm, vm.id,
                       lambda v: setattr(v.spec, "memory_mib", 3 * OS_MAX_MIB))
    assert 3 * OS_MAX_MIB < osrules.MAX_MEMORY_MIB
    assert _shown_max(client, vm.id) == 3 * OS_MAX_MIB * MIB
