"""Metadata on shared storage is untrusted: tampered ids, links and concurrent writers.

Anyone who can write an export can rewrite ``dom_md/metadata.json`` and
``image.json`` and recompute their checksum (``write_json`` below is exactly
what such a writer would do). Each test checks that nothing outside the domain's
folder is touched.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path

import pytest

from virtplane import model
from virtplane.errors import VirtplaneError
from virtplane_storage_file.filedomain import (
    StorageError,
    confined,
    read_json,
    write_json,
)
from virtplane_storage_file.localfs import LocalFs


def _tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` with a digest of its content (what "untouched" means)."""
    out = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


@pytest.fixture
def victim(tmp_path) -> Path:
    """A folder outside every domain, with a file in it, that must survive."""
    v = tmp_path / "victim"
    v.mkdir()
    (v / "precious").write_text("do not touch\n")
    return v


@pytest.fixture
def base(tmp_path) -> Path:
    return tmp_path / "export"


@pytest.fixture
def m(manager_factory, base):
    m = manager_factory()
    m.add_datacenter("dc")
    m.add_storage_domain("sd", "localfs", "dc", {"path": str(base)})
    return m


def _image(m, name: str) -> model.Image:
    return m.store.find(model.Image, name)


def _dom(m) -> model.StorageDomain:
    return m.store.find(model.StorageDomain, "sd")


def _tamper(path: Path, change) -> None:
    data = read_json(path)
    change(data)
    write_json(path, data)  # checksum recomputed, as any writer of the export can


def _other(manager_factory, tmp_path):
    other = manager_factory(state_path=tmp_path / "other.db")
    other.add_datacenter("dc2")
    return other


# -------------------------------------------------------------- ids in metadata


def test_an_image_id_that_climbs_out_is_refused_on_attach(m, manager_factory, tmp_path,
                                                          base, victim):
    m.create_disk("d", "sd", 1 << 20)
    image, dom = _image(m, "d"), _dom(m)
    meta = base / dom.id / "images" / image.id / "image.json"
    rel = os.path.relpath(victim, meta.parent)
    _tamper(meta, lambda d: d.update(id=rel))
    before = _tree(victim)
    other = _other(manager_factory, tmp_path)
    with pytest.raises(StorageError, match=rf"{meta}: id '{rel}' is not a canonical UUID"):
        other.attach_storage_domain("sd", "localfs", {"path": str(base)}, "dc2")
    assert not other.store.list(model.Image)
    # verify on the first engine reports the same instead of trusting it
    assert any("is not a canonical UUID" in p for p in m.verify_storage_domain("sd"))
    assert _tree(victim) == before


def test_the_driver_refuses_to_delete_an_image_named_by_a_path(m, base, victim):
    dom = _dom(m)
    drv = LocalFs()
    before = _tree(victim)
    for bad in [os.path.relpath(victim, base / dom.id / "images"), str(victim), "..", "."]:
        with pytest.raises(StorageError, match="not a canonical UUID"):
            drv.delete_image(dom, model.Image(domain_id=dom.id, id=bad))
    assert _tree(victim) == before


def test_a_volume_id_that_is_an_absolute_path_is_refused(m, manager_factory, tmp_path, base,
                                                         victim):
    m.create_disk("d", "sd", 1 << 20)
    image, dom = _image(m, "d"), _dom(m)
    meta = base / dom.id / "images" / image.id / "image.json"
    target = str(victim / "precious")

    def change(d):
        d["volumes"][0]["id"] = target
        d["volumes"][0]["legal"] = False  # what `storage repair` would delete

    _tamper(meta, change)
    before = _tree(victim)
    other = _other(manager_factory, tmp_path)
    # the id is shown whole, or cut to 80 characters with "..." (a long temp folder)
    with pytest.raises(StorageError,
                       match=r"volumes\[0\]\.id '/\S*(precious'|\.\.\.) is not a canonical"):
        other.attach_storage_domain("sd", "localfs", {"path": str(base)}, "dc2")
    # the driver refuses such an id too, whoever asks
    bad = model.Image(domain_id=dom.id, id=image.id,
                      volumes=[model.Volume(image_id=image.id, id=target, legal=False)])
    with pytest.raises(StorageError, match="not a canonical UUID"):
        LocalFs().delete_volume(dom, bad, bad.volumes[0])
    assert _tree(victim) == before


