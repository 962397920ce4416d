"""A VM's high availability through the REST API, as the SDK and Ansible's ``ovirt_vm``
(``high_availability: true``, ``high_availability_priority: 50``) send it: stored on add,
shown back (it always read ``enabled false, priority 0``), changed by PUT in any status
(the engine reads it when the VM's host fails), and a bad value is a 400 that changes
nothing."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import pytest

from tests.api.raw_http import XML, Client


def _send(client: Client, method: str, path: str, xml: str) -> tuple[int, ElementTree.Element]:
    status, _headers, body = client.api(method, path, xml.encode(), XML)
    return status, ElementTree.fromstring(body)


def _ha(node: ElementTree.Element) -> tuple[str | None, str | None]:
    return (node.findtext("high_availability/enabled"),
            node.findtext("high_availability/priority"))


def _add(client: Client, ha: str) -> tuple[int, ElementTree.Element]:
    return _send(client, "POST", "/vms",
                 "<vm><name>web</name><cluster><name>c1</name></cluster><template><name>"
                 f"Blank</name></template><memory>268435456</memory>{ha}</vm>")


def test_high_availability_is_stored_shown_and_changed_while_running(
        client: Client, world: Any) -> None:
    status, node = _add(client, "<high_availability><enabled>true</enabled>"
                                "<priority>50</priority></high_availability>")
    assert status == 201, ElementTree.tostring(node)
    assert _ha(node) == ("true", "50")
    vm = world.vms.get("web")
    assert vm.spec.highly_available is True and vm.spec.ha_priority == 50
    status, node = _send(client, "GET", f"/vms/{vm.id}", "")
    assert _ha(node) == ("true", "50")

    world.vms.start("web")
    status, node = _send(client, "PUT", f"/vms/{vm.id}",
                         "<vm><high_availability><priority>100</priority>"
                         "</high_availability></vm>")
    assert status == 200, ElementTree.tostring(node)
    assert _ha(node) == ("true", "100")
    status, node = _send(client, "PUT", f"/vms/{vm.id}",
                         "<vm><high_availability><enabled>false</enabled>"
                         "</high_availability></vm>")
    assert status == 200 and _ha(node) == ("false", "100")
    vm = world.vms.get("web")
    assert (vm.spec.highly_available, vm.spec.ha_priority, vm.status.value) == (
        False, 100, "Up")
    world.vms.destroy("web")


@pytest.mark.parametrize("ha, words", [
    ("<high_availability><priority>101</priority></high_availability>", "from 0 to 100"),
    ("<high_availability><priority>-1</priority></high_availability>", "from 0 to 100"),
    ("<high_availability><enabled>maybe</enabled></high_availability>", "true or false"),
])
def test_a_bad_high_availability_is_a_400_that_changes_nothing(
        client: Client, world: Any, ha: str, words: str) -> None:
    status, node = _add(client, ha)
    assert status == 400 and words in (node.findtext("detail") or "")
    assert world.vms.list() == []
    status, node = _add(client, "")
    vm_id = node.get("id")
    status, node = _send(client, "PUT", f"/vms/{vm_id}", f"<vm>{ha}</vm>")
    assert status == 400 and words in (node.findtext("detail") or "")
    vm = world.vms.get("web")
    assert (vm.spec.highly_available, vm.spec.ha_priority) == (False, 0)
