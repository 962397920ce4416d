"""Old home of the "does a wheel fit this core" checks; kept so older imports work."""

from __future__ import annotations

from virtplane.plugins._compat import *  # noqa: F403
from virtplane.plugins._compat import __all__ as __all__
