"""The attrs model round-trips through cattrs/JSON losslessly."""

from __future__ import annotations

import pytest

from virtplane import model
from virtplane.errors import InvalidInput


def _objects():
    spec = model.VmSpec(
        name="vm1", memory_mib=2048, vcpus=2, os="rhel_9x64", arch="x86_64",
        cpu_model="Skylake-Server", machine="q35",
        disks=[model.DiskSpec(name="d0", size_bytes=5 << 30, interface="virtio-scsi",
                              format=model.VolumeFormat.RAW,
                              allocation=model.Allocation.PREALLOCATED, domain_id="x",
                              image_id="y", bootable=True, custom_properties={"a": "b"})],
        nics=[model.NicSpec(name="n0", model="e1000e", network="ovirtmgmt",
                            mac="52:54:00:00:00:01")],
        display=model.DisplaySpec(type="spice", video="qxl"),
        cd=model.CdSpec(path="/iso/x.iso", interface="sata"),
        watchdog=model.WatchdogSpec(model="i6300esb", action="pause"),
        custom_properties={"hugepages": "1048576"},
    )
    image = model.Image(domain_id="d", description="disk",
                        volumes=[model.Volume(image_id="i", size_bytes=1 << 30),
                                 model.Volume(image_id="i", parent_id="p")])
    return [
        model.DataCenter(name="dc", description="main"),
        model.Cluster(name="c", datacenter_id="dc", architecture="ppc64", cpu_model="POWER9"),
        model.Host(name="h", cluster_id="c", driver="kvm", uri="qemu:///system",
                   status=model.HostStatus.NON_OPERATIONAL, status_reason="why",
                   capabilities={"arch": "x86_64", "numa_cells": [{"id": 0}]}),
        model.StorageDomain(name="s", type="glusterfs", domain_class=model.DomainClass.ISO,
                            connection={"volume": "gv0", "hosts": ["a", "b"]}),
        image,
        spec,
        model.Template(name="t", spec=spec, image_ids=["i1"]),
        model.Vm(spec=spec, cluster_id="c", host_id="h", status=model.VmStatus.MIGRATION_SOURCE,
                 started_xml="<domain/>"),
        model.Snapshot(name="s1", vm_id="v", created=1.5, with_memory=True),
    ]


@pytest.mark.parametrize("obj", _objects(), ids=lambda o: type(o).__name__)
def test_round_trip_is_lossless(obj):
    text = model.to_json(obj)
    back = model.from_json(text, type(obj))
    assert back == obj
    assert model.to_json(back) == text


def test_every_object_has_a_distinct_uuid():
    a, b = model.DataCenter(name="a"), model.DataCenter(name="a")
    assert a.id != b.id and len(a.id) == 36


def test_unknown_keys_and_bad_enums_are_refused():
    data = model.unstructure(model.DataCenter(name="a"))
    data["colour"] = "red"
    with pytest.raises(InvalidInput, match="colour"):
        model.structure(data, model.DataCenter)
    vm = model.unstructure(model.Vm(spec=model.VmSpec(name="v"), cluster_id="c"))
    vm["status"] = "Sleeping"
    with pytest.raises(InvalidInput, match="Sleeping"):
        model.structure(vm, model.Vm)


def test_vm_status_names_are_vdsms():
    """VDSM's names, plus oVirt engine's Unknown (a VM on a host that stopped answering)."""
    assert {s.value for s in model.VmStatus} == {
        "Down", "Up", "Paused", "Powering up", "Powering down", "Migration Source",
        "Migration Destination", "RebootInProgress", "Restoring state", "Saving State",
        "WaitForLaunch", "Unknown"}
