"""Alembic scripts of the state schema, for PostgreSQL and SQLite alike.

Schema version N (the ``meta`` row ``schema``, which both backends record and the
core checks) is Alembic revision ``000N``; each script ends by writing its version
into ``meta``. ``meta`` stays the authority: before upgrading, :func:`sync_version`
makes ``alembic_version`` agree with it, so a SQLite file the core created or
migrated by itself (it never writes ``alembic_version``) upgrades from the right
place. On PostgreSQL the upgrade holds a transaction-level advisory lock, so two
engines starting on an empty database do not both create the tables (a
transaction-level lock ends with its transaction, which a pooler cannot split).

From the command line (the URL as for virtplane)::

    alembic -c /dev/null -x url=postgresql://... upgrade head   # or: virtplane state migrate
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from virtplane.errors import StateError

SCRIPTS = Path(__file__).resolve().parent

#: schema version -> Alembic revision id
REVISIONS: dict[int, str] = {1: "0001", 2: "0002", 3: "0003", 4: "0004", 5: "0005",
                             6: "0006", 7: "0007"}

#: any 64-bit number, the same for every virtplane: the key of the upgrade lock
LOCK_KEY = 0x76706C616E65  # "vplane"

#: Alembic's ``context`` and ``op`` are module globals: one upgrade per process at a time
_IN_PROCESS = threading.Lock()


def alembic_config(connection: sa.Connection) -> object:
    """An Alembic Config for these scripts that migrates over ``connection``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: sa.Connection, revision: str = "head") -> None:
    """Upgrade the database behind ``connection`` (not in autocommit mode) in one
    transaction (PostgreSQL; SQLite's ALTERs are transactional too)."""
    from alembic import command
    from alembic.config import Config

    cfg = alembic_config(connection)
    assert isinstance(cfg, Config)
    with _IN_PROCESS:
        command.upgrade(cfg, revision)


def sync_version(connection: sa.Connection) -> None:
    """Make ``alembic_version`` say what ``meta`` says (see the module doc)."""
    tables = set(sa.inspect(connection).get_table_names())
    if "meta" not in tables:
        return
    value = connection.execute(sa.text("SELECT value FROM meta WHERE key='schema'")).scalar()
    try:
        revision = REVISIONS[int(str(value))]
    except (KeyError, ValueError):
        raise StateError(f"the state store's schema version {value!r} is not one these "
                         f"migrations know ({', '.join(map(str, REVISIONS))}): upgrade "
                         "virtplane-state-postgresql") from None
    if "alembic_version" not in tables:
        connection.execute(sa.text(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"))
    current = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    if [r[0] for r in current] != [revision]:
        connection.execute(sa.text("DELETE FROM alembic_version"))
        connection.execute(sa.text("INSERT INTO alembic_version(version_num) VALUES (:v)"),
                           {"v": revision})
