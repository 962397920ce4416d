"""Old home of the core's built-in hook plugin; kept so older imports work."""

from __future__ import annotations

from virtplane.plugins._builtin import *  # noqa: F403
from virtplane.plugins._builtin import __all__ as __all__
