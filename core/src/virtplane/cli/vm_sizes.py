"""Sizes and disks as ``virtplane vm`` (and ``virtplane disk``) take them on the command
line: ``512M``, ``2G`` (:func:`_parse_size`, up to :data:`MAX_SIZE`) and
``SIZE[@STORAGE_DOMAIN]`` or ``disk=NAME`` (:func:`_disk`)."""

from __future__ import annotations

from typing import Any

#: the largest size accepted (1 EiB): far above any disk, far below what the state store's
#: 64-bit integers hold
MAX_SIZE = 1 << 60


def _parse_size(text: str) -> int:
    """A positive size in bytes from ``512M``, ``2G``, ``1.5T`` or a byte count.

    ``inf``, ``nan``, ``1e400`` and numbers with underscores are refused like any other
    text that is not a size (``float`` accepts them; a size must not).
    """
    from virtplane.errors import InvalidInput

    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    number, unit = (t[:-1], units[t[-1]]) if t and t[-1] in units else (t, 1)
    size = 0
    if number and all(c in "0123456789." for c in number) and number.count(".") <= 1 \
            and number != ".":
        size = int(float(number) * unit) if "." in number else int(number) * unit
    if size <= 0 or size > MAX_SIZE:
        raise InvalidInput(f"size {text!r} is not valid; a size is a positive number of bytes "
                           "up to 1 EiB with an optional unit K, M, G or T, e.g. 512M, 2G or "
                           "1073741824")
    return size


def _disk(m: Any, text: str, name: str, interface: str, bootable: bool = False) -> Any:
    """``SIZE[@STORAGE_DOMAIN]`` (a new disk) or ``disk=NAME`` (an existing named disk)."""
    from virtplane import model

    if text.startswith("disk="):
        image = m.disks.get(text[5:])
        return model.DiskSpec(name=name, size_bytes=image.volumes[-1].size_bytes,
                              interface=interface, domain_id=image.domain_id,
                              image_id=image.id, bootable=bootable)
    size, _, dom = text.partition("@")
    domain_id = m.storage.get(dom).id if dom else None
    return model.DiskSpec(name=name, size_bytes=_parse_size(size), interface=interface,
                          domain_id=domain_id, bootable=bootable)
