"""qcow2 headers on shared storage are untrusted: a layer whose header names another
backing file than its metadata's parent (an absolute path, a protocol, a climb out of
the domain), any external data file, or a base layer with a backing file is refused
before qemu-img or a VM opens the chain; a raw volume is never probed (a guest may
write a qcow2 header into it); an import of a qcow2 layer that names a backing file
is refused. Each refusal names the volume and what was found."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from virtplane import model
from virtplane.errors import InvalidInput
from virtplane_storage_file import StorageError
from virtplane_storage_file.qcow2 import MAGIC, check_backing, read_header

QEMU_IMG = "qemu-img"


def _qemu_img(*args: str) -> None:
    subprocess.run([QEMU_IMG, *args], check=True, capture_output=True)


@pytest.fixture
def m(manager_factory: Any, tmp_path: Path) -> Any:
    import shutil

    need(shutil.which(QEMU_IMG) is not None, "qemu-img is not installed")
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.hosts.add("h", "cl", "test:///default")
    m.storage.add("sd", "localfs", "dc", {"path": str(tmp_path / "sd")})
    return m


def _files(m: Any, tmp_path: Path, name: str) -> list[Path]:
    image = m.store.find(model.Image, name)
    folder = next((tmp_path / "sd").glob(f"*/images/{image.id}"))
    return [folder / v.id for v in image.volumes]


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.raw"
    secret.write_bytes(b"TOP-SECRET" * 1000)
    return secret


@pytest.mark.parametrize("evil", ["ABS", "../../../../../../etc/hostname",
                                  'json:{"driver": "raw", "file": {"driver": "file", '
                                  '"filename": "/etc/hostname"}}'])
def test_a_layer_naming_another_backing_file_is_refused(m: Any, tmp_path: Path,
                                                        evil: str) -> None:
    evil = str(_secret(tmp_path)) if evil == "ABS" else evil
    m.disks.create("data", "sd", 1 << 20)
    m.disks.snapshot("data")
    base, leaf = _files(m, tmp_path, "data")
    _qemu_img("rebase", "-u", "-f", "qcow2", "-b", evil, "-F", "raw", str(leaf))
    image_before = m.store.find(model.Image, "data")
    with pytest.raises(StorageError) as info:
        m.disks.clone("data", "copy")
    said = str(info.value)
    assert str(leaf) in said and "names the backing file" in said and base.name in said
    assert "copy" not in [d["name"] for d in m.disks.list()]
    assert m.store.find(model.Image, "data").volumes == image_before.volumes
    with pytest.raises(StorageError, match="names the backing file"):
        m.disks.merge("data")
    assert m.store.find(model.Image, "data").volumes == image_before.volumes


def test_a_vm_does_not_start_on_a_tampered_chain(m: Any, tmp_path: Path) -> None:
    m.disks.create("data", "sd", 1 << 20)
    m.disks.snapshot("data")
    _base, leaf = _files(m, tmp_path, "data")
    _qemu_img("rebase", "-u", "-f", "qcow2", "-b", str(_secret(tmp_path)), "-F", "raw",
              str(leaf))
    image = m.store.find(model.Image, "data")
    m.vms.create(model.VmSpec(name="v", memory_mib=256, disks=[model.DiskSpec(
        name="d", domain_id=image.domain_id, image_id=image.id)]), "cl")
    with pytest.raises(StorageError, match="names the backing file"):
        m.vms.start("v")
    vm = m.store.find(model.Vm, "v")
    assert vm.status == model.VmStatus.DOWN and "names the backing file" in vm.status_reason


def test_a_base_layer_with_a_backing_file_is_refused(m: Any, tmp_path: Path) -> None:
    m.disks.create("data", "sd", 1 << 20)
    (base,) = _files(m, tmp_path, "data")
    _qemu_img("rebase", "-u", "-f", "qcow2", "-b", str(_secret(tmp_path)), "-F", "raw",
              str(base))
    with pytest.raises(StorageError, match="base of its chain"):
        m.disks.clone("data", "copy")


def test_an_external_data_file_is_refused(m: Any, tmp_path: Path) -> None:
    m.disks.create("data", "sd", 1 << 20)
    (base,) = _files(m, tmp_path, "data")
    base.unlink()
    _qemu_img("create", "-q", "-f", "qcow2", "-o",
              f"data_file={_secret(tmp_path)},data_file_raw=on", str(base), "1M")
    assert read_header(base).data_file == str(tmp_path / "secret.raw")
    with pytest.raises(StorageError, match="external data file"):
        m.disks.clone("data", "copy")


def test_a_raw_volume_holding_a_qcow2_header_is_copied_as_raw(m: Any, tmp_path: Path) -> None:
    """What a guest writes into a raw disk may look like qcow2 naming a host file: the
    copy must be the raw bytes, never the named file's."""
    m.disks.create("data", "sd", 1 << 20, "raw")
    (base,) = _files(m, tmp_path, "data")
    fake = tmp_path / "fake.qcow2"
    _qemu_img("create", "-q", "-f", "qcow2", "-b", str(_secret(tmp_path)), "-F", "raw",
              str(fake), "1M")
    guest = fake.read_bytes()[:65536]
    with base.open("r+b") as f:
        f.write(guest)
    m.disks.clone("data", "copy")
    (copied,) = _files(m, tmp_path, "copy")
    data = copied.read_bytes()
    assert b"TOP-SECRET" not in data
    assert data[:4] == MAGIC  # the guest's bytes, as they were (the copy is raw)


