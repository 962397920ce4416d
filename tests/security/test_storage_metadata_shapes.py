"""What the metadata fuzzer (test_storage_metadata_fuzz.py) found, one test each.

Metadata on the storage is rewritten with a valid checksum, as anyone who can write
the export could; each case was a traceback, a hang, a silently converted value, a
read outside the domain or a repair that deleted a used file before the fix.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import small_plane
from virtplane import model
from virtplane.errors import VirtplaneError
from virtplane_storage_file.filedomain import StorageError, qemu_img, read_json, write_json


@pytest.fixture
def m(manager_factory: Any, tmp_path: Path) -> Any:
    return small_plane(manager_factory(), tmp_path / "export")


def _dom(m: Any) -> model.StorageDomain:
    return m.store.find(model.StorageDomain, "sd")


def _meta(m: Any, tmp_path: Path, disk: str) -> Path:
    image = m.store.find(model.Image, disk)
    return tmp_path / "export" / _dom(m).id / "images" / image.id / "image.json"


def _other(manager_factory: Any, tmp_path: Path) -> Any:
    other = manager_factory(state_path=tmp_path / "other.db")
    other.datacenters.add("dc2")
    return other


def _attach(other: Any, tmp_path: Path) -> Any:
    return other.storage.attach("sd", "localfs", {"path": str(tmp_path / "export")}, "dc2")


def _tamper(path: Path, change: Any) -> None:
    data = read_json(path)
    change(data)
    write_json(path, data)


def _refused(manager_factory: Any, tmp_path: Path, pattern: str) -> str:
    other = _other(manager_factory, tmp_path)
    with pytest.raises(VirtplaneError, match=pattern) as caught:
        _attach(other, tmp_path)
    assert "\n" not in str(caught.value)
    assert not other.store.list(model.Image) and not other.store.list(model.StorageDomain)
    return str(caught.value)


# ------------------------------------------------------------- the file itself


def test_a_fifo_as_image_metadata_is_refused_not_waited_on(m, manager_factory, tmp_path):
    """Was: attach (and verify) blocked forever opening the FIFO."""
    m.disks.create("d", "sd", 1 << 20)
    meta = _meta(m, tmp_path, "d")
    meta.unlink()
    os.mkfifo(meta)
    other = _other(manager_factory, tmp_path)
    errors: list[BaseException] = []

    def attach() -> None:
        try:
            _attach(other, tmp_path)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=attach, daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():  # let the blocked open return, then fail
        os.close(os.open(meta, os.O_WRONLY | os.O_NONBLOCK))
        t.join(5)
        pytest.fail("attach hung on a FIFO in place of image.json")
    assert len(errors) == 1 and isinstance(errors[0], StorageError), errors
    assert f"{meta}: unreadable metadata (not a regular file" in str(errors[0])
    assert any("not a regular file" in p for p in m.storage.verify("sd"))


def test_a_fifo_as_domain_metadata_makes_refresh_say_so_at_once(m, tmp_path):
    """Was: the probe's child blocked on the FIFO for the whole probe timeout (10 s,
    twice with the reconnect), then reported a timeout, as for a dead server."""
    import time

    md = tmp_path / "export" / _dom(m).id / "dom_md" / "metadata.json"
    md.unlink()
    os.mkfifo(md)
    t0 = time.monotonic()
    dom = m.storage.refresh("sd")
    assert time.monotonic() - t0 < 5
    assert dom.status == model.DomainStatus.INACTIVE
    assert f"{md}: not a regular file" in dom.status_reason, dom.status_reason
    assert any("not a regular file" in p for p in m.storage.verify("sd"))


def test_deeply_nested_metadata_is_refused(m, manager_factory, tmp_path):
    """Was: RecursionError (a traceback) from attach and verify."""
    import hashlib

    m.disks.create("d", "sd", 1 << 20)
    meta = _meta(m, tmp_path, "d")
    text = "[" * 100_000 + "]" * 100_000
    meta.write_text(f'{{"data": {text}, "sha256": '
                    f'"{hashlib.sha256(text.encode()).hexdigest()}"}}')
    _refused(manager_factory, tmp_path, r"image\.json: unreadable metadata \(JSON nested "
                                        "too deeply\\)")
    assert any("nested too deeply" in p for p in m.storage.verify("sd"))


def test_an_enormous_metadata_file_is_refused_unread(m, manager_factory, tmp_path):
    """Was: read whole into memory; a domain name of megabytes made a message as long."""
    md = tmp_path / "export" / _dom(m).id / "dom_md" / "metadata.json"
    _tamper(md, lambda d: d.update(name="n" * (8 << 20)))
    _refused(manager_factory, tmp_path, r"metadata\.json: unreadable metadata \(\d+ bytes, "
                                        r"more than the 4194304")


# ------------------------------------------------------------- domain metadata


@pytest.mark.parametrize("value", ["bogus", None, 5, ["data"]])
def test_a_domain_class_virtplane_does_not_know_is_refused(m, manager_factory, tmp_path,
                                                           value):
    """Was: ValueError (a traceback) from DomainClass(...)."""
    md = tmp_path / "export" / _dom(m).id / "dom_md" / "metadata.json"
    _tamper(md, lambda d: d.update({"class": value}))
    _refused(manager_factory, tmp_path, rf"{md}: class")


@pytest.mark.parametrize("value", ["two\nlines", 5, None])
def test_a_domain_name_that_is_no_one_line_text_is_refused(m, manager_factory, tmp_path,
                                                           value):
    """Was: a two-line "found: ..." message, or a number taken as a name."""
    md = tmp_path / "export" / _dom(m).id / "dom_md" / "metadata.json"
    _tamper(md, lambda d: d.update(name=value))
    _refused(manager_factory, tmp_path, rf"{md}: name")


# -------------------------------------------------------------- image metadata


@pytest.mark.parametrize("field, value, why", [
    ("legal", "false", r"volumes\[0\]\.legal is a str, not bool"),  # was: taken as True
    ("size_bytes", "12", r"volumes\[0\]\.size_bytes is a str, not int"),  # was: 12
    ("size_bytes", 1.5, r"volumes\[0\]\.size_bytes is a float"),  # was: 1
    ("size_bytes", -1, r"volumes\[0\]\.size_bytes -1 is not a size"),  # was: accepted
    ("size_bytes", 1 << 70, r"volumes\[0\]\.size_bytes \d+ is not a size"),
    ("format", "vmdk", r"'vmdk' is not a valid VolumeFormat"),
    ("x", 1, r"extra fields found \(x\)"),
])
def test_volume_fields_keep_their_types(m, manager_factory, tmp_path, field, value, why):
    m.disks.create("d", "sd", 1 << 20)
    meta = _meta(m, tmp_path, "d")
    _tamper(meta, lambda d: d["volumes"][0].update({field: value}))
    # the file is named (was: "invalid Image: ..." without saying which one)
    _refused(manager_factory, tmp_path, rf"{meta}: .*{why}")
    assert any(str(meta) in p for p in m.storage.verify("sd"))


def _two_layers(m: Any) -> None:
    m.disks.create("d", "sd", 1 << 20)
    m.disks.snapshot("d")
    m.disks.create("e", "sd", 1 << 20)


@pytest.mark.parametrize("shape, why", [
    ("cycle", r"volumes\[0\]\.parent_id .* is no volume below it"),
    ("dup", r"volume .* is listed twice"),
    ("foreign_parent", r"volumes\[1\]\.parent_id .* is not the volume before it"),
    ("reverse", r"volumes\[0\]\.parent_id"),
    ("empty", r"volumes is empty"),
    ("base_self", r"volumes\[0\]\.base_image_id must name another image"),
    ("foreign_base", r"volumes\[0\]\.base_image_id .* is no image of this domain"),
])
def test_a_volume_chain_must_be_one_line(m, manager_factory, tmp_path, shape, why):
    """Was: attached as it was; a merge then raised StopIteration (a traceback), a
    repair could delete a volume listed twice while the other entry still used it."""
    _two_layers(m)
    meta = _meta(m, tmp_path, "d")
    other_image = m.store.find(model.Image, "e")

    def change(d: dict[str, Any]) -> None:
        vols = d["volumes"]
        if shape == "cycle":
            vols[0]["parent_id"] = vols[1]["id"]
        elif shape == "dup":
            vols.append({**vols[0], "legal": False, "parent_id": vols[1]["id"]})
        elif shape == "foreign_parent":
            vols[1]["parent_id"] = other_image.volumes[0].id
        elif shape == "reverse":
            vols.reverse()
        elif shape == "empty":
            vols.clear()
        elif shape == "base_self":
            vols[0].update(parent_id=vols[1]["id"], base_image_id=d["id"])
        elif shape == "foreign_base":
            vols[0].update(parent_id=vols[1]["id"],
                           base_image_id="0f8fad5b-d9cb-469f-a165-70867728950e")

    _tamper(meta, change)
    _refused(manager_factory, tmp_path, rf"{meta}: {why}")


# ----------------------------------------------------------- volume files


def test_a_chain_through_a_link_is_refused_before_qemu_img_reads_it(m, tmp_path):
    """Was: disk snapshot and clone ran qemu-img, which followed the link and read the
    file outside the domain (its error quoted that file's format). A snapshot writes
    its new layer's header without opening the chain below it (``qemu-img create -u``),
    so it reads nothing through the link and may go on; whatever opens the chain is
    refused, naming the link. A link in place of the snapshot's own parent is refused
    at once."""
    _two_layers(m)
    image = m.store.find(model.Image, "d")
    folder = tmp_path / "export" / _dom(m).id / "images" / image.id
    base = folder / image.volumes[0].id
    outside = tmp_path / "outside.qcow2"
    os.replace(base, outside)
    base.symlink_to(outside)
    for op in (lambda: m.disks.clone("d", "d2"), lambda: m.disks.merge("d")):
        with pytest.raises(StorageError, match=f"{base} is a symbolic link"):
            op()
    assert m.store.find(model.Image, "d").volumes == image.volumes
    m.disks.snapshot("d")
    with pytest.raises(StorageError, match=f"{base} is a symbolic link"):
        m.disks.clone("d", "d2")
    leaf = m.store.find(model.Image, "d").volumes[-1]
    os.replace(folder / leaf.id, tmp_path / "outside-leaf.qcow2")
    (folder / leaf.id).symlink_to(tmp_path / "outside-leaf.qcow2")
    with pytest.raises(StorageError, match=f"{folder / leaf.id} is a symbolic link"):
        m.disks.snapshot("d")
    assert m.store.find(model.Image, "d").volumes[-1].id == leaf.id


def test_qemu_img_errors_are_one_line(tmp_path):
    """Was: qemu-img's two lines ("...\\nCould not open backing image.") in the message."""
    (tmp_path / "base").write_bytes(b"not qcow2" * 100)
    with pytest.raises(StorageError) as caught:
        qemu_img("create", "-q", "-f", "qcow2", "-b", str(tmp_path / "base"), "-F", "qcow2",
                 str(tmp_path / "top"))
    assert "\n" not in str(caught.value) and "Could not open backing" in str(caught.value)


def test_an_image_folder_that_became_a_file_fails_repair_cleanly(m, tmp_path):
    """Was: FileExistsError (a traceback) from repair's metadata write."""
    import shutil

    m.disks.create("d", "sd", 1 << 20)
    folder = _meta(m, tmp_path, "d").parent
    shutil.rmtree(folder)
    folder.write_bytes(b"x")
    with pytest.raises(StorageError, match=f"cannot make the image folder {folder}"):
        m.storage.repair("sd")


# ------------------------------------------------------------------- repair


def test_repair_keeps_an_illegal_volume_a_thin_image_sits_on(m, manager_factory, tmp_path):
    """A template's volume marked illegal on the storage (by another engine, or forged):
    was deleted by repair on an engine that attached the domain, with the template's
    whole image, breaking the thin VM's chain on it."""
    dom = _dom(m)
    m.vms.create(model.VmSpec(name="v", memory_mib=256, disks=[
        model.DiskSpec(name="d0", size_bytes=1 << 20, domain_id=dom.id)]), "cl")
    template = m.templates.create("v", "t")
    m.templates.create_vm("t", "thin", "cl")
    t_image = m.store.get(model.Image, template.image_ids[0])
    folder = tmp_path / "export" / dom.id / "images" / t_image.id
    _tamper(folder / "image.json", lambda d: d["volumes"][0].update(legal=False))
    other = _other(manager_factory, tmp_path)
    _attach(other, tmp_path)
    done = other.storage.repair("sd")
    assert any("sit on it; left alone" in line for line in done), done
    assert (folder / t_image.volumes[0].id).is_file()
    assert other.store.has(model.Image, t_image.id)


def test_metadata_written_by_virtplane_passes_every_check(m, manager_factory, tmp_path):
    """The checks refuse nothing virtplane writes itself: chains, templates, thin VMs."""
    _two_layers(m)
    dom = _dom(m)
    m.vms.create(model.VmSpec(name="v", memory_mib=256, disks=[
        model.DiskSpec(name="d0", size_bytes=1 << 20, domain_id=dom.id)]), "cl")
    m.snapshots.take("v", "s")
    m.templates.create("v", "t")
    m.templates.create_vm("t", "thin", "cl")
    other = _other(manager_factory, tmp_path)
    _attach(other, tmp_path)
    assert len(other.store.list(model.Image)) == len(m.store.list(model.Image))
    assert other.storage.verify("sd") == [] and m.storage.verify("sd") == []
    assert json.loads(json.dumps(other.storage.repair("sd"))) == []
