"""Calling an architecture or hypervisor driver's part of the domain XML, whichever
plugin API it implements: :func:`apply_architecture` and :func:`apply_hypervisor`.

Part of :mod:`virtplane.drivers` (import them from there): dispatching to drivers is
the drivers' business, so :mod:`virtplane.domxml` stays a plain XML layer that knows
no driver (before 0.2 these lived there, which made the two packages import each
other).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from virtplane.drivers._contracts import AdaptsDomain, CustomizesDomain
from virtplane.drivers._implements import implements

if TYPE_CHECKING:  # the XML layer is imported when a 1.x driver needs it (light CLI paths)
    from virtplane.domxml import Domain
    from virtplane.model import Cluster, VmSpec

_warned: set[type] = set()


def _deprecated(driver: Any, old: str, new: str) -> None:
    """One VirtplaneDeprecationWarning per driver class (not per VM start)."""
    from virtplane.hookspecs import VirtplaneDeprecationWarning

    cls = type(driver)
    if cls in _warned:
        return
    _warned.add(cls)
    warnings.warn(VirtplaneDeprecationWarning(
        f"{cls.__module__}.{cls.__qualname__} implements only {old}, which plugin API "
        f"3.0 removes; implement {new} (typed virtplane.domxml.Domain) instead"),
        stacklevel=3)


def _through_dict(domain: Domain, edit: Any) -> None:
    """Run a 1.x ``render`` on the dict form and write its result back into ``domain``
    (the same root element: ``domain`` stays valid; views of its parts taken before
    this call do not, take them again)."""
    body = domain.to_dict()
    edit(body)
    from virtplane.domxml import Domain

    new = Domain.from_dict(body).element
    root = domain.element
    root.clear()
    root.text, root.attrib = new.text, dict(new.attrib)
    root.extend(list(new))


def apply_architecture(driver: Any, spec: VmSpec, cluster: Cluster, domain: Domain) -> None:
    """Let an architecture driver fill in its part: ``customize_domain`` (2.0), else
    ``render`` on the 1.x dict (deprecated)."""
    if implements(driver, CustomizesDomain):
        driver.customize_domain(spec, cluster, domain)
        return
    _deprecated(driver, "render(spec, cluster, domain_dict)",
                "customize_domain(spec, cluster, domain)")
    _through_dict(domain, lambda body: driver.render(spec, cluster, body))


def apply_hypervisor(conn: Any, domain: Domain, arch: str, virt_type: str | None) -> None:
    """Let a hypervisor connection set its part (domain type, emulator ...):
    ``adapt_domain`` (2.0), else ``render`` on the 1.x dict (deprecated)."""
    if implements(conn, AdaptsDomain):
        conn.adapt_domain(domain, arch, virt_type)
        return
    _deprecated(conn, "render(domain_dict, arch, virt_type)",
                "adapt_domain(domain, arch, virt_type)")
    _through_dict(domain, lambda body: conn.render(body, arch, virt_type))
