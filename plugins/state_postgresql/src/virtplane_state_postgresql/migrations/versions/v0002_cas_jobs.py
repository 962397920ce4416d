"""Schema version 2: row versions (compare-and-set), event codes and correlation ids, jobs.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # every existing row counts as written once
    op.add_column("objects", sa.Column("version", sa.Integer(), nullable=False,
                                       server_default="1"))
    op.add_column("events", sa.Column("code", sa.Integer(), nullable=True))
    op.add_column("events", sa.Column("correlation_id", sa.Text(), nullable=True))
    op.create_index("events_correlation", "events", ["correlation_id"])
    op.create_table("jobs",
                    sa.Column("id", sa.Text(), primary_key=True),
                    sa.Column("correlation_id", sa.Text(), nullable=False),
                    sa.Column("kind", sa.Text(), nullable=False),
                    sa.Column("object_id", sa.Text(), nullable=True),
                    sa.Column("status", sa.Text(), nullable=False),
                    sa.Column("data", sa.Text(), nullable=False),
                    sa.Column("version", sa.Integer(), nullable=False),
                    sa.Column("created", sa.Double(), nullable=False),
                    sa.Column("updated", sa.Double(), nullable=False))
    op.create_index("jobs_correlation", "jobs", ["correlation_id"])
    op.create_index("jobs_object", "jobs", ["object_id"])
    op.create_index("jobs_status", "jobs", ["status"])
    op.execute("UPDATE meta SET value='2' WHERE key='schema'")


def downgrade() -> None:
    raise NotImplementedError("the state schema only moves forward; restore a backup")
