"""What a qcow2 header on shared storage names besides itself, read without qemu.

A qcow2 file carries the name of its backing file, and (qcow2 v3) may name an
external data file, in its header. qemu-img and QEMU open whatever those names say,
following links, and a name may be an absolute path (``/etc/shadow``), a climb out
of the domain (``../../``) or a protocol (``json:{...}``, ``nbd:``). A header is
metadata on shared storage, so it is untrusted like ``image.json``: before qemu-img
or a VM opens a chain, :func:`check_backing` compares each layer's names with what
the image's metadata says they must be (the names virtplane writes: the parent's
volume id, or ``../<base image id>/<parent id>`` for a layer over a template).

Header layout (QEMU's ``docs/interop/qcow2.txt``): big-endian; magic ``QFI\\xfb``;
version at 4; backing file offset (u64) at 8 and size (u32) at 16; cluster bits at
20; incompatible features (u64) at 72 in version 3, whose bit 2 says there is an
external data file; header extensions follow the header (at 72 in version 2, at
``header_length``, offset 100, in version 3), each a type (u32), a length (u32) and
its data padded to 8 bytes, up to type 0. Only the first cluster is read: QEMU
refuses headers whose backing name or extensions lie outside it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import NamedTuple

from virtplane_storage_file.errors import StorageError

MAGIC = b"QFI\xfb"
#: the external data file name extension, and its incompatible-feature bit
_EXT_DATA_FILE = 0x44415441
_INCOMPAT_DATA_FILE = 1 << 2
#: QEMU's limits: a backing file name of at most 1023 bytes, clusters of 512 B to 2 MiB
_MAX_NAME = 1023
_MIN_CLUSTER_BITS, _MAX_CLUSTER_BITS = 9, 21


class Header(NamedTuple):
    """The names a qcow2 header gives (None: none); ``qcow2`` False for a file that is
    not qcow2 at all (a raw volume)."""

    qcow2: bool
    backing: str | None
    data_file: str | None


def _bad(path: Path, why: str) -> StorageError:
    return StorageError(f"volume {path}: {why}; refusing to open its chain (a qcow2 header "
                        "on the storage is checked before qemu-img or a VM reads it)")


def read_header(path: Path, *, follow: bool = False) -> Header:
    """The backing and data file names in ``path``'s qcow2 header (a link is refused,
    the file is opened ``O_NOFOLLOW``, unless ``follow``: a file an admin names).

    :raises StorageError: the file cannot be read, or its header is cut short or
        inconsistent (names past the first cluster, a name too long or not UTF-8).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW))
    except OSError as exc:
        raise _bad(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        head = os.pread(fd, 104, 0)
        if head[:4] != MAGIC:
            return Header(False, None, None)
        if len(head) < 72:
            raise _bad(path, "its qcow2 header is cut short")
        version, backing_off, backing_len, cluster_bits = struct.unpack_from(">IQII", head, 4)
        if version not in (2, 3):
            raise _bad(path, f"qcow2 version {version} is not 2 or 3")
        if not _MIN_CLUSTER_BITS <= cluster_bits <= _MAX_CLUSTER_BITS:
            raise _bad(path, f"cluster bits {cluster_bits} are outside "
                       f"{_MIN_CLUSTER_BITS}..{_MAX_CLUSTER_BITS}")
        cluster = os.pread(fd, 1 << cluster_bits, 0)
    finally:
        os.close(fd)
    backing = None
    if backing_off:
        if backing_len > _MAX_NAME or backing_off + backing_len > len(cluster):
            raise _bad(path, "its backing file name lies outside the header's cluster or "
                       f"is longer than {_MAX_NAME} bytes")
        backing = _text(path, cluster[backing_off:backing_off + backing_len], "backing file")
    data_file = None
    incompatible = 0
    ext_at = 72
    if version == 3:
        if len(cluster) < 104:
            raise _bad(path, "its qcow2 v3 header is cut short")
        (incompatible,) = struct.unpack_from(">Q", cluster, 72)
        (ext_at,) = struct.unpack_from(">I", cluster, 100)
    while ext_at + 8 <= len(cluster):
        kind, length = struct.unpack_from(">II", cluster, ext_at)
        if kind == 0:
            break
        start, ext_at = ext_at + 8, ext_at + 8 + (length + 7) // 8 * 8
        if ext_at > len(cluster):
            raise _bad(path, "a header extension runs past the header's cluster")
        if kind == _EXT_DATA_FILE:
            data_file = _text(path, cluster[start:start + length], "external data file")
    if incompatible & _INCOMPAT_DATA_FILE and data_file is None:
        data_file = ""  # the feature without its name: QEMU would ask for one
    return Header(True, backing, data_file)


def _text(path: Path, raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(path, f"its {what} name is not UTF-8") from None


def check_backing(path: Path, expected: str | None, also: tuple[str, ...] = ()) -> None:
    """Refuse ``path`` unless its header names exactly the backing file ``expected``
    (None: no backing file), or one of ``also`` (the layers further down the same
    chain: a merge killed after its rebase leaves a layer naming its grandparent until
    the merge is finished), and no external data file. A file that is not qcow2 names
    nothing and passes: it is opened as raw (``-f raw``), never probed.

    :raises StorageError: naming the volume, the name found and what is allowed.
    """
    header = read_header(path)
    if not header.qcow2:
        return
    if header.data_file is not None:
        raise _bad(path, f"its header names an external data file "
                   f"({_shown(header.data_file)}); virtplane volumes keep their data "
                   "in the volume file itself")
    if header.backing == expected or (header.backing is not None and header.backing in also):
        return
    if expected is None:
        raise _bad(path, f"its header names a backing file ({_shown(header.backing)}) but "
                   "the image metadata says it is the base of its chain (no backing file)")
    raise _bad(path, f"its header names the backing file {_shown(header.backing)}, not "
               f"{expected!r} (the parent volume the image metadata names)")


def _shown(name: str | None) -> str:
    if name is None:
        return "none"
    text = repr(name)
    return text if len(text) <= 120 else text[:117] + "..."
