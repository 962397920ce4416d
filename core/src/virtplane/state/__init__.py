"""The state store: model objects, jobs, events and leases, behind one interface.

``StateStore(location)`` opens the backend the location names:

- a plain path or ``sqlite:///path``: the embedded SQLite file (the default, in the
  core, through the standard library; see :mod:`virtplane.state._sqlite`);
- ``postgresql://user@host/db``: the ``virtplane-state-postgresql`` plugin, found
  through the entry-point group ``virtplane.state`` keyed by the URL's scheme
  (see :mod:`virtplane.state._location`).

Several writers share one store (the CLI, engines, a REST API, libvirt event
threads), so updates are compare-and-set: every row has a version, incremented by
each write, and every object read from the store remembers it in its
``revision`` attribute (see :mod:`virtplane.model` for why an attribute and not a
side table). :meth:`StateStore.update` refuses a copy whose row changed since it
was read with :class:`~virtplane.errors.Conflict`; :meth:`StateStore.modify`
re-reads, changes and writes in one transaction, which is what a writer that does
not care about the previous value should use.

Several engines share the hosts through leases with epochs, and fence their
writes with them (:meth:`StateStore.fenced`; see :mod:`virtplane.state._leases`).

Every row is untrusted input (another writer, a newer or broken virtplane, an
administrator's edit or restore may have put it there): a row that cannot be read
as its kind raises :class:`UnreadableRow` (a ``StateError`` naming the row and
pointing at ``virtplane state check``) when that object is read, is left out of
listings with a warning, and is never written over (see :meth:`StateStore.list`).

The store records its schema version; one written by a newer virtplane is refused
and an older one is migrated (SQLite: in place when opened; PostgreSQL: with
``virtplane state migrate``, through Alembic).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# light: what finding and naming a store needs (the CLI's plugins commands and the
# Manager use these without paying for the model and attrs)
from virtplane.state._location import (
    BACKEND_GROUP,
    backend_class,
    local_anchor,
    location_of,
    redact,
    scheme_of,
    validate,
)
from virtplane.state._location import register_builtin as _register_builtin

if TYPE_CHECKING:
    from virtplane.state._core import StoreCore


def _sqlite_store() -> type[StoreCore]:
    """The embedded SQLite backend's class, imported when a store is first opened."""
    from virtplane.state._sqlite import SQLiteStore

    return SQLiteStore


# the face, which every import of the package runs first, names the built-in backend,
# so the location module never imports a backend (they all import it)
_register_builtin("sqlite", _sqlite_store)

if TYPE_CHECKING:
    from virtplane.state._base import StateStore
    from virtplane.state._core import (
        MODIFY_ATTEMPTS,
        SCHEMA_VERSION,
        Params,
        Row,
        UnreadableRow,
        kind_of,
    )
    from virtplane.state._leases import LEADER, Lease

#: the rest, imported on first use (they import the model)
_LAZY = {"StateStore": "_base", "kind_of": "_core", "SCHEMA_VERSION": "_core",
         "MODIFY_ATTEMPTS": "_core", "LEADER": "_leases", "Lease": "_leases",
         "UnreadableRow": "_core",
         # for backends: what a statement's parameters and result rows are typed as
         "Params": "_core", "Row": "_core"}

__all__ = [
    "BACKEND_GROUP",
    "LEADER",
    "MODIFY_ATTEMPTS",
    "SCHEMA_VERSION",
    "Lease",
    "Params",
    "Row",
    "StateStore",
    "UnreadableRow",
    "backend_class",
    "kind_of",
    "local_anchor",
    "location_of",
    "migrate",
    "open_store",
    "redact",
    "scheme_of",
    "validate",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'virtplane.state' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"virtplane.state.{module}"), name)
    globals()[name] = value
    return value


def open_store(location: str | os.PathLike[str], *, readonly: bool | None = None,
               strict: bool = True) -> StateStore:
    """Open the store at ``location`` (the same as ``StateStore(location, ...)``)."""
    from virtplane.state._base import StateStore

    return StateStore(location, readonly=readonly, strict=strict)


def migrate(location: str | os.PathLike[str]) -> tuple[int, int]:
    """Upgrade the store at ``location`` to :data:`SCHEMA_VERSION`: (before, after).

    :raises StateError: it cannot be opened, or was written by a newer virtplane.
    """
    cls: Any = backend_class(location)
    result: tuple[int, int] = cls.upgrade(location)
    return result
