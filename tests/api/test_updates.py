"""PUT (the update services): what changes, what is refused and how, with plain HTTP
(XML as the SDK writes it) and the real SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.api.test_json_http import _token


@pytest.fixture
def http(server: Any) -> Iterator[Any]:
    s = requests.Session()
    s.headers.update({"Authorization": f"Bearer {_token(server)}",
                      "Content-Type": "application/xml", "Accept": "application/xml"})
    url = server.url

    def put(path: str, xml: str) -> requests.Response:
        return s.put(f"{url}/{path}", data=xml.encode(), timeout=30)

    put.session = s  # type: ignore[attr-defined]
    yield put
    s.close()


def _detail(reply: requests.Response) -> str:
    return reply.text


def test_data_center_update_and_refusals(world: Any, server: Any, http: Any) -> None:
    dc = world.datacenters.get("dc1")
    ok = http(f"datacenters/{dc.id}", "<data_center><name>dc1b</name><description>new"
                                     "</description><comment>c</comment></data_center>")
    assert ok.status_code == 200, ok.text
    assert "<name>dc1b</name>" in ok.text and "<comment>c</comment>" in ok.text
    assert (world.datacenters.get(dc.id).name, world.datacenters.get(dc.id).description) == \
        ("dc1b", "new")
    same = http(f"datacenters/{dc.id}", "<data_center><name>dc1b</name><local>false</local>"
                                       "<status>up</status></data_center>")
    assert same.status_code == 200
    local = http(f"datacenters/{dc.id}", "<data_center><local>true</local></data_center>")
    assert local.status_code == 501 and "local" in local.text
    level = http(f"datacenters/{dc.id}", "<data_center><version><major>9</major>"
                                        "<minor>9</minor></version></data_center>")
    assert level.status_code == 400 and "9.9" in level.text
    world.datacenters.add("other")
    taken = http(f"datacenters/{dc.id}", "<data_center><name>other</name></data_center>")
    assert taken.status_code == 409 and "already exists" in taken.text
    long = http(f"datacenters/{dc.id}", f"<data_center><comment>{'x' * 4001}</comment>"
                                       "</data_center>")
    assert long.status_code == 400 and "longer than 4000" in long.text
    assert world.datacenters.get(dc.id).name == "dc1b"


def test_cluster_host_and_domain_updates(world: Any, server: Any, http: Any) -> None:
    cl = world.clusters.get("c1")
    ok = http(f"clusters/{cl.id}", "<cluster><description>d</description><fencing_policy>"
                                  "<enabled>false</enabled></fencing_policy></cluster>")
    assert ok.status_code == 200, ok.text
    assert world.clusters.get(cl.id).fencing_enabled is False
    assert "<description>d</description>" in http(f"clusters/{cl.id}", "<cluster/>").text
    ksm = http(f"clusters/{cl.id}", "<cluster><ksm><enabled>false</enabled></ksm></cluster>")
    assert ksm.status_code == 501 and "ksm.enabled" in ksm.text
    cpu = http(f"clusters/{cl.id}", "<cluster><cpu><type>No Such CPU</type></cpu></cluster>")
    assert cpu.status_code == 400 and "No Such CPU" in cpu.text
    moved = http(f"clusters/{cl.id}", "<cluster><data_center><name>nope</name></data_center>"
                                     "</cluster>")
    assert moved.status_code == 404

    host = world.hosts.get("h1")
    renamed = http(f"hosts/{host.id}", "<host><name>h1b</name><comment>rack 4</comment>"
                                      "<root_password>x</root_password></host>")
    assert renamed.status_code == 200, renamed.text
    assert world.hosts.get(host.id).name == "h1b"
    spm = http(f"hosts/{host.id}", "<host><spm><priority>9</priority></spm></host>")
    assert spm.status_code == 501 and "spm.priority" in spm.text
    bad = http(f"hosts/{host.id}", "<host><name>a/b</name></host>")
    assert bad.status_code == 400

    dom = world.storage.get("data1")
    described = http(f"storagedomains/{dom.id}", "<storage_domain><description>fast"
                                                "</description><host><name>h1b</name></host>"
                                                "</storage_domain>")
    assert described.status_code == 200 and "<description>fast</description>" in described.text
    under_dc = http(f"datacenters/{dom.datacenter_id}/storagedomains/{dom.id}",
                    "<storage_domain><name>renamed</name></storage_domain>")
    assert under_dc.status_code == 501 and "name" in under_dc.text
    not_xml = http(f"storagedomains/{dom.id}", "<storage_domain><description>")
    assert not_xml.status_code == 400 and "well-formed" in not_xml.text


def test_vm_nic_and_disk_updates(world: Any, server: Any, http: Any) -> None:
    from virtplane import model

    dom = world.storage.get("data1")
    spec = model.VmSpec(name="v1", memory_mib=256,
                        disks=[model.DiskSpec(name="v1_d1", size_bytes=1 << 30,
                                              domain_id=dom.id)],
                        nics=[model.NicSpec(name="nic1", mac="56:6f:00:00:00:01")])
    vm = world.vms.create(spec, "c1")
    ok = http(f"vms/{vm.id}", f"<vm><memory>{512 << 20}</memory><cpu><topology><sockets>1"
                              "</sockets><cores>2</cores><threads>1</threads></topology></cpu>"
                              "<comment>hi</comment></vm>")
    assert ok.status_code == 200, ok.text
    assert "<cores>2</cores>" in ok.text and "<sockets>1</sockets>" in ok.text
    now = world.vms.get(vm.id)
    assert (now.spec.memory_mib, now.spec.vcpus) == (512, 2)
    zero = http(f"vms/{vm.id}", "<vm><cpu><topology><sockets>0</sockets></topology></cpu></vm>")
    assert zero.status_code == 400 and "at least 1" in zero.text
    words = http(f"vms/{vm.id}", "<vm><memory>lots</memory></vm>")
    assert words.status_code == 400 and "integer" in words.text
    guarantee = http(f"vms/{vm.id}", f"<vm><memory_policy><guaranteed>{256 << 20}"
                                     "</guaranteed></memory_policy></vm>")
    assert guarantee.status_code == 200 and f"<guaranteed>{256 << 20}<" in guarantee.text
    too_much = http(f"vms/{vm.id}", f"<vm><memory_policy><guaranteed>{1 << 30}</guaranteed>"
                                    "</memory_policy></vm>")
    assert too_much.status_code == 400 and "between 0 and" in too_much.text
    stateless = http(f"vms/{vm.id}", "<vm><stateless>true</stateless></vm>")
    assert stateless.status_code == 501 and "stateless" in stateless.text

    nic_id = http.session.get(f"{server.url}/vms/{vm.id}/nics", timeout=10).text \
        .split('id="', 1)[1].split('"', 1)[0]
    changed = http(f"vms/{vm.id}/nics/{nic_id}", "<nic><interface>e1000</interface>"
                                                 "<mac><address>56:6F:00:00:00:02</address>"
                                                 "</mac></nic>")
    assert changed.status_code == 200, changed.text
    assert [(n.model, n.mac) for n in world.vms.get(vm.id).spec.nics] == [
        ("e1000", "56:6f:00:00:00:02")]
    bad_mac = http(f"vms/{vm.id}/nics/{nic_id}", "<nic><mac><address>zz</address></mac></nic>")
    assert bad_mac.status_code == 400 and "MAC" in bad_mac.text
    multicast = http(f"vms/{vm.id}/nics/{nic_id}",
                     "<nic><mac><address>01:00:00:00:00:01</address></mac></nic>")
    assert multicast.status_code == 400 and "multicast" in multicast.text
    unplug = http(f"vms/{vm.id}/nics/{nic_id}", "<nic><plugged>false</plugged></nic>")
    assert unplug.status_code == 501

    image_id = world.vms.get(vm.id).spec.disks[0].image_id
    grown = http(f"disks/{image_id}", f"<disk><provisioned_size>{2 << 30}</provisioned_size>"
                                      "</disk>")
    assert grown.status_code == 200, grown.text
    assert world.disks.get(image_id).volumes[-1].size_bytes == 2 << 30
    shrink = http(f"disks/{image_id}", f"<disk><provisioned_size>{1 << 30}</provisioned_size>"
                                       "</disk>")
    assert shrink.status_code == 400 and "shrinking" in shrink.text
    iface = http(f"vms/{vm.id}/diskattachments/{image_id}",
                 "<disk_attachment><interface>sata</interface><bootable>true</bootable>"
                 "</disk_attachment>")
    assert iface.status_code == 200, iface.text
    disk = world.vms.get(vm.id).spec.disks[0]
    assert (disk.interface, disk.bootable) == ("sata", True)
    floppy = http(f"vms/{vm.id}/diskattachments/{image_id}",
                  "<disk_attachment><interface>floppy</interface></disk_attachment>")
    assert floppy.status_code == 400 and "floppy" in floppy.text

    world.vms.start(vm.id)
    running = http(f"vms/{vm.id}", f"<vm><memory>{1 << 30}</memory></vm>")
    assert running.status_code == 409 and "Down" in running.text
    described = http(f"vms/{vm.id}", "<vm><description>busy</description></vm>")
    assert described.status_code == 200
    assert world.vms.get(vm.id).spec.custom_properties["description"] == "busy"
    listed = http.session.get(f"{server.url}/vms", timeout=10).text
    assert "<description>busy</description>" in listed and "<comment>hi</comment>" in listed


def test_sdk_updates_a_template(conn: Any, world: Any, sdk: Any) -> None:
    from virtplane import model

    world.vms.create(model.VmSpec(name="src", memory_mib=256), "c1")
    system = conn.system_service()
    templates = system.templates_service()
    tpl = templates.add(sdk.types.Template(name="t1", vm=sdk.types.Vm(name="src"),
                                           description="first"))
    assert tpl.description == "first" and tpl.cluster is not None
    service = templates.template_service(tpl.id)
    updated = service.update(sdk.types.Template(name="t2", description="second"))
    assert (updated.name, updated.description) == ("t2", "second")
    assert world.templates.get(tpl.id).name == "t2"
    assert [t.name for t in templates.list(search="name=t2 and cluster=c1")] == ["t2"]
    blank = templates.template_service("00000000-0000-0000-0000-000000000000")
    with pytest.raises(sdk.Error) as refused:
        blank.update(sdk.types.Template(description="x"))
    assert refused.value.code == 409
    vm = system.vms_service().add(sdk.types.Vm(name="fromt", cluster=sdk.types.Cluster(
        name="c1"), template=sdk.types.Template(name="t2")))
    assert vm.template.id == tpl.id
    assert [t.name for t in templates.list(search="vm.name=fromt")] == ["t2"]


def test_cluster_cpu_types_by_ovirt_names(conn: Any, world: Any, sdk: Any) -> None:
    clusters = conn.system_service().clusters_service()
    added = clusters.add(sdk.types.Cluster(
        name="c2", data_center=sdk.types.DataCenter(name="dc1"),
        cpu=sdk.types.Cpu(type="Intel Skylake Server Family",
                          architecture=sdk.types.Architecture.X86_64)))
    assert added.cpu.type == "Intel Skylake Server Family"
    assert world.clusters.get("c2").cpu_model == "Skylake-Server"
    service = clusters.cluster_service(added.id)
    service.update(sdk.types.Cluster(cpu=sdk.types.Cpu(type="Cascadelake-Server")))
    assert world.clusters.get("c2").cpu_model == "Cascadelake-Server"
    assert service.get().cpu.type == "Intel Cascadelake Server Family"
    level = conn.system_service().cluster_levels_service().level_service("4.8").get()
    names = {t.name for t in level.cpu_types}
    assert {"Intel Skylake Server Family", "IBM POWER9", "AMD EPYC"} <= names
    for name, words in (("Intel Conroe Family", "dropped"), ("Intel Itanium", "supported on")):
        with pytest.raises(sdk.Error) as refused:
            clusters.add(sdk.types.Cluster(name="c3", data_center=sdk.types.DataCenter(
                name="dc1"), cpu=sdk.types.Cpu(type=name)))
        assert refused.value.code == 400 and words in str(refused.value)


def test_tags(conn: Any, sdk: Any) -> None:
    tags = conn.system_service().tags_service()
    parent = tags.add(sdk.types.Tag(name="prod", description="production"))
    child = tags.add(sdk.types.Tag(name="web", parent=sdk.types.Tag(name="prod")))
    assert child.parent.id == parent.id
    assert [(t.name, t.parent.id if t.parent else None) for t in tags.list()] == [
        ("root", None), ("prod", "00000000-0000-0000-0000-000000000001"),
        ("web", parent.id)]
    refusals = [
        (lambda: tags.add(sdk.types.Tag(name="web")), 409, "already exists"),
        (lambda: tags.add(sdk.types.Tag(description="no name")), 400, "<name>"),
        (lambda: tags.tag_service(parent.id).update(
            sdk.types.Tag(parent=sdk.types.Tag(id=child.id))), 400, "under itself"),
        (lambda: tags.tag_service("00000000-0000-0000-0000-000000000001").remove(), 409,
         "root"),
    ]
    for call, code, words in refusals:
        with pytest.raises(sdk.Error) as refused:
            call()
        assert refused.value.code == code and words in str(refused.value)
    renamed = tags.tag_service(child.id).update(sdk.types.Tag(name="www", description="d"))
    assert (renamed.name, renamed.description) == ("www", "d")
    tags.tag_service(parent.id).remove()
    assert [t.name for t in tags.list()] == ["root"]


def _public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode() + " alice@example.com"


def test_ssh_public_keys(conn: Any, users: Any, sdk: Any) -> None:
    users.set_password("alice", "alice-pass-1")
    system = conn.system_service()
    alice = system.users_service().list(search="name=alice")[0]
    keys = system.users_service().user_service(alice.id).ssh_public_keys_service()
    line = _public_key()
    added = keys.add(sdk.types.SshPublicKey(content=line))
    assert added.content == line and added.user.id == alice.id
    assert [k.content for k in keys.list()] == [line]
    other = _public_key()
    assert keys.key_service(added.id).update(sdk.types.SshPublicKey(content=other)).content \
        == other
    kind, blob, _ = line.split(" ", 2)
    for content, words in (("ssh-rsa AAA...mu9 myuser@example.com", "not base64"),
                           (f"ssh-rsa {blob}", "'ssh-ed25519' key"),
                           ("hello", "must start with its type"), ("", "<content>"),
                           (other, "already has")):
        with pytest.raises(sdk.Error) as refused:
            keys.add(sdk.types.SshPublicKey(content=content))
        assert refused.value.code in (400, 409) and words in str(refused.value), content
    keys.key_service(added.id).remove()
    assert keys.list() == []
    with pytest.raises(sdk.NotFoundError):
        keys.key_service(added.id).get()
