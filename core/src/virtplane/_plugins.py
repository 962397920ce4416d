"""Old home of plugin loading; kept so older imports work. Use :mod:`virtplane.plugins`."""

from __future__ import annotations

from virtplane.plugins._registry import *  # noqa: F403
from virtplane.plugins._registry import __all__ as __all__
