"""Every service that creates a name checks it (virtplane.names), before touching anything.

test_names.py checks the rule itself; these tests check that each place a user
names an object applies it, and that custom property names are checked when a
VM is created and when a device is hot-plugged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import small_plane
from virtplane import model
from virtplane.errors import InvalidInput

BAD = ["../../x", "x/../../d/evil", "\x1b[2Jfake", "0f8fad5b-d9cb-469f-a165-70867728950e", ".."]


@pytest.fixture
def m(manager_factory, tmp_path):
    m = small_plane(manager_factory(), tmp_path / "data")
    m.storage.add("iso", "localfs", "dc", {"path": str(tmp_path / "iso")}, domain_class="iso")
    m.disks.create("d0", "sd", 1 << 20)
    m.vms.create(model.VmSpec(name="vm0", memory_mib=256,
                              disks=[model.DiskSpec(name="a", size_bytes=1 << 20,
                                                    domain_id=m.storage.get("sd").id)]), "cl")
    m.templates.create("vm0", "tpl")
    return m


def _creators(m, bad: str, tmp_path: Path):
    iso = tmp_path / "plain.iso"
    iso.write_bytes(b"\0" * 512)
    raw = tmp_path / "plain.raw"
    raw.write_bytes(b"\0" * 4096)
    return {
        "data center": lambda: m.datacenters.add(bad),
        "cluster": lambda: m.clusters.add(bad, "dc"),
        "host": lambda: m.hosts.add(bad, "cl", "test:///default"),
        "storage domain": lambda: m.storage.add(bad, "localfs", "dc",
                                                {"path": str(tmp_path / "other")}),
        "disk create": lambda: m.disks.create(bad, "sd", 1 << 20),
        "disk import": lambda: m.disks.import_file(bad, "sd", str(raw), "raw"),
        "disk clone": lambda: m.disks.clone("d0", bad),
        "VM": lambda: m.vms.create(model.VmSpec(name=bad, memory_mib=256), "cl"),
        "VM from template": lambda: m.templates.create_vm("tpl", bad, "cl"),
        "template": lambda: m.templates.create("vm0", bad),
        "snapshot": lambda: m.snapshots.take("vm0", bad),
        "ISO upload": lambda: m.isos.upload("iso", str(iso), bad),
    }


KINDS = ["data center", "cluster", "host", "storage domain", "disk create", "disk import",
         "disk clone", "VM", "VM from template", "template", "snapshot", "ISO upload"]


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("what", KINDS)
def test_every_creator_refuses_a_bad_name_and_makes_nothing(m, tmp_path, what, bad):
    before = {cls: len(m.store.list(cls)) for cls in
              (model.DataCenter, model.Cluster, model.Host, model.StorageDomain, model.Image,
               model.Vm, model.Template, model.Snapshot)}
    files = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(InvalidInput, match="name"):
        _creators(m, bad, tmp_path)[what]()
    after = {cls: len(m.store.list(cls)) for cls in before}
    assert after == before
    assert not (tmp_path / "x").exists() and not (tmp_path / "d").exists()
    new = {str(p) for p in tmp_path.rglob("*")} - set(files)
    assert new <= {str(tmp_path / "plain.iso"), str(tmp_path / "plain.raw")}


def test_an_iso_reference_must_name_a_plain_file(m, tmp_path):
    iso = tmp_path / "ok.iso"
    iso.write_bytes(b"\0" * 512)
    m.isos.upload("iso", str(iso))
    assert m.isos.media_path("iso:iso/ok.iso").endswith("/ok.iso")
    for ref in ["iso:iso/../../etc/shadow", "iso:iso/..", "iso:iso/a/../ok.iso"]:
        with pytest.raises(InvalidInput, match="ISO name"):
            m.isos.media_path(ref)
    with pytest.raises(InvalidInput, match="ISO name"):
        m.vms.create(model.VmSpec(name="cdvm", cd=model.CdSpec(path="iso:iso/../../x")), "cl")


def test_an_iso_file_whose_own_name_is_bad_needs_a_good_name(m, tmp_path):
    odd = tmp_path / "0f8fad5b-d9cb-469f-a165-70867728950e"
    odd.write_bytes(b"\0" * 512)
    with pytest.raises(InvalidInput, match="looks like a UUID"):
        m.isos.upload("iso", str(odd))
    assert m.isos.upload("iso", str(odd), "renamed.iso") == "renamed.iso"


@pytest.mark.parametrize("where", ["vm", "disk", "nic"])
@pytest.mark.parametrize("prop", ["PATH", "LD_PRELOAD", "path", "VIRTPLANE_STATE", "a-b",
                                  "_hook_domxml"])
def test_custom_property_names_are_checked_at_create(m, where, prop):
    spec = model.VmSpec(name="p", memory_mib=256)
    if where == "vm":
        spec.custom_properties[prop] = "x"
    elif where == "disk":
        spec.disks.append(model.DiskSpec(name="d", path="/dev/null",
                                         custom_properties={prop: "x"}))
    else:
        spec.nics.append(model.NicSpec(name="n", custom_properties={prop: "x"}))
    with pytest.raises(InvalidInput, match="custom property name"):
        m.vms.create(spec, "cl")
    assert not m.store.has(model.Vm, "p") and [v.name for v in m.vms.list()] == ["vm0"]


def test_custom_property_names_are_checked_at_hotplug(m):
    m.vms.create(model.VmSpec(name="run", memory_mib=256), "cl")
    m.vms.start("run")
    try:
        with pytest.raises(InvalidInput, match="custom property name 'LD_PRELOAD'"):
            m.devices.hotplug_nic("run", model.NicSpec(name="n1", custom_properties={
                "LD_PRELOAD": "/tmp/evil.so"}))
        assert m.vms.get("run").spec.nics == []
    finally:
        m.vms.destroy("run")


def test_a_domain_attached_from_storage_brings_no_bad_name(m, manager_factory, tmp_path):
    """A domain's name in its metadata is written by whoever can write the export."""
    from virtplane_storage_file.filedomain import read_json, write_json

    dom = m.storage.get("sd")
    md = tmp_path / "data" / dom.id / "dom_md" / "metadata.json"
    data = read_json(md)
    data["name"] = "../evil"
    write_json(md, data)
    other = manager_factory(state_path=tmp_path / "other.db")
    other.datacenters.add("dc2")
    with pytest.raises(InvalidInput, match="storage domain name '../evil'"):
        other.storage.attach(dom.id, "localfs", {"path": str(tmp_path / "data")}, "dc2")
    assert other.storage.list() == []


