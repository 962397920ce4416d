"""What the fuzzer left (tests/api/test_api_fuzz.py): a VM's maximum memory of any size
was stored unchecked, and ``POST /datacenters`` dropped ``<version>``.

Now ``<memory_policy><max>`` is at least the VM's memory (400 naming it) and at most
what its OS allows (the core's 400 naming ``max_memory_mib`` and the range), on add
and update; a data center is made at the version asked (a known one, else 400),
shows it back, and, as in oVirt, a cluster is never older than its data center nor
the data center newer than its oldest cluster (409).
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree

import pytest

from tests.api.raw_http import XML, Client
from virtplane import model

MIB = 1 << 20


def _send(client: Client, method: str, path: str, xml: str) -> tuple[int, str]:
    """(status, detail or the reply) of an XML request."""
    status, _headers, body = client.api(method, path, xml.encode(), XML)
    root = ElementTree.fromstring(body)
    return status, (root.findtext("detail") or "") if root.tag == "fault" else body.decode()


def _vm(memory: int, top: int | None, name: str = "fz") -> str:
    policy = "" if top is None else f"<memory_policy><max>{top}</max></memory_policy>"
    return (f"<vm><name>{name}</name><cluster><name>c1</name></cluster><template><name>Blank"
            f"</name></template><memory>{memory}</memory>{policy}</vm>")


# ------------------------------------------------------------------- maximum memory


@pytest.mark.parametrize("top", [95_000_000_000 * MIB + 1,
                                 (4194304 + 1) * MIB, (1 << 63) - 1])
def test_add_vm_refuses_a_max_memory_beyond_the_os(client: Client, world: Any,
                                                   top: int) -> None:
    status, detail = _send(client, "POST", "/vms", _vm(256 * MIB, top))
    mib = -(-top // MIB)
    assert status == 400, detail
    assert (f"max_memory_mib {mib} MiB is outside what other allows (x86_64, compatibility "
            "4.8): from the VM's memory_mib (256) to 4194304 MiB") in detail
    assert world.vms.list() == []


@pytest.mark.parametrize("top", [128 * MIB, 0, -1])
def test_add_vm_refuses_a_max_memory_below_the_memory(client: Client, world: Any,
                                                      top: int) -> None:
    """Was silently dropped (the VM made without hotplug room)."""
    status, detail = _send(client, "POST", "/vms", _vm(256 * MIB, top))
    assert (status, detail) == (400, "[<memory_policy><max> must be at least the VM's memory "
                                     f"({256 * MIB} bytes), not {top}]")
    assert world.vms.list() == []


def test_add_vm_keeps_a_max_memory_in_range(client: Client, world: Any) -> None:
    status, text = _send(client, "POST", "/vms", _vm(256 * MIB, 4194304 * MIB))
    assert status == 201, text
    assert world.vms.get("fz").spec.max_memory_mib == 4194304
    assert f"<max>{4194304 * MIB}</max>" in text
    status, _text = _send(client, "POST", "/vms", _vm(256 * MIB, 256 * MIB, "same"))
    assert status == 201 and world.vms.get("same").spec.max_memory_mib is None


def test_update_vm_checks_max_memory_against_the_memory_it_will_have(
        client: Client, world: Any) -> None:
    vm = world.vms.create(model.VmSpec(name="v1", memory_mib=256), "c1")
    path = f"/vms/{vm.id}"
    huge = 95_000_000_000 * MIB
    status, detail = _send(client, "PUT", path, f"<vm><memory_policy><max>{huge}</max>"
                                                "</memory_policy></vm>")
    assert status == 400 and "max_memory_mib 95000000000 MiB is outside what other" in detail
    status, detail = _send(client, "PUT", path, f"<vm><memory_policy><max>{128 * MIB}</max>"
                                                "</memory_policy></vm>")
    assert status == 400 and "<memory_policy><max> must be at least the VM's memory" in detail
    assert world.vms.get(vm.id).spec.max_memory_mib is None
    # a maximum above the VM's own memory, below the 1024 MiB a new spec starts with
    status, text = _send(client, "PUT", path, f"<vm><memory_policy><max>{512 * MIB}</max>"
                                              "</memory_policy></vm>")
    assert status == 200, text
    assert world.vms.get(vm.id).spec.max_memory_mib == 512
    # the memory and the maximum together: checked against the new memory
    status, detail = _send(client, "PUT", path, f"<vm><memory>{1024 * MIB}</memory>"
                                                f"<memory_policy><max>{768 * MIB}</max>"
                                                "</memory_policy></vm>")
    assert status == 400 and f"memory ({1024 * MIB} bytes), not {768 * MIB}" in detail
    # more memory than the stored maximum: the core names the maximum
    status, detail = _send(client, "PUT", path, f"<vm><memory>{1024 * MIB}</memory></vm>")
    assert status == 400 and "max_memory_mib 512 MiB is outside" in detail
    assert world.vms.get(vm.id).spec.memory_mib == 256


def test_json_max_memory_is_checked_too(client: Client, world: Any) -> None:
    body = {"name": "fz", "cluster": {"name": "c1"}, "template": {"name": "Blank"},
            "memory": str(256 * MIB), "memory_policy": {"max": str((1 << 62) + 1)}}
    status, _h, reply = client.api("POST", "/vms", json.dumps(body).encode(), {
        "Content-Type": "application/json", "Accept": "application/json"})
    assert status == 400 and "max_memory_mib" in json.loads(reply)["detail"]


# --------------------------------------------------- data center compatibility versions


def _dc(name: str, version: str | None) -> str:
    major, minor = (version or "").split(".") if version else ("", "")
    given = f"<version><major>{major}</major><minor>{minor}</minor></version>" if version else ""
    return f"<data_center><name>{name}</name><local>false</local>{given}</data_center>"


def test_add_dc_keeps_its_version(client: Client, world: Any) -> None:
    """Was ignored: every data center was 4.8."""
    status, text = _send(client, "POST", "/datacenters", _dc("d5", "4.5"))
    assert status == 201, text
    assert "<version><major>4</major><minor>5</minor></version>" in text
    assert world.datacenters.get("d5").compat_version == "4.5"
    status, text = _send(client, "POST", "/datacenters", _dc("dnone", None))
    assert status == 201 and world.datacenters.get("dnone").compat_version == "4.8"


@pytest.mark.parametrize("version", ["9.9", "4.1", "3.6", "4.80"])
def test_add_dc_refuses_an_unknown_version(client: Client, world: Any, version: str) -> None:
    status, detail = _send(client, "POST", "/datacenters", _dc("dx", version))
    assert (status, detail) == (400, f"[data center compatibility version {version!r} is not "
                                     "supported; supported: 4.2, 4.3, 4.4, 4.5, 4.6, 4.7, 4.8]")
    assert [d.name for d in world.datacenters.list()] == ["dc1"]


def test_cluster_and_data_center_versions_follow_ovirt(client: Client, world: Any) -> None:
    status, text = _send(client, "POST", "/datacenters", _dc("d6", "4.6"))
    assert status == 201, text
    cluster = ("<cluster><name>{}</name><data_center><name>d6</name></data_center>"
               "<cpu><architecture>x86_64</architecture></cpu>"
               "<version><major>4</major><minor>{}</minor></version></cluster>")
    status, detail = _send(client, "POST", "/clusters", cluster.format("c5", 5))
    assert (status, detail) == (409, "[cluster 'c5' cannot be at compatibility version 4.5: "
                                     "its data center 'd6' is at 4.6, and a cluster is never "
                                     "older than its data center (whose version is never "
                                     "lowered); use a version from 4.6 up]")
    assert [c.name for c in world.clusters.list()] == ["c1"]
    status, text = _send(client, "POST", "/clusters", cluster.format("c7", 7))
    assert status == 201, text
    c7 = world.clusters.get("c7")
    dc = world.datacenters.get("d6")
    # the data center may rise to its oldest cluster, not beyond
    status, detail = _send(client, "PUT", f"/datacenters/{dc.id}", _dc("d6", "4.8"))
    assert status == 409 and "its cluster 'c7' is at 4.7" in detail
    status, text = _send(client, "PUT", f"/datacenters/{dc.id}", _dc("d6", "4.7"))
    assert status == 200 and "<minor>7</minor>" in text
    assert world.datacenters.get(dc.id).compat_version == "4.7"
    # and the cluster may not fall below it
    status, detail = _send(client, "PUT", f"/clusters/{c7.id}",
                           "<cluster><version><major>4</major><minor>6</minor></version>"
                           "</cluster>")
    assert status == 409 and "its data center 'd6' is at 4.7" in detail
    assert world.clusters.get(c7.id).compat_version == "4.7"
    status, detail = _send(client, "PUT", f"/datacenters/{dc.id}", _dc("d6", "5.0"))
    assert status == 400 and "'5.0' is not supported" in detail
