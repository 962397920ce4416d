"""Old home of :class:`HookRunner`; kept so older imports work. Use :mod:`virtplane.plugins`."""

from __future__ import annotations

from virtplane.plugins.hooks import *  # noqa: F403
from virtplane.plugins.hooks import __all__ as __all__
