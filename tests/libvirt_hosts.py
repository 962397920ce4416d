"""The real libvirt hosts the integration tests use, and two questions asked of them
through libvirt itself (not through virtplane): is a host there, what runs on it."""

from __future__ import annotations

from collections.abc import Iterable

import libvirt

#: this machine's libvirtd (tools/start-daemons.sh)
H1 = "qemu:///system"
#: the second libvirtd, in its own mount namespace (tools/start-second-host.sh)
H2 = "qemu+unix:///system?socket=/srv/vp-h2/run/libvirt-sock"


def reachable(uri: str) -> bool:
    """Whether a libvirt connection to ``uri`` opens."""
    try:
        libvirt.open(uri).close()
    except libvirt.libvirtError:
        return False
    return True


def running(uri: str) -> set[str]:
    """Names of the domains running at ``uri`` (libvirt's own answer)."""
    conn = libvirt.open(uri)
    try:
        return {d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}
    finally:
        conn.close()


def forget_test_domains(names: Iterable[str]) -> None:
    """Destroy and undefine these domains in the process-wide ``test:///default`` (a
    test's VMs would otherwise outlive it there and meet the next test's)."""
    conn = libvirt.open("test:///default")
    try:
        for name in names:
            try:
                dom = conn.lookupByName(name)
            except libvirt.libvirtError:
                continue  # never started, or already gone
            if dom.isPersistent():
                dom.undefine()
            if dom.isActive():
                dom.destroy()
    finally:
        conn.close()


def driver_domains(active_only: bool = False) -> set[str]:
    """The names of the domains the process-wide ``test:///default`` holds now (only the
    running ones with ``active_only``): what a test checks was left behind."""
    conn = libvirt.open("test:///default")
    try:
        flags = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE if active_only else 0
        return {d.name() for d in conn.listAllDomains(flags)}
    finally:
        conn.close()
