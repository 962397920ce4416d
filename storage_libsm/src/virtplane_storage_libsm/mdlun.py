"""Domain metadata kept on the array, in a small metadata LUN per domain.

The LUN holds two 1 MiB slots; each write goes to the slot not holding the
newest copy, as ``{"generation", "data", "sha256"}`` JSON padded with NULs,
then fsync. A reader takes the valid slot with the highest generation, so a
crash mid-write leaves the previous copy readable (what VDSM's block domains
get from their metadata LV and checksums).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from virtplane.errors import VirtplaneError

SLOT = 1 << 20
SIZE = 2 * SLOT


class MetadataError(VirtplaneError):
    """The metadata LUN is unreadable or too small."""


def _slot(raw: bytes) -> dict[str, Any] | None:
    text = raw.rstrip(b"\0")
    if not text:
        return None
    try:
        doc = json.loads(text)
        body = json.dumps(doc["data"], sort_keys=True) + str(doc["generation"])
    except (ValueError, KeyError, TypeError):
        return None
    if hashlib.sha256(body.encode()).hexdigest() != doc.get("sha256"):
        return None
    return dict(doc)


def read(device: str) -> tuple[int, Any]:
    """(generation, data) of the newest valid slot; MetadataError when none is valid."""
    try:
        with open(device, "rb") as f:
            slots = [_slot(f.read(SLOT)), _slot(f.read(SLOT))]
    except OSError as exc:
        raise MetadataError(f"cannot read metadata LUN {device}: {exc.strerror}") from None
    valid = [s for s in slots if s is not None]
    if not valid:
        raise MetadataError(f"metadata LUN {device} holds no valid copy (both slots fail "
                            "their checksum)")
    best = max(valid, key=lambda s: int(s["generation"]))
    return int(best["generation"]), best["data"]


def write(device: str, data: Any, generation: int) -> None:
    """Write ``data`` as ``generation`` into the slot the previous generation did not use."""
    body = json.dumps(data, sort_keys=True)
    doc = {"generation": generation, "data": data,
           "sha256": hashlib.sha256((body + str(generation)).encode()).hexdigest()}
    raw = json.dumps(doc, sort_keys=True).encode()
    if len(raw) > SLOT:
        raise MetadataError(f"domain metadata is {len(raw)} bytes; a slot holds {SLOT}")
    fd = os.open(device, os.O_WRONLY)
    try:
        os.pwrite(fd, raw.ljust(SLOT, b"\0"), (generation % 2) * SLOT)
        os.fsync(fd)
    finally:
        os.close(fd)
