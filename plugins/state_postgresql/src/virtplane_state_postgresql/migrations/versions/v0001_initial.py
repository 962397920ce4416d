"""Schema version 1: objects as JSON rows, the event log, the schema record.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite needs INTEGER PRIMARY KEY (a rowid alias) to number rows by itself
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table("meta",
                    sa.Column("key", sa.Text(), primary_key=True),
                    sa.Column("value", sa.Text(), nullable=False))
    op.create_table("objects",
                    sa.Column("id", sa.Text(), primary_key=True),
                    sa.Column("kind", sa.Text(), nullable=False),
                    sa.Column("name", sa.Text(), nullable=False),
                    sa.Column("data", sa.Text(), nullable=False),
                    sa.Column("updated", sa.Double(), nullable=False))
    op.create_index("objects_kind_name", "objects", ["kind", "name"], unique=True)
    op.create_table("events",
                    sa.Column("seq", SEQ, sa.Identity(always=False), primary_key=True),
                    sa.Column("ts", sa.Double(), nullable=False),
                    sa.Column("object_id", sa.Text(), nullable=False),
                    sa.Column("level", sa.Text(), nullable=False),
                    sa.Column("message", sa.Text(), nullable=False),
                    sqlite_autoincrement=True)
    op.create_index("events_object", "events", ["object_id"])
    op.execute("INSERT INTO meta(key, value) VALUES ('schema', '1')")


def downgrade() -> None:
    raise NotImplementedError("the state schema only moves forward; restore a backup")
