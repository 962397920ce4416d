"""GlusterFS storage domains presented to QEMU as libgfapi network disks.

Skeleton: this distribution installs but registers no entry points yet, so the
core does not list it as a plugin. The work is tracked in issue #3.
"""

from __future__ import annotations

__all__: list[str] = []
