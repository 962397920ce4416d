"""virtplane's state store on PostgreSQL (see :mod:`virtplane_state_postgresql.store`).

Installed, it serves ``postgresql://`` state URLs (entry point ``virtplane.state``),
and its Alembic scripts (:mod:`virtplane_state_postgresql.migrations`) migrate
both backends' schemas.
"""

from __future__ import annotations

from virtplane_state_postgresql.store import PostgresStore

__all__ = ["PostgresStore"]
