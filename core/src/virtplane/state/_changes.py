"""What :meth:`StateStore.changes <virtplane.state.StateStore.changes>` answers.

A cache of one kind's rows (the engine's VMs) asks for the rows that changed since
its previous read instead of every row's version: the answer costs what changed, not
what is stored. The cursor is opaque to the caller; the backend decides what its
position means (a SQLite store's change counter; a PostgreSQL store's oldest
transaction still running at the read, so that a transaction that commits after a
read with a higher-numbered one is not missed).
"""

from __future__ import annotations

from typing import NamedTuple


class ChangeCursor(NamedTuple):
    """Where a reader of one kind's changes stands (give it back unchanged)."""

    #: the kind read (a cursor of another kind is refused)
    kind: str
    #: rows whose ``change_seq`` is above this have changed since
    position: int
    #: the kind's delete count at the read
    deletions: int


class Changes(NamedTuple):
    """One read of :meth:`StateStore.changes`."""

    #: id -> current revision of every row of the kind that changed since the cursor
    #: (it may name rows that did not change: a caller compares revisions)
    versions: dict[str, int]
    #: ``versions`` holds every row of the kind (a first read, or rows were deleted
    #: since the cursor): whatever the caller holds that it does not name is gone
    complete: bool
    #: the cursor for the next read
    cursor: ChangeCursor
