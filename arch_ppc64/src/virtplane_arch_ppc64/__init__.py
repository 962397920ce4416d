"""ppc64/ppc64le (POWER, pseries) architecture strategy and its OS info.

Skeleton: this distribution installs but registers no entry points yet, so the
core does not list it as a plugin. The work is tracked in issue #8.
"""

from __future__ import annotations

__all__: list[str] = []
