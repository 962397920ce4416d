"""Schema version 5: which engine runs a job (``jobs.engine``).

Several engines share a server store; when one dies, the leader fails the jobs it
left unfinished, and only those (the others' jobs are alive).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("engine", sa.Text(), nullable=True))
    op.execute("UPDATE meta SET value='5' WHERE key='schema'")


def downgrade() -> None:
    raise NotImplementedError("the state schema only moves forward; restore a backup")
