"""External storage arrays through libStorageMgmt, with offloaded snapshots and clones.

Skeleton: this distribution installs but registers no entry points yet, so the
core does not list it as a plugin. The work is tracked in issue #4.
"""

from __future__ import annotations

__all__: list[str] = []
