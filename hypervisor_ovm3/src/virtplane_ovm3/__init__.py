"""Oracle VM 3 (Xen) hypervisor driver over the ovs-agent XML-RPC API.

Skeleton: this distribution installs but registers no entry points yet, so the
core does not list it as a plugin. The work is tracked in issue #5.
"""

from __future__ import annotations

__all__: list[str] = []
