"""External storage arrays through libStorageMgmt (driver ``libsm``), with offloaded
snapshots and clones.

The driver (:mod:`virtplane_storage_libsm.driver`) keeps one array LUN per
volume and the domain metadata in a metadata LUN; it talks to the array through
:mod:`virtplane_storage_libsm.adapter`, a narrow adapter over ``lsm.Client``.
"""

from __future__ import annotations

__all__: list[str] = []
