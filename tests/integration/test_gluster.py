"""GlusterFS domains on a real single-node volume (tools/start-gluster.sh), real QEMU guests."""

from __future__ import annotations

import os
import socket
import subprocess

import libvirt
import pytest

from tests.conftest import need
from tests.integration.test_qemu_system import URI, _libvirtd_up
from virtplane import model
from virtplane.errors import VirtplaneError

pytestmark = pytest.mark.integration
VOLUME = "vptest"


def _gluster_up() -> bool:
    proc = subprocess.run(["gluster", "--mode=script", "volume", "info", VOLUME],
                          capture_output=True, text=True)
    return proc.returncode == 0 and "Status: Started" in proc.stdout


@pytest.fixture
def g(manager_factory):
    need(_libvirtd_up(), f"libvirtd is not reachable at {URI}")
    need(_gluster_up(), f"Gluster volume {VOLUME} is not started (tools/start-gluster.sh)")
    m = manager_factory()
    m.add_datacenter("dc")
    m.add_cluster("cl", "dc")
    m.add_host("h", "cl", URI)
    yield m
    for vm in m.list_vms():
        if vm.status != model.VmStatus.DOWN and vm.host_id:
            m.destroy_vm(vm.name)
        m.remove_vm(vm.name)
    for dom in m.store.list(model.StorageDomain):
        m.remove_storage_domain(dom.name)


def _conn(**extra):
    return {"server": socket.gethostname(), "volume": VOLUME, **extra}


def test_vm_runs_on_a_gluster_network_disk_and_snapshots_while_running(g, manager_factory,
                                                                       tmp_path):
    name = f"gd{os.getpid()}"
    dom = g.add_storage_domain(name, "glusterfs", "dc", _conn(create_via="gfapi"))
    vm = g.create_vm(model.VmSpec(name=f"vp-gl-{os.getpid()}", memory_mib=256, disks=[
        model.DiskSpec(name="d0", size_bytes=32 << 20, domain_id=dom.id)]), "cl")
    image = g.store.get(model.Image, vm.spec.disks[0].image_id)
    # the volume was created through gfapi, and is visible on the brick
    brick = subprocess.run(["sh", "-c", f"ls /srv/vp-gluster/{VOLUME}/{dom.id}/images/{image.id}"],
                           capture_output=True, text=True).stdout
    assert image.volumes[0].id in brick
    g.start_vm(vm.name)
    c = libvirt.open(URI)
    live = c.lookupByName(vm.name).XMLDesc(0)
    assert "<disk type='network' device='disk'>" in live
    assert f"protocol='gluster' name='{VOLUME}/{dom.id}/images/{image.id}/" in live
    g.snapshot_vm(vm.name, "live-snap")
    live = c.lookupByName(vm.name).XMLDesc(0)
    image = g.store.get(model.Image, image.id)
    assert len(image.volumes) == 2 and f"/{image.volumes[1].id}'" in live
    assert c.lookupByName(vm.name).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    c.close()
    g.destroy_vm(vm.name)
    assert g.verify_storage_domain(name) == []
    # another engine, a fresh state store, attaches the same domain and finds the image
    other = manager_factory(state_path=tmp_path / "other.db")
    other.attach_storage_domain(name, "glusterfs", _conn(create_via="gfapi"))
    found = [i.id for i in other.store.list(model.Image) if i.domain_id == dom.id]
    assert found == [image.id]
    other.detach_storage_domain(name)


def test_fuse_fallback_also_boots(g):
    name = f"gf{os.getpid()}"
    dom = g.add_storage_domain(name, "glusterfs", "dc", _conn(disk_access="fuse"))
    vm = g.create_vm(model.VmSpec(name=f"vp-glf-{os.getpid()}", memory_mib=256, disks=[
        model.DiskSpec(name="d0", size_bytes=16 << 20, domain_id=dom.id)]), "cl")
    g.start_vm(vm.name)
    live = g.get_vm(vm.name).started_xml
    assert "<disk type='file' device='disk'>" in live and "/virtplane/mnt/" in live
    assert g.get_vm(vm.name).status == model.VmStatus.UP


@pytest.mark.parametrize("conn, message", [
    ({"server": "nonexistent.invalid", "volume": VOLUME}, "cannot read Gluster volume"),
    ({"volume": "no-such-volume"}, "cannot read Gluster volume 'no-such-volume'"),
    ({"transport": "carrier-pigeon"}, "transport 'carrier-pigeon' is not allowed; allowed: tcp"),
])
def test_bad_gluster_connections_are_clear(g, conn, message):
    full = {**_conn(), **conn}
    with pytest.raises(VirtplaneError, match=message):
        g.add_storage_domain("bad", "glusterfs", "dc", full)
    assert g.store.list(model.StorageDomain) == []


def test_wrong_volume_settings_name_the_commands(g):
    vol = f"vpbad{os.getpid()}"
    brick = f"/srv/vp-gluster/{vol}"
    subprocess.run(["mkdir", "-p", brick], check=True)
    subprocess.run(["gluster", "--mode=script", "volume", "create", vol,
                    f"{socket.gethostname()}:{brick}", "force"], check=True, capture_output=True)
    try:
        with pytest.raises(VirtplaneError) as info:
            g.add_storage_domain("bad", "glusterfs", "dc", _conn(volume=vol))
        assert f"gluster volume start {vol}" in str(info.value)
        subprocess.run(["gluster", "--mode=script", "volume", "start", vol], check=True,
                       capture_output=True)
        with pytest.raises(VirtplaneError, match=f"gluster volume set {vol} "
                                                 "server.allow-insecure on"):
            g.add_storage_domain("bad", "glusterfs", "dc", _conn(volume=vol))
    finally:
        subprocess.run(["gluster", "--mode=script", "volume", "stop", vol], capture_output=True)
        subprocess.run(["gluster", "--mode=script", "volume", "delete", vol], capture_output=True)
    assert g.store.list(model.StorageDomain) == []
