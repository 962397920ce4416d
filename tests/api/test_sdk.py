"""The real oVirt SDK (ovirtsdk4) against virtplane's API, unchanged but for the URL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_for(get: Callable[[], Any], want: Any, timeout: float = 20.0) -> Any:
    """The SDK examples' polling loop, bounded: fails instead of hanging."""
    deadline = time.monotonic() + timeout
    while True:
        obj = get()
        if obj.status == want:
            return obj
        assert time.monotonic() < deadline, f"status stayed {obj.status}, wanted {want}"
        time.sleep(0.05)


def test_connection_test_summary_and_logout(sdk: Any, conn: Any, server: Any) -> None:
    assert conn.test(raise_exception=True) is True
    api = conn.system_service().get()
    assert api.product_info.version.major == 4
    assert api.product_info.version.full_version.startswith("4.5.0-virtplane")
    assert api.summary.hosts.total == 1 and api.summary.vms.total == 0
    assert api.special_objects.blank_template.id == "00000000-0000-0000-0000-000000000000"
    token = conn.authenticate()
    sessions = server._server.config.app.state.api.sessions
    assert sessions.check(token) is not None
    closer = threading.Thread(target=conn.close)
    closer.start()
    closer.join(10)
    assert not closer.is_alive(), "logout hung (is the server serving concurrently?)"
    assert sessions.check(token) is None, "logout did not revoke the token"


def test_wrong_password_is_an_auth_error(sdk: Any, connect: Callable[..., Any]) -> None:
    conn = connect(password="wrong-password")
    with pytest.raises(sdk.AuthError, match="Cannot authenticate"):
        conn.system_service().get()


def test_expired_token_makes_the_sdk_log_in_again(sdk: Any, conn: Any, server: Any) -> None:
    conn.system_service().get()
    sessions = server._server.config.app.state.api.sessions
    first = conn.authenticate()
    assert sessions.revoke(first)
    assert conn.system_service().vms_service().list() == []  # 401 -> new token -> retried
    assert conn.authenticate() != first


def test_vm_lifecycle_through_vms_service(sdk: Any, conn: Any) -> None:
    types = sdk.types
    vms = conn.system_service().vms_service()
    vm = vms.add(types.Vm(name="vm1", cluster=types.Cluster(name="c1"),
                          template=types.Template(name="Blank"), memory=512 << 20,
                          cpu=types.Cpu(topology=types.CpuTopology(sockets=2, cores=1,
                                                                   threads=1))))
    assert vm.status == types.VmStatus.DOWN
    assert vm.memory == 512 << 20 and vm.cpu.topology.sockets == 2
    assert vm.cpu.architecture == types.Architecture.X86_64
    svc = vms.vm_service(vm.id)
    assert [v.name for v in vms.list(search="name=vm1")] == ["vm1"]
    assert [v.name for v in vms.list(search='name="VM1"', case_sensitive=False)] == ["vm1"]
    assert vms.list(search="name=VM1") == []
    svc.start()
    up = wait_for(svc.get, types.VmStatus.UP)
    assert conn.follow_link(up.host).name == "h1"
    assert conn.follow_link(up.cluster).name == "c1"
    svc.stop()
    wait_for(svc.get, types.VmStatus.DOWN)
    svc.start()
    wait_for(svc.get, types.VmStatus.UP)
    svc.shutdown()
    wait_for(svc.get, types.VmStatus.DOWN)
    svc.remove()
    with pytest.raises(sdk.NotFoundError):
        svc.get()
    assert vms.list() == []


def test_vm_from_a_template_and_template_versions(sdk: Any, conn: Any) -> None:
    types = sdk.types
    system = conn.system_service()
    vms = system.vms_service()
    vm = vms.add(types.Vm(name="base", cluster=types.Cluster(name="c1"),
                          template=types.Template(name="Blank")))
    vms.vm_service(vm.id).disk_attachments_service().add(types.DiskAttachment(
        disk=types.Disk(name="root", format=types.DiskFormat.COW, provisioned_size=1 << 30,
                        storage_domains=[types.StorageDomain(name="data1")]),
        interface=types.DiskInterface.VIRTIO, bootable=True, active=True))
    tpl = system.templates_service().add(types.Template(name="t1", vm=types.Vm(name="base")))
    assert wait_for(system.templates_service().template_service(tpl.id).get,
                    types.TemplateStatus.OK).version.version_number == 1
    found = system.templates_service().list(search="name=t1 and cluster=c1")
    assert [t.name for t in found] == ["t1"]
    clone = vms.add(types.Vm(name="fromt1", cluster=types.Cluster(name="c1"),
                             template=types.Template(name="t1")))
    atts = vms.vm_service(clone.id).disk_attachments_service().list()
    assert len(atts) == 1 and conn.follow_link(atts[0].disk).status == types.DiskStatus.OK


