"""What a hook script's payload must be (XML and JSON), each rule seen failing before.

Found by tests/hook_scripts/test_hook_output_fuzz.py. Before:

* a DOCTYPE with entities went to libvirt as the hook left it, and
  ``domxml.parse_element`` (every typed parse of domain and device XML) expanded
  the internal entities it declared (a "billion laughs" grows without bound);
* a ``before_vm_start`` script that renamed the domain had libvirt start a domain
  of another name: the VM was recorded Up, its domain was not found by its name,
  and the renamed one stayed running; a device script that changed the device's
  alias left virtplane unable to find the device again;
* an ``after_disk_prepare`` script that left JSON that is not an object (``[]``,
  ``null``) failed the start with ``AttributeError`` from the core;
* a path with a control character from ``after_disk_prepare`` made the domain XML
  handed to libvirt not well-formed (a libvirt error naming no hook);
* launch flags that are not a number failed with ``ValueError: invalid literal``.
"""

from __future__ import annotations

import pytest

from tests.libvirt_hosts import driver_domains
from virtplane import model
from virtplane.domxml import parse_element
from virtplane.errors import HookError, InvalidInput

LAUGHS = ('<!DOCTYPE domain [<!ENTITY a "AAAAAAAAAA">'
          '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
          '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>')


_domains = driver_domains


def _write(hooks, point: str, text: str, name: str = "50_out") -> None:
    hooks.add(point, name, f"""
        import os
        path = os.environ.get('_hook_domxml') or os.environ['_hook_json']
        with open(path, 'w') as f:
            f.write({text!r})
    """)


def _edit(hooks, point: str, old: str, new: str, name: str = "50_edit") -> None:
    hooks.add(point, name, f"""
        import os
        path = os.environ.get('_hook_domxml') or os.environ['_hook_json']
        text = open(path).read()
        with open(path, 'w') as f:
            f.write(text.replace({old!r}, {new!r}, 1))
    """)


def _refused(m, *words: str) -> str:
    before = _domains()
    with pytest.raises(HookError) as info:
        m.vms.start("vm1")
    message = str(info.value)
    for word in words:
        assert word in message, message
    vm = m.vms.get("vm1")
    assert vm.status == model.VmStatus.DOWN and vm.host_id is None
    assert _domains() == before
    return message


@pytest.fixture
def vm(hs_env):
    m = hs_env()
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256,
                              nics=[model.NicSpec(name="nic0",
                                                  custom_properties={"mtu": "9000"})]),
                 "cl1")
    yield m
    if m.vms.get("vm1").status != model.VmStatus.DOWN:
        m.vms.destroy("vm1")


# ------------------------------------------------------------------ DOCTYPE


@pytest.mark.parametrize("xml", [
    LAUGHS + "<domain>&c;</domain>",
    '<!DOCTYPE domain [<!ENTITY x SYSTEM "file:///etc/passwd">]><domain>&x;</domain>',
    '<?xml version="1.0"?>\n<!DOCTYPE domain><domain/>',
])
def test_parse_element_refuses_a_doctype(xml):
    with pytest.raises(InvalidInput, match="document type declaration"):
        parse_element(xml, "domain XML")


def test_parse_element_still_reads_doctype_text_in_comments_and_cdata():
    root = parse_element("<!-- <!DOCTYPE x> --><a><![CDATA[<!DOCTYPE y>]]></a>")
    assert root.tag == "a"


def test_a_doctype_with_entities_never_reaches_libvirt(hooks, vm):
    _edit(hooks, "before_vm_start", "<domain", LAUGHS + "<domain")
    _edit(hooks, "before_vm_start", "</name>", "</name><description>&c;</description>",
          name="60_use")
    message = _refused(vm, "before_vm_start", "50_edit", "document type declaration")
    assert "AAAAAAAAAAAAAAAAAAAA" not in message


def test_a_doctype_in_device_xml_is_refused(hooks, vm):
    _edit(hooks, "before_device_create", "<interface",
          '<!DOCTYPE interface [<!ENTITY x "y">]><interface')
    _refused(vm, "before_device_create", "50_edit", "document type declaration")


# -------------------------------------------------------------- root, name


