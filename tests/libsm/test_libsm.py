"""The libsm driver against the simulated array (tests/libsm/fakelsm.py): capability
discovery, LUN lifecycle, masking, offloaded and fallback snapshot/clone, job
handling and error mapping, through the Manager API and the CLI."""

from __future__ import annotations

import json

import pytest

from tests.libsm import fakelsm
from virtplane import model
from virtplane.errors import InvalidInput, NoSpace, StorageUnavailable

IQN = "iqn.1994-05.com.example:host1"


@pytest.fixture
def array(tmp_path, xdg):
    state = tmp_path / "array.json"
    fakelsm.edit(state, jobtime=0.05)
    folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "virtplane.toml").write_text(
        "[plugin.libsm]\nlsm_module = 'tests.libsm.fakelsm'\n"
        f"device_pattern = '{state}.luns/{{vpd83}}'\njob_poll_seconds = 0.02\n")
    return state


def _conn(state, **extra):
    return {"uri": f"sim://?statefile={state}", "pool": "Pool 1", "initiator": IQN, **extra}


@pytest.fixture
def m(manager_factory, array):
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.storage.add("arr", "libsm", "dc", _conn(array))
    return m


def _state(path):
    return json.loads(path.read_text())


def _by_name(path):
    s = _state(path)
    return {v["name"]: (vid, v) for vid, v in s["volumes"].items()}


def test_capabilities_and_domain_on_the_array(m, array):
    info = m.storage.info("arr")
    assert info["status"] == "Active"
    caps = info["driver"]["capabilities"]
    assert caps["VOLUME_REPLICATE_CLONE"] and caps["VOLUME_THIN"]
    assert info["driver"]["pool"]["name"] == "Pool 1" and info["driver"]["offload"] is True
    dom = m.store.find(model.StorageDomain, "arr")
    names = _by_name(array)
    assert f"vp-md-{dom.id}" in names
    # the host's access group holds the metadata LUN
    s = _state(array)
    (gid, group), = s["groups"].items()
    assert group["inits"] == [IQN]
    assert [gid, names[f"vp-md-{dom.id}"][0]] in s["masks"]


def test_lun_lifecycle_thin_full_resize_delete(m, array):
    thin = m.disks.create("thin", "arr", 64 << 20, "raw", "thin")
    full = m.disks.create("full", "arr", 32 << 20, "raw", "preallocated")
    names = _by_name(array)
    for image in (thin, full):
        assert f"vp-{image.volumes[0].id}" in names
        assert image.volumes[0].created_by == "array LUN"
    free = _state(array)["pools"]["POOL_ID_00001"]["free"]
    m.disks.extend("thin", 128 << 20)
    assert _by_name(array)[f"vp-{thin.volumes[0].id}"][1]["size"] == 128 << 20
    assert _state(array)["pools"]["POOL_ID_00001"]["free"] == free - (64 << 20)
    with pytest.raises(InvalidInput, match="must be larger"):
        m.disks.extend("thin", 1 << 20)
    src = m.store.find(model.Image, "thin")
    dom = m.store.find(model.StorageDomain, "arr")
    block = m.context.drivers.storage("libsm").volume_source(dom, src, src.volumes[-1])
    assert block["type"] == "block" and block["source"]["@dev"].endswith(
        _by_name(array)[f"vp-{thin.volumes[0].id}"][1]["vpd83"])
    m.disks.remove("thin")
    m.disks.remove("full")
    assert [n for n in _by_name(array) if not n.startswith("vp-md-")] == []
    assert m.storage.verify("arr") == []


def test_offloaded_snapshot_and_clone(m, array):
    m.disks.create("d", "arr", 16 << 20, "raw")
    m.disks.snapshot("d")
    image = m.store.find(model.Image, "d")
    assert image.volumes[1].created_by == "array clone (offloaded)"
    assert image.volumes[1].format == model.VolumeFormat.RAW
    clone = m.disks.clone("d", "c")
    assert clone.volumes[0].created_by == "array copy (offloaded)"
    listed = {d["name"]: d for d in m.disks.list()}
    assert listed["c"]["volumes"] == 1
    assert m.storage.verify("arr") == []


