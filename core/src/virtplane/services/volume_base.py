"""What every part of :class:`~virtplane.services.volumes.Volumes` stands on: its
context, the storage driver of a domain, the Active check, and the checks and
messages other services share (volume sizes, drivers without an optional
contract, illegal volumes)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from virtplane import drivers, faults, model
from virtplane.errors import InvalidInput, InvalidState, StorageUnavailable
from virtplane.services.context import Context

#: the status reason ``StorageDomains.deactivate`` records: the administrator took the
#: domain out of use, so a monitor (the engine's storage probe) must not bring it back
#: to Active by itself, and using it is refused as a state (:meth:`Volumes.require_active`);
#: compare with this, never with a copy of the text (also importable from
#: ``virtplane.services.storage``)
ADMIN_DEACTIVATED = "deactivated by the administrator"

#: ``make(domain, image, volume)``: fills a new volume (default: the driver's create_volume)
Maker = Callable[[model.StorageDomain, model.Image, model.Volume], None]


def unsupported(dom_type: str, what: str, members: str) -> InvalidInput:
    """The error for a storage type whose driver lacks an optional contract."""
    return InvalidInput(f"storage type {dom_type!r} cannot {what} (its driver has no "
                        f"{members})")


#: the largest volume size accepted (1 EiB): far above any disk, far below what the state
#: store's 64-bit integers and qemu-img take
MAX_SIZE = 1 << 60


def check_size(size_bytes: int, what: str) -> None:
    """Refuse a volume size that is not a positive number of bytes up to :data:`MAX_SIZE`."""
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) \
            or not 0 < size_bytes <= MAX_SIZE:
        raise InvalidInput(f"{what} size must be a positive number of bytes up to 1 EiB; "
                           f"got {size_bytes!r}")


def illegal_volumes(images: list[model.Image]) -> list[str]:
    """One line per volume whose creation did not finish."""
    return [f"image {i.id}: volume {v.id} is illegal (its creation did not finish); "
            "`virtplane storage repair` removes it" for i in images for v in i.volumes
            if not v.legal]


class VolumesBase:
    """The context of :class:`~virtplane.services.volumes.Volumes` and what all its
    parts use: drivers, domains, the Active check."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        # per thread: ids of the images whose chain this thread has compared and holds
        # the lock of (nested changes do not compare again), and the repair flag
        self._local = threading.local()

    def driver(self, dom: model.StorageDomain) -> drivers.StorageDriver:
        """The storage driver of a domain (with kill points around its calls when fault
        injection is on: :mod:`virtplane.faults`)."""
        return faults.wrap(self.ctx.drivers.storage(dom.type))

    def domain_of(self, image: model.Image) -> model.StorageDomain:
        return self.ctx.store.get(model.StorageDomain, image.domain_id)

    # ------------------------------------------------------------------ state

    @staticmethod
    def require_active(dom: model.StorageDomain) -> None:
        """Refuse to use an Inactive domain, with its reason: :class:`InvalidState` when
        the administrator deactivated it (maintenance: a state the caller can change,
        oVirt's 409 "Storage Domain ... is not active"), :class:`StorageUnavailable` when
        its storage stopped answering (the probe's reason: an outage)."""
        if dom.status != model.DomainStatus.INACTIVE:
            return
        message = f"storage domain {dom.name!r} is Inactive: {dom.status_reason}"
        if dom.status_reason == ADMIN_DEACTIVATED:
            raise InvalidState(message)
        raise StorageUnavailable(message)
