"""PUT: what an update asks to change, compared with what the API shows.

oVirt's update services take a partial entity: only the elements sent change.
Clients send more than they change (Ansible's modules send every element their
parameters name; the SDK's examples send back an object they read, read-only
elements included), so an update handler compares the body with the entity as
it is shown now (:func:`asked`), applies the changes it supports, and refuses
the rest with 501 naming them (:func:`refuse`): an element that is not really
stored must never be answered 200 and silently dropped, or a client's next run
would change it again.
"""

from __future__ import annotations

from typing import Any

from virtplane.errors import InvalidInput
from virtplane_api_ovirt import parse
from virtplane_api_ovirt.base import Call
from virtplane_api_ovirt.extras import KEYS
from virtplane_api_ovirt.faults import ApiError
from virtplane_api_ovirt.render import Node

#: elements a client may send back but never changes (status is the server's)
READ_ONLY = frozenset({"id", "href", "link", "actions", "status", "status_detail",
                       "external_status", "creation_time", "date", "next_run_configuration_exists",
                       "run_once", "stop_reason", "stop_time", "start_time", "summary",
                       "supported_versions", "image_id", "actual_size", "total_size",
                       "update_available", "kdump_status", "snapshot_status", "snapshot_type",
                       "storage_format", "master", "committed", "available", "used",
                       "origin", "protocol",
                       # write-only: never shown, so never compared (a host's root
                       # password is not used: libvirt reaches hosts by key)
                       "root_password", "password"})


def _text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


def _same(want: str, have: Any) -> bool:
    got = _text(have)
    if want.strip().lower() in ("true", "false") and got in ("true", "false"):
        return want.strip().lower() == got
    if want == got:
        return True
    try:
        return int(want) == int(got)
    except ValueError:
        return False


def asked(body: Node, current: Node, prefix: str = "") -> dict[str, str]:
    """Dotted path -> wanted text, for every scalar in ``body`` that differs from
    ``current``. References (an element ``current`` shows with an ``href``) and lists
    of objects are the handler's to compare; lists of plain values are compared as sets."""
    out: dict[str, str] = {}
    for key, want in body.items():
        if key in READ_ONLY:
            continue
        have = current.get(key)
        path = prefix + key
        if isinstance(want, dict):
            if isinstance(have, dict) and "href" in have:
                continue
            out.update(asked(want, have if isinstance(have, dict) else {}, path + "."))
        elif isinstance(want, list):
            plain = [w for w in want if not isinstance(w, dict)]
            if plain and len(plain) == len(want):
                have_list = have if isinstance(have, list) else []
                if sorted(str(w).lower() for w in plain) != sorted(
                        _text(h).lower() for h in have_list if not isinstance(h, dict)):
                    out[path] = ",".join(str(w) for w in plain)
        elif not _same(str(want), have):
            out[path] = str(want)
    return out


def take(changes: dict[str, str], *paths: str) -> dict[str, str]:
    """Remove and return the changes at ``paths`` (what a handler applies)."""
    return {p: changes.pop(p) for p in paths if p in changes}


def extra_fields(source: dict[str, str], *keys: str) -> dict[str, str]:
    """Remove and return the attributes the API keeps itself (:mod:`.extras`) from
    ``source`` (default: description and comment), checked before anything is written."""
    out = take(source, *(keys or ("description", "comment")))
    for key, value in out.items():
        if len(value) > KEYS[key]:
            raise InvalidInput(f"<{key}> is longer than {KEYS[key]} characters")
    return out


def given(body: Node, *keys: str) -> dict[str, str]:
    """The attributes ``keys`` a create request names (for :func:`extra_fields`)."""
    return {k: v for k in keys if (v := parse.text(body, k))}


def apply_extras(call: Call, object_id: str, extra: dict[str, str]) -> None:
    """Store what :func:`extra_fields` took, for ``object_id`` (one write)."""
    call.api.extras.update(object_id, extra)


def refuse(what: str, changes: dict[str, str]) -> None:
    """501 for the changes left over (those virtplane cannot store)."""
    if changes:
        raise ApiError(501, f"changing a {what}'s {', '.join(sorted(changes))} is not "
                            "supported by virtplane (see docs/api-ovirt.md, compatibility "
                            "table); send only what you change")


def same_ref(body: Node, key: str, current_id: str | None, resolve: Any) -> bool:
    """Whether the reference ``key`` in ``body`` (by id or name) is ``current_id``
    (absent counts as the same); ``resolve(name_or_id)`` finds the object's id."""
    wanted = parse.ref(body, key)
    if wanted is None or wanted == current_id:
        return True
    return bool(resolve(wanted) == current_id)
