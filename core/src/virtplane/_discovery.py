"""Old home of entry-point discovery; kept so older imports work (see :mod:`virtplane.plugins`)."""

from __future__ import annotations

from virtplane.plugins._discovery import *  # noqa: F403
from virtplane.plugins._discovery import __all__ as __all__
