"""Runs VDSM-style hook script folders (/usr/libexec/vdsm/hooks/<point>/) for every hook point.

Skeleton: this distribution installs but registers no entry points yet, so the
core does not list it as a plugin. The work is tracked in issue #7.
"""

from __future__ import annotations

__all__: list[str] = []
