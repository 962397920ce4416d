"""Alembic environment: migrate the connection virtplane hands over, or a URL given
with ``-x url=...`` (else ``VIRTPLANE_STATE``) when run from the alembic command."""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from virtplane_state_postgresql.migrations import LOCK_KEY, sync_version


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        sync_version(connection)
        context.run_migrations()


def _from_url() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "VIRTPLANE_STATE", "")
    if not url:
        raise SystemExit("give the store: alembic -x url=postgresql://... upgrade head")
    if "://" not in url:
        url = "sqlite:///" + os.path.abspath(url)
    elif url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


given = context.config.attributes.get("connection")
if given is None:
    _from_url()
else:
    _run(given)
