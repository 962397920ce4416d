"""Schema version 7: ``objects.owner_id``, what an object belongs to, indexed.

The store writes each object's owner id with every add and update: an image's VM or
template (its ``owner``, ``vm:<id>`` or ``template:<id>``), a snapshot's VM
(``vm_id``); NULL for every other row, which the partial index ``objects_owner`` on
``(kind, owner_id)`` leaves out. Removing a VM finds its images and snapshots through
it instead of parsing every image and snapshot stored. Existing rows get the column
from their JSON, as the store would write it: an image stored before owners were
recorded (no ``owner`` key, no alias, described ``<vm id>/<disk>``) belongs to that
VM; one described ``template <name>/<disk>`` belongs to a template whose id it does
not record, and gets NULL.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_UUID_GLOB = "-".join("[0-9a-f]" * n for n in (8, 4, 4, 4, 12))
_UUID_REGEX = "-".join(f"[0-9a-f]{{{n}}}" for n in (8, 4, 4, 4, 12))

_SQLITE = (
    "UPDATE objects SET owner_id = NULLIF(json_extract(data, '$.vm_id'), '') "
    "WHERE kind = 'snapshot' AND json_type(data, '$.vm_id') = 'text'",
    "UPDATE objects SET owner_id = CASE "
    "WHEN json_extract(data, '$.owner') GLOB 'vm:?*' "
    "THEN substr(json_extract(data, '$.owner'), 4) "
    "WHEN json_extract(data, '$.owner') GLOB 'template:?*' "
    "THEN substr(json_extract(data, '$.owner'), 10) END "
    "WHERE kind = 'image' AND json_type(data, '$.owner') = 'text'",
    "UPDATE objects SET owner_id = substr(json_extract(data, '$.description'), 1, 36) "
    "WHERE kind = 'image' AND json_type(data, '$.owner') IS NULL "
    "AND coalesce(json_extract(data, '$.alias'), '') = '' "
    f"AND json_extract(data, '$.description') GLOB '{_UUID_GLOB}/*'",
)

_DOC = "CAST(data AS jsonb)"
_OWNER = f"({_DOC} ->> 'owner')"
_POSTGRESQL = (
    f"UPDATE objects SET owner_id = NULLIF({_DOC} ->> 'vm_id', '') "
    f"WHERE kind = 'snapshot' AND jsonb_typeof({_DOC} -> 'vm_id') = 'string'",
    "UPDATE objects SET owner_id = CASE "
    f"WHEN left({_OWNER}, 3) = 'vm:' AND length({_OWNER}) > 3 "
    f"THEN substr({_OWNER}, 4) "
    f"WHEN left({_OWNER}, 9) = 'template:' AND length({_OWNER}) > 9 "
    f"THEN substr({_OWNER}, 10) END "
    f"WHERE kind = 'image' AND jsonb_typeof({_DOC} -> 'owner') = 'string'",
    f"UPDATE objects SET owner_id = substr({_DOC} ->> 'description', 1, 36) "
    f"WHERE kind = 'image' AND jsonb_typeof({_DOC} -> 'owner') IS NULL "
    f"AND coalesce({_DOC} ->> 'alias', '') = '' "
    f"AND ({_DOC} ->> 'description') ~ '^{_UUID_REGEX}/'",
)


def upgrade() -> None:
    op.add_column("objects", sa.Column("owner_id", sa.Text(), nullable=True))
    dialect = op.get_bind().dialect.name
    for statement in _SQLITE if dialect == "sqlite" else _POSTGRESQL:
        op.execute(statement)
    op.create_index("objects_owner", "objects", ["kind", "owner_id"],
                    sqlite_where=sa.text("owner_id IS NOT NULL"),
                    postgresql_where=sa.text("owner_id IS NOT NULL"))
    op.execute("UPDATE meta SET value='7' WHERE key='schema'")


def downgrade() -> None:
    raise NotImplementedError("the state schema only moves forward; restore a backup")
