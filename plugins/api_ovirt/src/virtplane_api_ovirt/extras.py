"""oVirt attributes virtplane's model has no field for: the ``description`` and
``comment`` of clusters, hosts, storage domains and templates, the ``comment`` of
data centers and VMs, a template's cluster, the template a VM was made from and
how a VM's vCPUs are split into sockets, cores and threads; and tags (``/tags``)
and users' SSH public keys, which virtplane has no notion of.

Clients set them and compare them on their next run (Ansible's modules send
``description`` when a playbook names one, and update the object when it differs),
so the API keeps them itself, in a small SQLite file beside the state
(:data:`EXTRAS_FILE`), read once into memory. A value belongs to an object id;
the ids are UUIDs, so a removed object's values are never shown for another.
Listed in docs/api-ovirt.md under "changes needed in the core": when the model
grows these fields, this file goes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

EXTRAS_FILE = "api-extras.db"
#: the attributes kept here, and their longest accepted value (``cluster``: a
#: template's cluster id; ``template``: the template a VM was made from;
#: ``topology``: a VM's ``sockets:cores:threads``, whose product is its vCPUs;
#: ``guaranteed``: the memory (bytes) a client asked to be guaranteed to a VM)
KEYS = {"description": 4000, "comment": 4000, "cluster": 36, "template": 36,
        "topology": 32, "guaranteed": 20}


@dataclass(frozen=True)
class Tag:
    id: str
    name: str
    description: str
    parent_id: str


class Extras:
    """(object id, attribute) -> text, persisted; thread-safe."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], str] = {}
        self._conn: sqlite3.Connection | None = None
        self._tags: dict[str, Tag] = {}
        #: key id -> (user id, the key's line)
        self._keys: dict[str, tuple[str, str]] = {}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=10, check_same_thread=False,
                                         isolation_level=None)
            self._conn.execute("CREATE TABLE IF NOT EXISTS extras (object_id TEXT NOT NULL, "
                               "key TEXT NOT NULL, value TEXT NOT NULL, "
                               "PRIMARY KEY (object_id, key))")
            self._conn.execute("CREATE TABLE IF NOT EXISTS tags (id TEXT PRIMARY KEY, "
                               "name TEXT NOT NULL UNIQUE, description TEXT NOT NULL, "
                               "parent_id TEXT NOT NULL)")
            self._conn.execute("CREATE TABLE IF NOT EXISTS ssh_keys (id TEXT PRIMARY KEY, "
                               "user_id TEXT NOT NULL, content TEXT NOT NULL)")
            for row in self._conn.execute("SELECT id, user_id, content FROM ssh_keys"):
                self._keys[row[0]] = (row[1], row[2])
            for object_id, key, value in self._conn.execute(
                    "SELECT object_id, key, value FROM extras"):
                self._values[(object_id, key)] = value
            for row in self._conn.execute("SELECT id, name, description, parent_id FROM tags"):
                self._tags[row[0]] = Tag(*row)

    def get(self, object_id: str, key: str) -> str:
        return self._values.get((object_id, key), "")

    def set(self, object_id: str, key: str, value: str) -> None:
        if key not in KEYS:
            raise KeyError(key)
        with self._lock:
            if self._conn is not None:
                if value:
                    self._conn.execute("INSERT OR REPLACE INTO extras VALUES (?, ?, ?)",
                                       (object_id, key, value))
                else:
                    self._conn.execute("DELETE FROM extras WHERE object_id = ? AND key = ?",
                                       (object_id, key))
            if value:
                self._values[(object_id, key)] = value
            else:
                self._values.pop((object_id, key), None)

    def forget(self, object_id: str) -> None:
        """Drop a removed object's values."""
        with self._lock:
            if self._conn is not None:
                self._conn.execute("DELETE FROM extras WHERE object_id = ?", (object_id,))
            for key in [k for k in self._values if k[0] == object_id]:
                del self._values[key]

    # ------------------------------------------------------------------ tags

    def tags(self) -> list[Tag]:
        return sorted(self._tags.values(), key=lambda t: t.name)

    def put_tag(self, tag: Tag) -> None:
        """Add or replace a tag (names are unique: the caller checks)."""
        with self._lock:
            if self._conn is not None:
                self._conn.execute("INSERT OR REPLACE INTO tags VALUES (?, ?, ?, ?)",
                                   (tag.id, tag.name, tag.description, tag.parent_id))
            self._tags[tag.id] = tag

    def drop_tags(self, ids: Collection[str]) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.executemany("DELETE FROM tags WHERE id = ?", [(i,) for i in ids])
            for tag_id in ids:
                self._tags.pop(tag_id, None)

    # ------------------------------------------------------------- SSH keys

    def ssh_keys(self, user_id: str) -> list[tuple[str, str]]:
        """(key id, content) of a user's keys."""
        return sorted((k, c) for k, (u, c) in self._keys.items() if u == user_id)

    def put_ssh_key(self, key_id: str, user_id: str, content: str) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.execute("INSERT OR REPLACE INTO ssh_keys VALUES (?, ?, ?)",
                                   (key_id, user_id, content))
            self._keys[key_id] = (user_id, content)

    def drop_ssh_key(self, key_id: str) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.execute("DELETE FROM ssh_keys WHERE id = ?", (key_id,))
            self._keys.pop(key_id, None)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