def test_an_import_naming_a_backing_file_is_refused(m: Any, tmp_path: Path) -> None:
    layer = tmp_path / "layer.qcow2"
    _qemu_img("create", "-q", "-f", "qcow2", "-b", str(_secret(tmp_path)), "-F", "raw",
              str(layer), "1M")
    with pytest.raises(InvalidInput, match="names a backing file.*flatten it first"):
        m.disks.import_file("imp", "sd", str(layer))
    assert "imp" not in [d["name"] for d in m.disks.list()]
    standalone = tmp_path / "ok.qcow2"
    _qemu_img("create", "-q", "-f", "qcow2", str(standalone), "1M")
    m.disks.import_file("imp", "sd", str(standalone))
    assert "imp" in [d["name"] for d in m.disks.list()]


# ---------------------------------------------------------------- the header reader


def _header(tmp_path: Path, version: int = 3, backing: bytes = b"", offset: int | None = None,
            size: int | None = None, cluster_bits: int = 16, extra: bytes = b"") -> Path:
    head = bytearray(1 << 12)
    head[:4] = MAGIC
    struct.pack_into(">IQII", head, 4, version, 0, 0, cluster_bits)
    if version == 3:
        struct.pack_into(">I", head, 100, 104)
        head[104:104 + len(extra)] = extra
    if backing or offset is not None:
        at = 512 if offset is None else offset
        struct.pack_into(">QI", head, 8, at, len(backing) if size is None else size)
        head[512:512 + len(backing)] = backing
    path = tmp_path / "h.qcow2"
    path.write_bytes(bytes(head))
    return path


def test_the_reader_gives_the_names_of_real_headers(tmp_path: Path) -> None:
    import shutil

    need(shutil.which(QEMU_IMG) is not None, "qemu-img is not installed")
    for compat in ("0.10", "1.1"):
        path = tmp_path / f"r{compat}.qcow2"
        _qemu_img("create", "-q", "-f", "qcow2", "-o", f"compat={compat}", "-b", "parent-id",
                  "-F", "raw", "-u", str(path), "1M")
        assert read_header(path) == (True, "parent-id", None)
        check_backing(path, "parent-id")
        with pytest.raises(StorageError, match="'parent-id', not 'other'"):
            check_backing(path, "other")


@pytest.mark.parametrize("kwargs, says", [
    ({"offset": 4000, "backing": b"", "size": 200}, "outside the header's cluster"),
    ({"backing": b"x" * 1024}, "longer than 1023 bytes"),
    ({"backing": b"\xff\xfe"}, "not UTF-8"),
    ({"cluster_bits": 40}, "cluster bits 40"),
    ({"version": 7}, "qcow2 version 7"),
    ({"extra": struct.pack(">II", 0x1234, 1 << 20)}, "runs past the header's cluster"),
])
def test_bad_headers_are_refused_by_name(tmp_path: Path, kwargs: dict[str, Any],
                                         says: str) -> None:
    path = _header(tmp_path, **kwargs)
    with pytest.raises(StorageError, match=says) as info:
        read_header(path)
    assert str(path) in str(info.value)


def test_a_file_that_is_not_qcow2_names_nothing(tmp_path: Path) -> None:
    path = tmp_path / "raw"
    path.write_bytes(b"\0" * 4096)
    assert read_header(path) == (False, None, None)
    check_backing(path, None)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(StorageError, match="cannot be read"):
        read_header(link)
