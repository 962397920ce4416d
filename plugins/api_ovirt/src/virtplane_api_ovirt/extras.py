"""oVirt attributes virtplane's model has no field for: the ``description`` and
``comment`` of clusters, hosts, storage domains, templates and disks, the
``comment`` of data centers and VMs, a template's cluster, the template a VM was
made from, how a VM's vCPUs are split into sockets, cores and threads and the
memory guaranteed to it; and tags (``/tags``) and users' SSH public keys, which
virtplane has no notion of.

Clients set them and compare them on their next run (Ansible's modules send
``description`` when a playbook names one, and update the object when it differs),
so the API keeps them, in the state store as annotations
(:class:`virtplane.model.Annotation`, kind ``annotation``): they live wherever the
state lives (SQLite or PostgreSQL), every engine serving the API over the same store
sees the same values, and ``virtplane state copy`` carries them. The records:

- namespace ``ovirt``, target an object's id: its attributes (:data:`KEYS`);
- namespace ``ovirt.tag``, target the tag's id: ``name``, ``description``, ``parent``;
- namespace ``ovirt.ssh-keys``, target a user's id: key id -> the key's line.

Every write is a compare-and-set through :meth:`StateStore.modify`, so two engines
changing one object's attributes at once both land. Reads come from a mirror in
memory, brought up to date once per request (:meth:`Extras.request`: the ids and
revisions of the annotations, then only the rows that moved) and at once by this
engine's own writes.

Removing an object through the API drops its attributes (:meth:`Extras.forget`).
One removed otherwise (the CLI, another frontend) leaves them behind: they are never
shown (ids are UUIDs, never reused) and the next start of the API removes them
(:meth:`Extras.prune`). A user's SSH keys go when the API removes the user; those
of a user removed with the CLI stay, unreachable.

An ``api-extras.db`` file beside the state (where earlier versions kept all this,
per engine) is moved into the store once when the API starts (:meth:`Extras.migrate`)
and renamed ``api-extras.db.migrated``.

Listed in docs/api-ovirt.md under "changes needed in the core": when the model
grows these fields, this file goes.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from virtplane import model
from virtplane.errors import AlreadyExists, Conflict, NotFound, StateError

if TYPE_CHECKING:
    from virtplane.state import StateStore

log = logging.getLogger("virtplane.api.ovirt")

#: the file earlier versions kept these in, beside the state file (migrated once)
EXTRAS_FILE = "api-extras.db"
#: the annotation namespaces of this API
ATTRS_NS = "ovirt"
TAGS_NS = "ovirt.tag"
SSH_KEYS_NS = "ovirt.ssh-keys"
#: the attributes kept here, and their longest accepted value (``cluster``: a
#: template's cluster id; ``template``: the template a VM was made from;
#: ``topology``: a VM's ``sockets:cores:threads``, whose product is its vCPUs;
#: ``guaranteed``: the memory (bytes) a client asked to be guaranteed to a VM)
KEYS = {"description": 4000, "comment": 4000, "cluster": 36, "template": 36,
        "topology": 32, "guaranteed": 20}
#: how often a write is retried when another writer removed or added the record
#: between its read and its write
_ATTEMPTS = 5


@dataclass(frozen=True)
class Tag:
    id: str
    name: str
    description: str
    parent_id: str


class Extras:
    """(object id, attribute) -> text, tags and SSH keys, kept in the state store;
    thread-safe (see the module doc)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        #: annotation id -> the annotation as last read or written
        self._mirror: dict[str, model.Annotation] = {}
        #: held while the mirror is refreshed or written through (one at a time, so
        #: an older read never replaces a newer write)
        self._io = threading.Lock()
        #: per thread: "stale" or "fresh" inside a request, absent outside one
        self._local = threading.local()
        self.refresh()

    # -------------------------------------------------------------- freshness

    def refresh(self) -> None:
        """Bring the mirror up to date with the store: read the annotations' ids and
        revisions, then only those that moved."""
        with self._io:
            versions = self.store.versions(model.Annotation)
            mirror = self._mirror
            for ann_id, revision in versions.items():
                held = mirror.get(ann_id)
                if held is not None and held.revision == revision:
                    continue
                try:
                    mirror[ann_id] = self.store.get(model.Annotation, ann_id)
                except NotFound:
                    mirror.pop(ann_id, None)  # removed since versions() was read
            for gone in set(mirror) - set(versions):
                del mirror[gone]

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """One API request: the mirror is refreshed at its first read, so it sees
        every write committed before it began (through any engine)."""
        self._local.state = "stale"
        try:
            yield
        finally:
            self._local.state = None

    def _fresh(self) -> None:
        state = getattr(self._local, "state", None)
        if state == "fresh":
            return
        self.refresh()  # outside a request: every read is fresh
        if state == "stale":
            self._local.state = "fresh"

    def _values(self, namespace: str, target_id: str) -> dict[str, str]:
        held = self._mirror.get(model.annotation_id(namespace, target_id))
        return held.values if held is not None else {}

    def _all(self, namespace: str) -> list[model.Annotation]:
        return [a for a in list(self._mirror.values()) if a.namespace == namespace]

    # ----------------------------------------------------------------- writes

    def _change(self, namespace: str, target_id: str,
                change: Callable[[dict[str, str]], object]) -> None:
        """Apply ``change`` to the values of (namespace, target) in the store, with
        compare-and-set; the record is created when missing and removed when empty."""
        name = f"{namespace}/{target_id}"
        ann_id = model.annotation_id(namespace, target_id)
        store = self.store
        last: Exception | None = None

        def apply(current: model.Annotation) -> None:
            change(current.values)

        with self._io:
            for _ in range(_ATTEMPTS):
                try:
                    written = store.modify(model.Annotation, name, apply)
                except NotFound:
                    values: dict[str, str] = {}
                    change(values)
                    if not values:
                        self._mirror.pop(ann_id, None)
                        return
                    written = model.Annotation(namespace, target_id, values)
                    try:
                        store.add(written)
                    except AlreadyExists as exc:  # another writer made it: modify that
                        last = exc
                        continue
                if not written.values:
                    try:
                        store.remove(model.Annotation, ann_id, revision=written.revision)
                    except NotFound:
                        pass
                    except Conflict as exc:  # changed since: look again
                        last = exc
                        continue
                    self._mirror.pop(ann_id, None)
                    return
                self._mirror[ann_id] = written
                return
        assert last is not None
        raise StateError(f"could not write the API's record {name}: it kept changing "
                         f"under other writers ({last})")

    def _drop(self, namespace: str, target_id: str) -> None:
        ann_id = model.annotation_id(namespace, target_id)
        with self._io:
            with contextlib.suppress(NotFound):
                self.store.remove(model.Annotation, ann_id)
            self._mirror.pop(ann_id, None)

    # ------------------------------------------------------------- attributes

    def get(self, object_id: str, key: str) -> str:
        self._fresh()
        return self._values(ATTRS_NS, object_id).get(key, "")

    def set(self, object_id: str, key: str, value: str) -> None:
        """Set one attribute ("" removes it)."""
        self.update(object_id, {key: value})

    def update(self, object_id: str, values: dict[str, str]) -> None:
        """Set several attributes of an object in one write ("" removes one)."""
        unknown = set(values) - set(KEYS)
        if unknown:
            raise KeyError(", ".join(sorted(unknown)))
        if not values:
            return

        def change(current: dict[str, str]) -> None:
            for key, value in values.items():
                if value:
                    current[key] = value
                else:
                    current.pop(key, None)

        self._change(ATTRS_NS, object_id, change)

    def forget(self, object_id: str) -> None:
        """Drop a removed object's values."""
        self._drop(ATTRS_NS, object_id)

    def prune(self) -> int:
        """Remove the attributes of objects no longer in the store (removed other than
        through this API); how many. Each is removed only at the revision read, so a
        record written meanwhile stays."""
        self.refresh()
        # annotations first, objects second: an object is always stored before its
        # attributes are written, so an annotation read here whose object exists is
        # seen with it
        held = self._all(ATTRS_NS)
        present = set(self.store.object_names())
        dropped = 0
        with self._io:
            for ann in held:
                if ann.target_id in present:
                    continue
                try:
                    self.store.remove(model.Annotation, ann.id, revision=ann.revision)
                except (NotFound, Conflict):
                    continue
                self._mirror.pop(ann.id, None)
                dropped += 1
        if dropped:
            log.info("removed the API's attributes of %d objects no longer stored", dropped)
        return dropped

    # ------------------------------------------------------------------ tags

    def tags(self) -> list[Tag]:
        self._fresh()
        found = [Tag(a.target_id, a.values.get("name", ""), a.values.get("description", ""),
                     a.values.get("parent", "")) for a in self._all(TAGS_NS)]
        return sorted(found, key=lambda t: (t.name, t.id))

    def put_tag(self, tag: Tag) -> None:
        """Add or replace a tag (names are unique: the caller checks)."""
        wanted = {"name": tag.name, "description": tag.description, "parent": tag.parent_id}

        def change(current: dict[str, str]) -> None:
            current.clear()
            current.update(wanted)

        self._change(TAGS_NS, tag.id, change)

    def drop_tags(self, ids: Collection[str]) -> None:
        for tag_id in ids:
            self._drop(TAGS_NS, tag_id)

    # ------------------------------------------------------------- SSH keys

    def ssh_keys(self, user_id: str) -> list[tuple[str, str]]:
        """(key id, content) of a user's keys."""
        self._fresh()
        return sorted(self._values(SSH_KEYS_NS, user_id).items())

    def put_ssh_key(self, key_id: str, user_id: str, content: str) -> None:
        for ann in self._all(SSH_KEYS_NS):  # a key belongs to one user
            if ann.target_id != user_id and key_id in ann.values:
                self._change(SSH_KEYS_NS, ann.target_id, lambda c: c.pop(key_id, None))
        self._change(SSH_KEYS_NS, user_id, lambda c: c.update({key_id: content}))

    def drop_ssh_key(self, key_id: str) -> None:
        self._fresh()
        for ann in self._all(SSH_KEYS_NS):
            if key_id in ann.values:
                self._change(SSH_KEYS_NS, ann.target_id, lambda c: c.pop(key_id, None))

    # ------------------------------------------------------------- migration

    def migrate(self, path: Path) -> bool:
        """Move an earlier version's ``api-extras.db`` at ``path`` into the store, then
        rename it ``*.migrated``; False when there is no such file.

        Values the store already has win (another engine's file may have been migrated
        first, or the API written since); a tag whose name another tag already has is
        left out, with a warning.

        :raises StateError: the file cannot be read (it stays where it is).
        """
        if not path.is_file():
            return False
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                tables = {r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                values = list(conn.execute("SELECT object_id, key, value FROM extras")) \
                    if "extras" in tables else []
                tags = list(conn.execute("SELECT id, name, description, parent_id FROM tags")) \
                    if "tags" in tables else []
                keys = list(conn.execute("SELECT id, user_id, content FROM ssh_keys")) \
                    if "ssh_keys" in tables else []
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StateError(f"cannot read {path} to move it into the state store: {exc}; "
                             "move it away to start without it") from None
        by_object: dict[str, dict[str, str]] = {}
        for object_id, key, value in values:
            if key in KEYS and value:
                by_object.setdefault(str(object_id), {})[str(key)] = str(value)
        for object_id, found in by_object.items():
            self._change(ATTRS_NS, object_id, _merge(found))
        self.refresh()
        names = {t.name: t.id for t in self.tags()}
        for tag_id, name, description, parent_id in tags:
            if names.get(name, tag_id) != tag_id:
                log.warning("%s: tag %r (%s) left out: the store has a tag of that name",
                            path, name, tag_id)
                continue
            if tag_id in {t.id for t in self.tags()}:
                continue
            self.put_tag(Tag(str(tag_id), str(name), str(description), str(parent_id)))
            names[name] = tag_id
        by_user: dict[str, dict[str, str]] = {}
        for key_id, user_id, content in keys:
            by_user.setdefault(str(user_id), {})[str(key_id)] = str(content)
        for user_id, found in by_user.items():
            self._change(SSH_KEYS_NS, user_id, _merge(found))
        done = path.with_name(path.name + ".migrated")
        path.rename(done)
        log.info("moved %s into the state store (%d objects' attributes, %d tags, %d SSH "
                 "keys); the file is now %s", path, len(by_object), len(tags), len(keys),
                 done.name)
        return True

    def close(self) -> None:
        """Nothing to close: the store is the Manager's."""


def _merge(found: dict[str, str]) -> Callable[[dict[str, str]], None]:
    """A change adding ``found``'s values the record does not have yet."""
    def change(current: dict[str, str]) -> None:
        for key, value in found.items():
            current.setdefault(key, value)
    return change