@pytest.mark.parametrize("field, value", [
    ("parent_id", "../../../victim/precious"),
    ("base_image_id", "/etc"),
    ("image_id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
])
def test_every_id_of_a_volume_is_checked(m, manager_factory, tmp_path, base, field, value):
    m.create_disk("d", "sd", 1 << 20)
    image, dom = _image(m, "d"), _dom(m)
    meta = base / dom.id / "images" / image.id / "image.json"
    _tamper(meta, lambda d: d["volumes"][0].update({field: value}))
    other = _other(manager_factory, tmp_path)
    with pytest.raises(StorageError, match=rf"{meta}: volumes\[0\]\.{field}"):
        other.attach_storage_domain("sd", "localfs", {"path": str(base)}, "dc2")


def test_an_image_claiming_another_domain_is_refused(m, manager_factory, tmp_path, base):
    m.create_disk("d", "sd", 1 << 20)
    image, dom = _image(m, "d"), _dom(m)
    meta = base / dom.id / "images" / image.id / "image.json"
    _tamper(meta, lambda d: d.update(domain_id="0f8fad5b-d9cb-469f-a165-70867728950e"))
    other = _other(manager_factory, tmp_path)
    with pytest.raises(StorageError, match="domain_id .* is not this domain"):
        other.attach_storage_domain("sd", "localfs", {"path": str(base)}, "dc2")


def test_a_domain_uuid_that_is_a_path_is_refused(m, manager_factory, tmp_path, base, victim):
    dom = _dom(m)
    md = base / dom.id / "dom_md" / "metadata.json"
    _tamper(md, lambda d: d.update(uuid=str(victim)))
    before = _tree(victim)
    other = _other(manager_factory, tmp_path)
    with pytest.raises(StorageError) as caught:
        other.attach_storage_domain("sd", "localfs", {"path": str(base)}, "dc2")
    # the value is shown whole, or cut to 80 characters with "..." (a long temp folder)
    shown = repr(str(victim))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    assert f"{md}: uuid {shown} is not a canonical UUID" in str(caught.value)
    # a domain whose id is a path cannot be removed through the driver either
    forged = model.StorageDomain(name="sd", type="localfs", connection={"path": str(base)},
                                 id=str(victim))
    with pytest.raises(StorageError, match="not a canonical UUID"):
        LocalFs().remove_domain(forged)
    assert _tree(victim) == before


def test_a_domain_folder_that_is_a_link_is_refused(m, base, victim, tmp_path):
    """The domain's own folder replaced by a link to somewhere else: removing the
    (empty) domain must not empty that place."""
    dom = _dom(m)
    moved = tmp_path / "moved"
    os.rename(base / dom.id, moved)
    (victim / "images").mkdir()
    (base / dom.id).symlink_to(victim)
    before = _tree(victim)
    with pytest.raises(VirtplaneError, match="is a symbolic link"):
        m.remove_storage_domain("sd")
    assert _tree(victim) == before


# ---------------------------------------------------------------------- links


def test_a_volume_replaced_by_a_link_fails_verify_and_is_never_extended(m, base, victim):
    m.create_disk("d", "sd", 1 << 20, format="raw")
    image, dom = _image(m, "d"), _dom(m)
    vol = base / dom.id / "images" / image.id / image.volumes[0].id
    target = victim / "disk.raw"
    target.write_bytes(b"\0" * (1 << 20))
    vol.unlink()
    vol.symlink_to(target)
    before = _tree(victim)
    problems = m.verify_storage_domain("sd")
    assert any(str(vol) in p and "symbolic link" in p for p in problems), problems
    with pytest.raises(VirtplaneError, match="is a symbolic link"):
        m.extend_disk("d", 4 << 20)
    assert _tree(victim) == before and target.stat().st_size == 1 << 20


def test_an_image_folder_replaced_by_a_link_is_not_emptied(m, base, victim):
    m.create_disk("d", "sd", 1 << 20)
    image, dom = _image(m, "d"), _dom(m)
    folder = base / dom.id / "images" / image.id
    for p in folder.iterdir():
        os.replace(p, victim / p.name)
    folder.rmdir()
    folder.symlink_to(victim)
    before = _tree(victim)
    with pytest.raises(VirtplaneError, match="is a symbolic link"):
        m.remove_disk("d")
    assert _tree(victim) == before


def test_a_link_planted_as_the_temporary_metadata_file_is_not_written_through(m, base,
                                                                             victim):
    m.create_disk("d", "sd", 1 << 20)
    image, dom = _image(m, "d"), _dom(m)
    tmp = base / dom.id / "images" / image.id / "image.json.tmp"
    tmp.symlink_to(victim / "precious")
    before = _tree(victim)
    m.snapshot_disk("d")  # rewrites image.json through image.json.tmp
    assert _tree(victim) == before
    assert read_json(tmp.with_name("image.json"))["volumes"][-1]["id"] == \
        _image(m, "d").volumes[-1].id


def test_metadata_that_is_a_link_is_not_read(m, manager_factory, tmp_path, base, victim):
    m.create_disk("d", "sd", 1 << 20)
    image, dom = _image(m, "d"), _dom(m)
    meta = base / dom.id / "images" / image.id / "image.json"
    secret = victim / "image.json"
    os.replace(meta, secret)
    meta.symlink_to(secret)
    other = _other(manager_factory, tmp_path)
    with pytest.raises(StorageError, match="image.json is a symbolic link"):
        other.attach_storage_domain("sd", "localfs", {"path": str(base)}, "dc2")


def test_iso_names_stay_in_the_iso_folder(base, victim, tmp_path):
    drv = LocalFs()
    dom = model.StorageDomain(name="isos", type="localfs", connection={"path": str(base)},
                              domain_class=model.DomainClass.ISO)
    drv.connect(dom)
    drv.create_domain(dom)
    src = tmp_path / "x.iso"
    src.write_bytes(b"iso")
    before = _tree(victim)
    for bad in ["../../../victim/evil.iso", "..", "a/b"]:
        with pytest.raises(StorageError, match="not a plain file name"):
            drv.import_iso(dom, src, bad)
    # a link planted where the temporary copy goes is removed, not written through
    folder = drv.iso_dir(dom)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".ok.iso.tmp").symlink_to(victim / "precious")
    drv.import_iso(dom, src, "ok.iso")
    assert (folder / "ok.iso").read_bytes() == b"iso"
    assert _tree(victim) == before


