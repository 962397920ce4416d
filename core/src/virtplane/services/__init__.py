"""virtplane's services: one module per object kind over one small :class:`Context`.

The CLI, the engine, the REST API and embedders stand side by side on these
classes; :class:`virtplane.Manager` builds them and exposes them as attributes
(``m.vms.start("vm1")``). Nothing here imports the Manager or the CLI.

==============================  =====================================================
service                         what it does
==============================  =====================================================
:class:`DataCenters`            data centers (add, get, list, remove)
:class:`Clusters`               clusters (add, get, list, remove)
:class:`Hosts`                  hosts (add, get, list, remove, check, setup,
                                maintenance, capabilities, stats)
:class:`StorageDomains`         storage domains (add, attach, get, list, info, verify,
                                repair, refresh, activate, deactivate, detach, remove)
:class:`Volumes`                images and volume chains (crash-safe volume protocol)
:class:`Templates`              templates and VMs made from them
:class:`Disks`, :class:`Isos`   standalone disks; ISO images on iso domains
:class:`Vms`                    VM records and lifecycle, stats, domain XML
:class:`Devices`                hot(un)plug of NICs, disks, memory; vCPUs; CD; tickets
:class:`Migrations`             live migration
:class:`Snapshots`              VM snapshots
:class:`Architectures`          architectures, features, OS info, spec validation
:class:`HookAdmin`              hook points, their implementations, dry runs
:class:`Monitor`                lifecycle events and host reconciliation
==============================  =====================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from virtplane.services._ops import Op, operation
    from virtplane.services.arch import Architectures
    from virtplane.services.context import Context, Paths
    from virtplane.services.devices import Devices
    from virtplane.services.disks import Disks, Isos
    from virtplane.services.hookadmin import HookAdmin
    from virtplane.services.hosts import Hosts
    from virtplane.services.inventory import Clusters, DataCenters
    from virtplane.services.migration import Migrations
    from virtplane.services.monitor import Monitor
    from virtplane.services.snapshots import Snapshots
    from virtplane.services.storage import StorageDomains
    from virtplane.services.templates import Templates
    from virtplane.services.vms import Vms
    from virtplane.services.volumes import Volumes

#: public name -> module: imported on first use, so importing one service module (the
#: Manager imports ``context``) does not import them all (cold-start budget)
_LAZY = {"Op": "_ops", "operation": "_ops", "Architectures": "arch", "Context": "context", "Paths": "context", "Devices": "devices", "Disks": "disks", "Isos": "disks", "HookAdmin": "hookadmin", "Hosts": "hosts", "Clusters": "inventory", "DataCenters": "inventory", "Migrations": "migration", "Monitor": "monitor", "Snapshots": "snapshots", "StorageDomains": "storage", "Templates": "templates", "Vms": "vms", "Volumes": "volumes"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'virtplane.services' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"virtplane.services.{module}"), name)


__all__ = [
    "Architectures", "Clusters", "Context", "DataCenters", "Devices", "Disks", "HookAdmin",
    "Hosts", "Isos", "Migrations", "Monitor", "Op", "Paths", "Snapshots", "StorageDomains",
    "Templates", "Vms", "Volumes", "operation",
]
