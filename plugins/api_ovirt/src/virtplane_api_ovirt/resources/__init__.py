"""One module per resource kind; each exports ``ROUTES`` (method, path under the API, handler)."""

from __future__ import annotations

from virtplane_api_ovirt.base import Route
from virtplane_api_ovirt.resources import (
    aaa,
    clusters,
    datacenters,
    disks,
    events,
    hosts,
    jobs,
    networks,
    root,
    sshkeys,
    storagedomains,
    tags,
    templates,
    vm_devices,
    vms,
)

ROUTES: list[Route] = [
    *root.ROUTES, *datacenters.ROUTES, *clusters.ROUTES, *hosts.ROUTES,
    *storagedomains.ROUTES, *vms.ROUTES, *vm_devices.ROUTES, *disks.ROUTES,
    *templates.ROUTES, *tags.ROUTES, *networks.ROUTES, *events.ROUTES, *jobs.ROUTES, *aaa.ROUTES,
    *sshkeys.ROUTES,
]
