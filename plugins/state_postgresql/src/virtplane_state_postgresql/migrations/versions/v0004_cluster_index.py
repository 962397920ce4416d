"""Schema version 4: an index on the ``cluster_id`` of VMs and hosts.

A user whose permission is on a cluster lists that cluster's VMs through it
instead of reading every VM. The expression is each dialect's own and equals the
one the stores queried with, so the planner used it. Version 6 replaces it by the
column ``objects.cluster_id`` (see ``v0006_cluster_column``).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE INDEX objects_cluster ON objects(kind, "
                   "json_extract(data, '$.cluster_id'))")
    else:
        op.execute("CREATE INDEX objects_cluster ON objects "
                   "(kind, (CAST(data AS jsonb) ->> 'cluster_id'))")
    op.execute("UPDATE meta SET value='4' WHERE key='schema'")


def downgrade() -> None:
    raise NotImplementedError("the state schema only moves forward; restore a backup")
