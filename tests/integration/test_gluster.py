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
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.hosts.add("h", "cl", URI)
    yield m
    for vm in m.vms.list():
        if vm.status != model.VmStatus.DOWN and vm.host_id:
            m.vms.destroy(vm.name)
        m.vms.remove(vm.name)
    for dom in m.store.list(model.StorageDomain):
        m.storage.remove(dom.name)


def _conn(**extra):
    return {"server": socket.gethostname(), "volume": VOLUME, **extra}


def test_vm_runs_on_a_gluster_network_disk_and_snapshots_while_running(g, manager_factory,
                                                                       tmp_path):
    name = f"gd{os.getpid()}"
    dom = g.storage.add(name, "glusterfs", "dc", _conn(create_via="gfapi"))
    vm = g.vms.create(model.VmSpec(name=f"vp-gl-{os.getpid()}", memory_mib=256, disks=[
        model.DiskSpec(name="d0", size_bytes=32 << 20, domain_id=dom.id)]), "cl")
    image = g.store.get(model.Image, vm.spec.disks[0].image_id)
    # the volume was created through gfapi, and is visible on the brick
    brick = subprocess.run(["sh", "-c", f"ls /srv/vp-gluster/{VOLUME}/{dom.id}/images/{image.id}"],
                           capture_output=True, text=True).stdout
    assert image.volumes[0].id in brick
    g.vms.start(vm.name)
    c = libvirt.open(URI)
    live = c.lookupByName(vm.name).XMLDesc(0)
    assert "<disk type='network' device='disk'>" in live
    assert f"protocol='gluster' name='{VOLUME}/{dom.id}/images/{image.id}/" in live
    g.snapshots.take(vm.name, "live-snap")
    live = c.lookupByName(vm.name).XMLDesc(0)
    image = g.store.get(model.Image, image.id)
    assert len(image.volumes) == 2 and f"/{image.volumes[1].id}'" in live
    assert c.lookupByName(vm.name).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    c.close()
    g.vms.destroy(vm.name)
    assert g.storage.verify(name) == []
    # another engine, a fresh state store, attaches the same domain and finds the image
    other = manager_factory(state_path=tmp_path / "other.db")
    other.storage.attach(name, "glusterfs", _conn(create_via="gfapi"))
    found = [i.id for i in other.store.list(model.Image) if i.domain_id == dom.id]
    assert found == [image.id]
    other.storage.detach(name)


def test_fuse_fallback_also_boots(g):
    name = f"gf{os.getpid()}"
    dom = g.storage.add(name, "glusterfs", "dc", _conn(disk_access="fuse"))
    vm = g.vms.create(model.VmSpec(name=f"vp-glf-{os.getpid()}", memory_mib=256, disks=[
        model.DiskSpec(name="d0", size_bytes=16 << 20, domain_id=dom.id)]), "cl")
    g.vms.start(vm.name)
    live = g.vms.get(vm.name).started_xml
    assert "<disk type='file' device='disk'>" in live and "/virtplane/mnt/" in live
    assert g.vms.get(vm.name).status == model.VmStatus.UP


@pytest.mark.parametrize("conn, message", [
    ({"server": "nonexistent.invalid", "volume": VOLUME}, "cannot read Gluster volume"),
    ({"volume": "no-such-volume"}, "cannot read Gluster volume 'no-such-volume'"),
    ({"transport": "carrier-pigeon"}, "transport 'carrier-pigeon' is not allowed; allowed: tcp"),
])
def test_bad_gluster_connections_are_clear(g, conn, message):
    full = {**_conn(), **conn}
    with pytest.raises(VirtplaneError, match=message):
        g.storage.add("bad", "glusterfs", "dc", full)
    assert g.store.list(model.StorageDomain) == []


def test_wrong_volume_settings_name_the_commands(g):
    vol = f"vpbad{os.getpid()}"
    brick = f"/srv/vp-gluster/{vol}"
    subprocess.run(["mkdir", "-p", brick], check=True)
    subprocess.run(["gluster", "--mode=script", "volume", "create", vol,
                    f"{socket.gethostname()}:{brick}", "force"], check=True, capture_output=True)
    try:
        with pytest.raises(VirtplaneError) as info:
            g.storage.add("bad", "glusterfs", "dc", _conn(volume=vol))
        assert f"gluster volume start {vol}" in str(info.value)
        subprocess.run(["gluster", "--mode=script", "volume", "start", vol], check=True,
                       capture_output=True)
        with pytest.raises(VirtplaneError, match=f"gluster volume set {vol} "
                                                 "server.allow-insecure on"):
            g.storage.add("bad", "glusterfs", "dc", _conn(volume=vol))
    finally:
        subprocess.run(["gluster", "--mode=script", "volume", "stop", vol], capture_output=True)
        subprocess.run(["gluster", "--mode=script", "volume", "delete", vol], capture_output=True)
    assert g.store.list(model.StorageDomain) == []