# ------------------------------------------------------------- REST API (PUT)

API_BAD = ["../../x", "x/../../d/evil", "0f8fad5b-d9cb-469f-a165-70867728950e", ".."]


@pytest.fixture
def api(m, tmp_path):
    """The oVirt-compatible API over ``m``: ``send(method, path, xml) -> Response``."""
    requests = pytest.importorskip("requests")
    from tests.api.conftest import PASSWORD
    from virtplane_api_ovirt import Server, create_app
    from virtplane_api_ovirt.auth import UserStore

    users = UserStore(tmp_path / "api-users.db")
    users.set_password("admin@internal", PASSWORD)
    server = Server(create_app(m, users=users), pki=None).start()
    try:
        from tests.api.test_json_http import _token

        s = requests.Session()
        s.headers.update({"Authorization": f"Bearer {_token(server)}",
                          "Content-Type": "application/xml", "Accept": "application/xml"})

        def send(method: str, path: str, xml: str):
            return s.request(method, f"{server.url}/{path}", data=xml.encode(), timeout=30)

        yield send
        s.close()
    finally:
        server.stop()


def _renamable(m, send):
    """(collection, element, id, current name) of each object a PUT can rename."""
    tag = send("POST", "tags", "<tag><name>t0</name></tag>")
    assert tag.status_code == 201, tag.text
    tag_id = tag.text.split('id="', 1)[1].split('"', 1)[0]
    return [
        ("datacenters", "data_center", m.datacenters.get("dc").id, "dc"),
        ("clusters", "cluster", m.clusters.get("cl").id, "cl"),
        ("hosts", "host", m.hosts.get("h").id, "h"),
        ("templates", "template", m.templates.get("tpl").id, "tpl"),
        ("vms", "vm", m.vms.get("vm0").id, "vm0"),
        ("tags", "tag", tag_id, "t0"),
    ]


@pytest.mark.parametrize("bad", API_BAD)
def test_every_rename_through_the_api_checks_the_name(m, api, bad):
    for path, element, obj_id, name in _renamable(m, api):
        reply = api("PUT", f"{path}/{obj_id}", f"<{element}><name>{bad}</name></{element}>")
        assert reply.status_code == 400, (path, reply.status_code, reply.text)
        assert "name" in reply.text and "not a UUID" in reply.text, (path, reply.text)
        got = api("GET", f"{path}/{obj_id}", "")
        assert f"<name>{name}</name>" in got.text, (path, got.text)
