"""Schema version 6: ``objects.cluster_id``, a column, instead of the index on the JSON.

The store writes each object's ``cluster_id`` (VMs and hosts; NULL for the other
kinds) into the column with every add and update, and lists a cluster's VMs through
the index ``objects_cluster`` on ``(kind, cluster_id)``. Version 4's expression index
had to be re-evaluated on every write of ``data``, and on PostgreSQL kept updates
from being HOT (heap-only): about 30 us of a 107 us update. Existing rows get the
column from their JSON (string values only, as the store writes it).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("objects_cluster", table_name="objects")
    op.add_column("objects", sa.Column("cluster_id", sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("UPDATE objects SET cluster_id = json_extract(data, '$.cluster_id') "
                   "WHERE json_type(data, '$.cluster_id') = 'text'")
    else:
        op.execute("UPDATE objects SET cluster_id = CAST(data AS jsonb) ->> 'cluster_id' "
                   "WHERE jsonb_typeof(CAST(data AS jsonb) -> 'cluster_id') = 'string'")
    op.create_index("objects_cluster", "objects", ["kind", "cluster_id"])
    op.execute("UPDATE meta SET value='6' WHERE key='schema'")


def downgrade() -> None:
    raise NotImplementedError("the state schema only moves forward; restore a backup")
