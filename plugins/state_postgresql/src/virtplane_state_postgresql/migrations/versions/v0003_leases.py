"""Schema version 3: leases (host ownership and the leader, with fencing epochs).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # holder NULL: released; expires on the store's clock, in seconds since the epoch
    op.create_table("leases",
                    sa.Column("resource", sa.Text(), primary_key=True),
                    sa.Column("holder", sa.Text(), nullable=True),
                    sa.Column("epoch", sa.BigInteger(), nullable=False),
                    sa.Column("expires", sa.Double(), nullable=False),
                    sa.Column("acquired", sa.Double(), nullable=False))
    op.execute("UPDATE meta SET value='3' WHERE key='schema'")


def downgrade() -> None:
    raise NotImplementedError("the state schema only moves forward; restore a backup")
