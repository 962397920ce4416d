"""Schema version 8: ``objects.change_seq`` and ``deletions``, what changed since a read.

``StateStore.changes(cls, since)`` answers the rows of one kind that changed since a
reader's previous read, through the index ``objects_change`` on ``(kind,
change_seq)``, instead of every row's version; ``deletions`` counts each kind's
deletes (a reader that sees its count move reads every row: a row count alone misses
a delete and an insert). Triggers keep both, so every write path does.

On PostgreSQL ``change_seq`` is the writing transaction's id (``pg_current_xact_id()``):
a reader reads the rows at or above the oldest transaction still running at its
previous read, so a transaction that commits after one that began later is not
missed (a sequence number, taken before commit, would be). On SQLite, whose writers
are serialized, it is the next number of a counter in ``meta``. Rows stored before
count as changed at 0: a first read is a full one.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COMMON = (
    "CREATE INDEX objects_change ON objects(kind, change_seq)",
    "CREATE TABLE deletions (kind TEXT PRIMARY KEY, count BIGINT NOT NULL)",
)

# as the core's schema 7 to 8 migration (virtplane.state._sqlite)
_SQLITE = (
    "ALTER TABLE objects ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0",
    _COMMON[0],
    "CREATE TABLE deletions (kind TEXT PRIMARY KEY, count INTEGER NOT NULL)",
    "INSERT INTO meta(key, value) VALUES ('change_seq', '0')",
    "CREATE TRIGGER objects_inserted AFTER INSERT ON objects BEGIN "
    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'change_seq'; "
    "UPDATE objects SET change_seq = (SELECT CAST(value AS INTEGER) FROM meta "
    "WHERE key = 'change_seq') WHERE rowid = NEW.rowid; END",
    "CREATE TRIGGER objects_updated AFTER UPDATE ON objects "
    "WHEN NEW.change_seq IS OLD.change_seq BEGIN "
    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'change_seq'; "
    "UPDATE objects SET change_seq = (SELECT CAST(value AS INTEGER) FROM meta "
    "WHERE key = 'change_seq') WHERE rowid = NEW.rowid; END",
    "CREATE TRIGGER objects_deleted AFTER DELETE ON objects BEGIN "
    "INSERT INTO deletions(kind, count) VALUES (OLD.kind, 1) "
    "ON CONFLICT(kind) DO UPDATE SET count = count + 1; END",
)

_POSTGRESQL = (
    "ALTER TABLE objects ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0",
    *_COMMON,
    "CREATE FUNCTION objects_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "NEW.change_seq := CAST(CAST(pg_current_xact_id() AS text) AS bigint); "
    "RETURN NEW; END $$",
    "CREATE TRIGGER objects_changed BEFORE INSERT OR UPDATE ON objects "
    "FOR EACH ROW EXECUTE FUNCTION objects_changed()",
    "CREATE FUNCTION objects_deleted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO deletions(kind, count) VALUES (OLD.kind, 1) "
    "ON CONFLICT (kind) DO UPDATE SET count = deletions.count + 1; RETURN NULL; END $$",
    "CREATE TRIGGER objects_deleted AFTER DELETE ON objects "
    "FOR EACH ROW EXECUTE FUNCTION objects_deleted()",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in _SQLITE if dialect == "sqlite" else _POSTGRESQL:
        op.execute(statement)
    op.execute("UPDATE meta SET value='8' WHERE key='schema'")


def downgrade() -> None:
    raise NotImplementedError("the state schema only moves forward; restore a backup")