def test_fallback_when_offload_is_off_or_missing(m, array, manager_factory):
    fakelsm.edit(array, caps=[c for c in fakelsm.ALL_CAPS if c not in (24, 25)])
    m.disks.create("d", "arr", 16 << 20, "raw")
    m.disks.snapshot("d")
    image = m.store.find(model.Image, "d")
    assert image.volumes[1].created_by == \
        "qcow2 layer (the array lacks VOLUME_REPLICATE_CLONE)"
    assert image.volumes[1].format == model.VolumeFormat.QCOW2
    clone = m.disks.clone("d", "c")
    assert clone.volumes[0].created_by.startswith("qemu-img convert (")
    # and turned off by the administrator, per domain
    fakelsm.edit(array, caps=fakelsm.ALL_CAPS)
    m.storage.add("arr2", "libsm", "dc", _conn(array, offload="false"))
    m.disks.create("e", "arr2", 8 << 20, "raw")
    m.disks.snapshot("e")
    e = m.store.find(model.Image, "e")
    assert e.volumes[1].created_by == "qcow2 layer (offload is turned off in config)"
    assert m.storage.verify("arr") == [] and m.storage.verify("arr2") == []


def test_vm_snapshot_chain_merge_on_the_array(m, array):
    dom = m.store.find(model.StorageDomain, "arr")
    m.vms.create(model.VmSpec(name="v", memory_mib=256, disks=[model.DiskSpec(
        name="d0", size_bytes=8 << 20, domain_id=dom.id,
        format=model.VolumeFormat.RAW)]), "cl")
    for i in range(3):
        m.snapshots.take("v", f"s{i}")
    m.snapshots.delete("v", "s1")
    image = m.store.get(model.Image, m.vms.get("v").spec.disks[0].image_id)
    assert len(image.volumes) == 3
    assert m.storage.verify("arr") == []
    m.vms.remove("v")
    assert [n for n in _by_name(array) if not n.startswith("vp-md-")] == []


def test_another_engine_attaches_the_array_domain(m, array, manager_factory, tmp_path):
    m.disks.create("d", "arr", 8 << 20, "raw")
    m.disks.snapshot("d")
    other = manager_factory(state_path=tmp_path / "other.db")
    other.datacenters.add("dc")
    other.storage.attach("arr", "libsm", _conn(array), "dc")
    assert [d["name"] for d in other.disks.list()] == ["d"]
    assert other.storage.verify("arr") == []


def test_no_space_bad_iqn_auth_and_unsupported(m, array, manager_factory):
    fakelsm.edit(array, pool_bytes=40 << 20)
    with pytest.raises(NoSpace, match="insufficient space in pool .lsm error 350"):
        m.disks.create("big", "arr", 1 << 30, "raw")
    assert m.disks.list() == [] and m.storage.verify("arr") == []
    with pytest.raises(InvalidInput, match="initiator 'host1' is not an iSCSI IQN"):
        m.storage.add("x", "libsm", "dc", _conn(array, initiator="host1"))
    fakelsm.edit(array, password="s3cret")
    m2 = manager_factory()
    with pytest.raises(StorageUnavailable, match="authentication refused") as exc:
        m2.disks.create("d", "arr", 1 << 20)
    assert "s3cret" not in str(exc.value)
    fakelsm.edit(array, password=None, caps=[c for c in fakelsm.ALL_CAPS if c != 55])
    m3 = manager_factory()
    with pytest.raises(Exception, match="thin provisioning is not supported .lsm error 153"):
        m3.disks.create("d", "arr", 1 << 20, "raw", "thin")
    assert m3.disks.list() == []