def test_confined_refuses_every_way_out(tmp_path, victim):
    base = tmp_path / "dom"
    (base / "images").mkdir(parents=True)
    (base / "images" / "out").symlink_to(victim)
    for parts in [("..",), ("images", ".."), ("/etc",), ("images", "a/../../x"), ("",)]:
        with pytest.raises(StorageError, match="not a plain file name"):
            confined(base, *parts)
    with pytest.raises(StorageError, match="is a symbolic link"):
        confined(base, "images", "out", "precious")
    assert confined(base, "images", "new", "file") == base / "images" / "new" / "file"


# ---------------------------------------------------------------------- lock


def test_a_second_metadata_writer_waits_a_bounded_time_then_fails(base):
    drv = LocalFs()
    dom = model.StorageDomain(name="sd", type="localfs",
                              connection={"path": str(base), "lock_timeout_seconds": 0.5})
    drv.connect(dom)
    drv.create_domain(dom)
    image = model.Image(domain_id=dom.id)
    lock = base / dom.id / "dom_md" / "metadata.lock"
    # another engine (another open file description: flock conflicts as across processes)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        t0 = time.monotonic()
        with pytest.raises(StorageError, match=r"another engine or process held .*metadata"
                                               r"\.lock for 0\.5 s"):
            drv.write_image_metadata(dom, image)
        assert 0.4 < time.monotonic() - t0 < 5
        assert not (base / dom.id / "images" / image.id / "image.json").exists()
    finally:
        os.close(fd)  # releases the lock
    drv.write_image_metadata(dom, image)
    assert read_json(base / dom.id / "images" / image.id / "image.json")["id"] == image.id


def test_the_lock_is_held_around_the_write_and_reentrant(base):
    drv = LocalFs()
    dom = model.StorageDomain(name="sd", type="localfs",
                              connection={"path": str(base), "lock_timeout_seconds": 0.2})
    drv.connect(dom)
    drv.create_domain(dom)
    lock = base / dom.id / "dom_md" / "metadata.lock"
    image = model.Image(domain_id=dom.id)
    assert drv.read_image(dom, image.id) is None
    with drv.metadata_lock(dom):
        drv.write_image_metadata(dom, image)  # re-enters
        assert drv.read_image(dom, image.id)["id"] == image.id
        fd = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


# -------------------------------------------------------------------- libsm


def test_libsm_metadata_ids_are_checked():
    from virtplane_storage_libsm.driver import _checked_md, _vol_name

    dom_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    img = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    good = {"domain": {"uuid": dom_id}, "images": {img: {
        "id": img, "domain_id": dom_id, "volumes": [
            {"id": "6fa459ea-ee8a-3ca4-894e-db77e160355e", "image_id": img}]}}}
    assert _checked_md(good, "LUN", dom_id) == good
    # a volume id of md-<uuid> would name another domain's metadata LUN
    bad = {**good, "images": {img: {**good["images"][img], "volumes": [
        {"id": f"md-{dom_id}", "image_id": img}]}}}
    with pytest.raises(StorageError, match=r"volumes\[0\]\.id 'md-.*' is not a canonical"):
        _checked_md(bad, "LUN", dom_id)
    with pytest.raises(StorageError, match="not a canonical UUID"):
        _vol_name(f"md-{dom_id}")
    with pytest.raises(StorageError, match="domain.uuid"):
        _checked_md({**good, "domain": {"uuid": "x"}}, "LUN", dom_id)


# ------------------------------------------------- two engines on one domain


