"""``GET /ovirt-engine/api``: product information, summary, special objects, links.

The SDK's ``Connection.test()`` and ``show_summary.py`` read this; Ansible reads
``product_info.version.major/minor`` to decide which features the engine has,
so virtplane presents itself as API version 4.5 (the model the SDK 4.6 speaks).
"""

from __future__ import annotations

import datetime

from virtplane import model
from virtplane_api_ovirt import enums
from virtplane_api_ovirt.base import BASE, BLANK_ID, TAG_ROOT_ID, Call, Reply, Route, entity, ref

API_MAJOR, API_MINOR = 4, 5
ROOT_LINKS = ("clusterlevels", "clusters", "datacenters", "disks", "domains", "events",
              "groups", "hosts", "jobs", "networks", "operatingsystems", "permissions",
              "roles", "storagedomains", "tags", "templates", "users", "vms", "vnicprofiles")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("virtplane-api-ovirt")
    except PackageNotFoundError:
        return "0"


def get_root(call: Call) -> Reply:
    store = call.m.store
    vms = store.list(model.Vm)
    hosts = store.list(model.Host)
    domains = store.list(model.StorageDomain)
    ours = _version()
    return entity("api", {
        "link": [(rel, f"{BASE}/{rel}") for rel in ROOT_LINKS],
        "authenticated_user": {"user_name": call.user},
        "effective_user": {"user_name": call.user},
        "product_info": {
            "name": "virtplane", "vendor": "virtplane",
            "version": {"build": 0, "full_version": f"{API_MAJOR}.{API_MINOR}.0-virtplane-{ours}",
                        "major": API_MAJOR, "minor": API_MINOR, "revision": 0},
        },
        "special_objects": {"blank_template": ref("templates", BLANK_ID),
                            "root_tag": ref("tags", TAG_ROOT_ID)},
        "summary": {
            "hosts": {"active": sum(enums.host_status(h) == "up" for h in hosts),
                      "total": len(hosts)},
            "storage_domains": {"active": sum(d.status == model.DomainStatus.ACTIVE
                                              for d in domains), "total": len(domains)},
            "users": {"active": len(call.api.sessions), "total": len(call.api.authz.store.index().users)},
            "vms": {"active": sum(enums.vm_status(v) == "up" for v in vms), "total": len(vms)},
        },
        "time": datetime.datetime.now().astimezone().isoformat(timespec="milliseconds"),
    })


ROUTES: list[Route] = [("GET", "", get_root)]
