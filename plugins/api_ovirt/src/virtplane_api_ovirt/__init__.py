"""virtplane's oVirt-compatible REST API v4 (docs/api-ovirt.md).

``create_app(manager)`` returns the ASGI app; ``Server`` runs it under uvicorn;
``virtplane-api`` is the command line.
"""

from __future__ import annotations

from virtplane_api_ovirt.app import create_app
from virtplane_api_ovirt.server import Server

__all__ = ["Server", "create_app"]