def test_a_renamed_domain_is_refused_and_nothing_runs(hooks, vm):
    _edit(hooks, "before_vm_start", "<name>vm1</name>", "<name>vm1-renamed</name>")
    _refused(vm, "before_vm_start", "50_edit", "<name>", "vm1-renamed")
    assert "vm1-renamed" not in _domains()


def test_a_changed_uuid_is_refused(hooks, vm):
    hooks.add("before_vm_start", "50_edit", """
        import os, re
        path = os.environ['_hook_domxml']
        text = open(path).read()
        text = re.sub('<uuid>[^<]*</uuid>', '<uuid>00000000-0000-0000-0000-000000000001</uuid>',
                      text)
        open(path, 'w').write(text)
    """)
    _refused(vm, "before_vm_start", "50_edit", "<uuid>")


def test_device_xml_must_keep_its_alias(hooks, vm):
    """Before: the domain started with the NIC aliased ua-other, so virtplane could no
    longer find (unplug, fire device points for) its nic0."""
    _edit(hooks, "before_device_create", "ua-nic0", "ua-other")
    _refused(vm, "before_device_create", "50_edit", "<alias", "ua-other")


def test_device_xml_must_keep_its_root_element(hooks, vm):
    _write(hooks, "before_device_create", "<disk type='file' device='disk'/>")
    _refused(vm, "before_device_create", "50_out", "<disk>", "<interface>")


def test_domain_xml_must_be_a_domain(hooks, vm):
    _write(hooks, "before_vm_start", "<network><name>vm1</name></network>")
    _refused(vm, "before_vm_start", "50_out", "<network>", "<domain>")


def test_a_good_edit_still_starts(hooks, vm):
    _edit(hooks, "before_vm_start", "</devices>", "<!-- by a hook --></devices>")
    vm.vms.start("vm1")
    assert vm.vms.get("vm1").status == model.VmStatus.UP


def test_an_after_point_logs_a_refused_payload(hooks, vm):
    _write(hooks, "after_vm_start", "<!DOCTYPE domain><domain/>")
    vm.vms.start("vm1")
    assert vm.vms.get("vm1").status == model.VmStatus.UP
    errors = [e[2] for e in vm.vms.events("vm1") if e[1] == "error"]
    assert any("after_vm_start/50_out" in e and "document type declaration" in e
               for e in errors), errors


# --------------------------------------------------------------------- JSON


@pytest.fixture
def managed(hs_env, tmp_path):
    m = hs_env()
    m.storage.add("data1", "localfs", "dc1", {"path": str(tmp_path / "sd")})
    dom = m.store.find(model.StorageDomain, "data1")
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256, disks=[
        model.DiskSpec(name="disk0", size_bytes=1 << 20, domain_id=dom.id)]), "cl1")
    yield m
    if m.vms.get("vm1").status != model.VmStatus.DOWN:
        m.vms.destroy("vm1")


@pytest.mark.parametrize("text, kind", [
    ("[]", "array"), ("null", "null"), ('"path"', "string"), ("42", "number"),
])
def test_json_that_is_not_an_object_is_refused(hooks, managed, text, kind):
    _write(hooks, "after_disk_prepare", text)
    _refused(managed, "after_disk_prepare", "50_out", f"JSON {kind}", "JSON object")


@pytest.mark.parametrize("text", ["{", '{"path": NaN}', '{"a": 1} trailing', "[" * 5000])
def test_json_that_does_not_parse_is_refused(hooks, managed, text):
    _write(hooks, "after_disk_prepare", text)
    _refused(managed, "after_disk_prepare", "50_out")


def test_a_path_with_a_control_character_never_reaches_libvirt(hooks, managed):
    hooks.add("after_disk_prepare", "50_out", """
        import json, os
        path = os.environ['_hook_json']
        data = json.load(open(path))
        data['path'] = data['path'] + '\\x1f'
        json.dump(data, open(path, 'w'))
    """)
    _refused(managed, "after_disk_prepare", "50_out", "character XML cannot hold")


# ------------------------------------------------------------- launch flags


def test_launch_flags_that_are_not_a_number_are_refused(hooks, vm):
    hooks.add("before_vm_start", "50_flags", """
        import os, hooking
        path = hooking._launch_flags_path(os.environ['vmId'])
        open(path, 'w').write('paused please')
    """)
    _refused(vm, "before_vm_start", "launch flags", "not a non-negative integer")