def test_disks_nics_and_snapshots(sdk: Any, conn: Any) -> None:
    types = sdk.types
    system = conn.system_service()
    vms = system.vms_service()
    vm = vms.add(types.Vm(name="vm2", cluster=types.Cluster(name="c1"),
                          template=types.Template(name="Blank")))
    svc = vms.vm_service(vm.id)
    att = svc.disk_attachments_service().add(types.DiskAttachment(
        disk=types.Disk(name="d1", format=types.DiskFormat.COW, provisioned_size=1 << 30,
                        storage_domains=[types.StorageDomain(name="data1")]),
        interface=types.DiskInterface.VIRTIO, bootable=True, active=True))
    assert att.id == att.disk.id  # Ansible looks attachments up by disk id
    disk = wait_for(system.disks_service().disk_service(att.disk.id).get, types.DiskStatus.OK)
    assert disk.provisioned_size == 1 << 30
    assert [d.name for d in system.disks_service().list(
        search='name="d1" and Storage.name="data1" and vm_names="vm2"')] == ["d1"]
    dcs = system.data_centers_service().list(search="Clusters.name=c1")
    nets = system.data_centers_service().data_center_service(dcs[0].id) \
        .networks_service().list()
    assert [n.name for n in nets] == ["ovirtmgmt"]
    profile = next(p for p in system.vnic_profiles_service().list()
                   if p.network.id == nets[0].id)
    nic = svc.nics_service().add(types.Nic(name="nic1",
                                           vnic_profile=types.VnicProfile(id=profile.id)))
    assert nic.vnic_profile.id == profile.id
    assert [n.name for n in svc.nics_service().list()] == ["nic1"]
    assert conn.follow_link(nic.vnic_profile).name == "ovirtmgmt"
    snaps = svc.snapshots_service()
    snap = snaps.add(types.Snapshot(description="before", persist_memorystate=False))
    assert snaps.snapshot_service(snap.id).get().snapshot_status == types.SnapshotStatus.OK
    kinds = {s.description: s.snapshot_type for s in snaps.list()}
    assert kinds == {"Active VM": types.SnapshotType.ACTIVE,
                     "before": types.SnapshotType.REGULAR}
    snaps.snapshot_service(snap.id).restore()
    snaps.snapshot_service(snap.id).remove()
    svc.nics_service().nic_service(nic.id).remove()
    assert svc.nics_service().list() == []


def test_faults_raise_the_sdk_errors_with_codes(sdk: Any, conn: Any) -> None:
    types = sdk.types
    vms = conn.system_service().vms_service()
    with pytest.raises(sdk.NotFoundError) as nf:
        vms.vm_service("no-such-vm").get()
    assert nf.value.code == 404
    with pytest.raises(sdk.Error) as bad:
        vms.add(types.Vm(name="x", template=types.Template(name="Blank")))
    assert bad.value.code == 400 and "cluster" in str(bad.value)
    vm = vms.add(types.Vm(name="vm3", cluster=types.Cluster(name="c1"),
                          template=types.Template(name="Blank")))
    with pytest.raises(sdk.Error) as conflict:
        vms.vm_service(vm.id).stop()
    assert conflict.value.code == 409 and conflict.value.fault.reason == "Operation Failed"
    with pytest.raises(sdk.Error) as dup:
        vms.add(types.Vm(name="vm3", cluster=types.Cluster(name="c1"),
                         template=types.Template(name="Blank")))
    assert dup.value.code == 409


def test_infrastructure_as_the_examples_add_it(sdk: Any, conn: Any, tmp_path: Any) -> None:
    types = sdk.types
    system = conn.system_service()
    dc = system.data_centers_service().add(types.DataCenter(name="dc2", description="x",
                                                            local=False))
    cl = system.clusters_service().add(types.Cluster(
        name="c2", data_center=types.DataCenter(name="dc2"),
        cpu=types.Cpu(architecture=types.Architecture.X86_64)))
    assert cl.data_center.id == dc.id
    assert cl.ksm.merge_across_nodes is True and cl.fencing_policy.skip_if_sd_active.enabled \
        is False
    assert conn.follow_link(cl.scheduling_policy).name == "none"
    host = system.hosts_service().add(types.Host(name="h2", address="test:///default",
                                                 root_password="unused",
                                                 cluster=types.Cluster(name="c2")))
    hsvc = system.hosts_service().host_service(host.id)
    wait_for(hsvc.get, types.HostStatus.UP)
    hsvc.deactivate()
    wait_for(hsvc.get, types.HostStatus.MAINTENANCE)
    hsvc.activate()
    wait_for(hsvc.get, types.HostStatus.UP)
    (tmp_path / "sd2").mkdir()
    sd = system.storage_domains_service().add(types.StorageDomain(
        name="data2", type=types.StorageDomainType.DATA, host=types.Host(name="h2"),
        storage=types.HostStorage(type=types.StorageType.LOCALFS, path=str(tmp_path / "sd2"))))
    sds = system.storage_domains_service()
    wait_for(sds.storage_domain_service(sd.id).get, types.StorageDomainStatus.UNATTACHED)
    attached = system.data_centers_service().data_center_service(dc.id) \
        .storage_domains_service()
    attached.add(types.StorageDomain(id=sd.id))
    wait_for(attached.storage_domain_service(sd.id).get, types.StorageDomainStatus.ACTIVE)
    assert sds.storage_domain_service(sd.id).get().status is None  # as the engine shows it


def test_events_and_jobs_by_correlation_id(sdk: Any, conn: Any) -> None:
    types = sdk.types
    system = conn.system_service()
    vms = system.vms_service()
    vm = vms.add(types.Vm(name="vm4", cluster=types.Cluster(name="c1"),
                          template=types.Template(name="Blank")))
    vms.vm_service(vm.id).start(query={"correlation_id": "corr-1"})
    jobs = system.jobs_service().list(search="correlation_id=corr-1")
    assert [j.status for j in jobs] == [types.JobStatus.FINISHED]
    # the events the action wrote carry the request's correlation id
    of_request = system.events_service().list(search="correlation_id=corr-1")
    assert any("started on h1" in e.description for e in of_request), \
        [e.description for e in of_request]
    assert all(e.correlation_id == "corr-1" for e in of_request)
    newest = system.events_service().list(max=1)
    assert len(newest) == 1 and newest[0].index > 0
    assert "started on h1" in newest[0].description
    assert newest[0].vm.id == vm.id
    assert system.events_service().list(from_=newest[0].index) == []