def test_failed_and_slow_jobs_leave_nothing_unrecorded(m, array):
    # the create job fails, and so does the cleanup's delete job: the volume stays
    # recorded as illegal (never unrecorded) until `storage repair`
    fakelsm.edit(array, fail_jobs=True)
    with pytest.raises(Exception, match="ended in error"):
        m.disks.create("d", "arr", 1 << 20, "raw")
    fakelsm.edit(array, fail_jobs=False)
    assert [d["legal"] for d in m.disks.list()] == [False]
    assert _state(array)["jobs"] == {}  # every job freed
    assert any("is illegal" in p for p in m.storage.verify("arr"))
    assert "removed illegal volume" in m.storage.repair("arr")[0]
    assert m.disks.list() == []
    assert [n for n in _by_name(array) if not n.startswith("vp-md-")] == []
    # a job that outlives job_timeout_seconds is abandoned (freed: lsm has no cancel)
    dom = m.store.find(model.StorageDomain, "arr")
    dom.connection = dict(dom.connection, job_timeout_seconds="0.3")
    m.store.update(dom)
    m.context.drivers.storage("libsm")._arrays.clear()
    fakelsm.edit(array, jobtime=1.0)
    with pytest.raises(StorageUnavailable, match=r"did not finish within 0.3 s \(job JOB_ID"):
        m.disks.create("d", "arr", 1 << 20, "raw")
    # the cleanup's delete job is as slow: the LUN stays recorded (illegal) for repair
    assert [d["legal"] for d in m.disks.list()] == [False]
    assert _state(array)["jobs"] == {}
    fakelsm.edit(array, jobtime=0.05)
    m.storage.repair("arr")
    assert m.disks.list() == []
    assert [n for n in _by_name(array) if not n.startswith("vp-md-")] == []


def test_cli_storage_show_and_disks(cli, array):
    cli("dc", "add", "dc")
    rc, out, err = cli("storage", "add", "arr", "--type", "libsm", "--dc", "dc",
                       "-o", f"uri=sim://?statefile={array}", "-o", "pool=Pool 1",
                       "-o", f"initiator={IQN}")
    assert rc == 0, err
    rc, out, err = cli("storage", "show", "arr")
    assert rc == 0 and json.loads(out)["driver"]["capabilities"]["VOLUME_MASK"] is True, err
    assert cli("disk", "create", "d", "--domain", "arr", "--size", "8M", "--format", "raw")[0] == 0
    assert cli("disk", "snapshot", "d")[0] == 0
    rc, out, _ = cli("storage", "show", "arr")
    vols = json.loads(out)["images"][0]["volumes"]
    assert [v["created_by"] for v in vols] == ["array LUN", "array clone (offloaded)"]


def test_failed_masking_deletes_the_new_lun(m, array):
    before = set(_by_name(array))
    fakelsm.edit(array, fail_mask=True)
    with pytest.raises(StorageUnavailable, match="masking"):
        m.disks.create("d1", "arr", 16 << 20, "raw", "thin")
    assert set(_by_name(array)) == before
    assert not any(n.startswith("vp-") and not n.startswith("vp-md-")
                   for n in _by_name(array))


def test_failed_masking_and_delete_names_the_orphan_lun(m, array, caplog):
    # the driver's error names the orphan; the core's rollback then retries the delete
    # (the image keeps its intent) and reports that failure, so the log is checked too
    fakelsm.edit(array, fail_mask=True, fail_delete=True)
    with pytest.raises(StorageUnavailable, match="deleting"):
        m.disks.create("d1", "arr", 16 << 20, "raw", "thin")
    orphans = [vid for n, (vid, _) in _by_name(array).items()
               if n.startswith("vp-") and not n.startswith("vp-md-")]
    assert len(orphans) == 1
    assert any(orphans[0] in r.getMessage() and "orphan LUN" in r.getMessage()
               and r.levelname == "ERROR" for r in caplog.records)