def _two_engines(m, manager_factory, tmp_path, base):
    """Engine A (``m``) with disk ``d`` on ``sd``, and engine B (its own state file) that
    attached the same domain."""
    m.disks.create("d", "sd", 1 << 20)
    b = _other(manager_factory, tmp_path)
    b.storage.attach("sd", "localfs", {"path": str(base)}, "dc2")
    return b


def test_two_engines_snapshotting_one_disk_do_not_fork_its_chain(m, manager_factory,
                                                                 tmp_path, base):
    from virtplane.services.volumes import ChainConflict

    b = _two_engines(m, manager_factory, tmp_path, base)
    folder = base / _dom(m).id / "images" / _image(m, "d").id
    leaf = m.disks.snapshot("d")
    files = _tree(folder)
    with pytest.raises(ChainConflict, match=r"disk 'd' \(image .*\) on storage domain 'sd': "
                                            r"its volume chain on the storage .* is not the "
                                            r"one this engine's state store has.*nothing was "
                                            r"changed.*storage detach sd"):
        b.disks.snapshot("d")
    # nothing half-made: no file, the metadata is A's, B's record is as it was
    assert _tree(folder) == files
    assert [v["id"] for v in read_json(folder / "image.json")["volumes"]][-1] == leaf.id
    assert len(_image(b, "d").volumes) == 1
    assert m.storage.verify("sd") == []
    # B re-reads the domain, as the message says, and agrees with the storage
    b.storage.detach("sd")
    b.storage.attach("sd", "localfs", {"path": str(base)}, "dc2")
    assert [v.id for v in _image(b, "d").volumes] == [v.id for v in _image(m, "d").volumes]
    assert b.storage.verify("sd") == [] and m.storage.verify("sd") == []
    # and B's next change is A's to notice
    b.disks.snapshot("d")
    with pytest.raises(ChainConflict):
        m.disks.merge("d")
    assert b.storage.verify("sd") == []


@pytest.mark.parametrize("op", ["extend", "merge", "remove", "clone-source-snapshot"])
def test_every_chain_change_compares_first(m, manager_factory, tmp_path, base, op):
    from virtplane.services.volumes import ChainConflict

    m.disks.create("d", "sd", 1 << 20)
    m.disks.snapshot("d")
    b = _other(manager_factory, tmp_path)
    b.storage.attach("sd", "localfs", {"path": str(base)}, "dc2")
    folder = base / _dom(m).id / "images" / _image(m, "d").id
    b.disks.extend("d", 2 << 20)  # B moves the chain (the leaf's size)
    files, before = _tree(folder), _image(m, "d")
    with pytest.raises(ChainConflict, match="nothing was changed"):
        if op == "extend":
            m.disks.extend("d", 4 << 20)
        elif op == "merge":
            m.disks.merge("d")
        elif op == "remove":
            m.disks.remove("d")
        else:
            m.disks.snapshot("d")
    after = _image(m, "d")
    assert _tree(folder) == files
    assert after.volumes == before.volumes and after.intent is None
    assert b.storage.verify("sd") == []
    # repair is the administrator's "keep this engine's chain"
    m.storage.repair("sd")
    assert m.storage.verify("sd") == []


def test_a_chain_change_waits_for_the_lock_and_compares_under_it(m, manager_factory,
                                                                 tmp_path, base):
    """The compare and the write are one step: another engine holding the lock (in the
    middle of its own change) makes this one wait, then the compare sees its result."""
    import threading

    from virtplane.services.volumes import ChainConflict

    b = _two_engines(m, manager_factory, tmp_path, base)
    dom = _dom(m)
    meta = base / dom.id / "images" / _image(m, "d").id / "image.json"
    fd = os.open(base / dom.id / "dom_md" / "metadata.lock", os.O_RDWR)
    errors: list[BaseException] = []

    def b_snapshot() -> None:
        try:
            b.disks.snapshot("d")
        except BaseException as exc:
            errors.append(exc)

    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another engine, mid-change
        t = threading.Thread(target=b_snapshot)
        t.start()
        time.sleep(0.5)
        assert t.is_alive() and not errors  # B waits for the lock
        _tamper(meta, lambda d: d["volumes"][0].update(size_bytes=2 << 20))  # its change
    finally:
        os.close(fd)
    t.join(30)
    assert len(errors) == 1 and isinstance(errors[0], ChainConflict), errors
    assert len(read_json(meta)["volumes"]) == 1 and len(_image(b, "d").volumes) == 1


def test_glusterfs_domains_take_the_same_lock_and_compare():
    from virtplane import drivers
    from virtplane_storage_file.filedomain import FileDomain
    from virtplane_storage_gluster import GlusterFs

    drv = GlusterFs()
    assert isinstance(drv, drivers.SupportsMetadataLock)
    for member in ("metadata_lock", "read_image", "write_image_metadata"):
        assert getattr(GlusterFs, member) is getattr(FileDomain, member)
