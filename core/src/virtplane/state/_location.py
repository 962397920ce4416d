"""Where the state store is: a path, or a URL whose scheme names the backend.

``[state] url`` in the configuration or ``VIRTPLANE_STATE`` hold it. A plain path
and ``sqlite:///path`` are the embedded SQLite file (in the core); any other scheme
is looked up in the entry-point group :data:`BACKEND_GROUP`, keyed by the scheme
(``postgresql = "virtplane_state_postgresql:PostgresStore"``). The scan of installed
distributions happens only for such a URL, so commands on the default store never
pay for it, and the core depends on no database client at all.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtplane.errors import ConfigError, StateError

if TYPE_CHECKING:
    from virtplane.state._core import StoreCore

#: entry-point group of state backends: scheme -> StateStore subclass
BACKEND_GROUP = "virtplane.state"

#: the distribution that serves ``postgresql://`` (named in the error when missing)
_KNOWN = {"postgresql": "virtplane-state-postgresql",
          "postgres": "virtplane-state-postgresql"}

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

#: the backends in the core, by scheme: a function that imports and returns the class.
#: The package face registers SQLite's (:func:`register_builtin`), so this module, which
#: every backend imports, never imports a backend back.
_BUILTIN: dict[str, Callable[[], type[StoreCore]]] = {}


def register_builtin(scheme: str, load: Callable[[], type[StoreCore]]) -> None:
    """Serve ``scheme`` by the class ``load()`` returns, without an entry-point scan."""
    _BUILTIN[scheme] = load


def scheme_of(location: str | os.PathLike[str]) -> str:
    """``sqlite`` for a path or ``sqlite:`` URL, else the URL's scheme, lower case.

    A ``+driver`` suffix (SQLAlchemy style, ``postgresql+psycopg://``) is dropped.
    """
    if isinstance(location, Path):
        return "sqlite"
    match = _SCHEME.match(os.fspath(location))
    if match is None:
        return "sqlite"
    return match.group(1).lower().partition("+")[0]


def redact(location: str | os.PathLike[str]) -> str:
    """The location with a URL's password replaced by ``***`` (for messages and logs)."""
    text = os.fspath(location)
    if scheme_of(text) == "sqlite":
        return text
    parts = urllib.parse.urlsplit(text)
    if parts.password is None:
        return text
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


#: what ``Path("postgresql://u@h/db")`` makes of a URL: ``postgresql:/u@h/db``
_FOLDED_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/[^/]")


def path_of(location: str | os.PathLike[str]) -> Path:
    """The file a plain path or an ``sqlite:///path`` URL names.

    :raises StateError: the location is a URL that went through :class:`pathlib.Path`,
        which folds ``//`` into ``/``: opening it as a file would quietly create a
        SQLite store in a folder named after the URL's scheme.
    """
    text = os.fspath(location)
    if _FOLDED_URL.match(text) and not text.startswith("sqlite:"):
        scheme = text.partition(":")[0]
        raise StateError(f"state location '{scheme}:/...' is a {scheme}:// URL whose '//' was folded "
                         "by a file path; pass the URL as a string (the caller treated it as "
                         "a path)")
    if text.startswith("sqlite:"):
        parsed = urllib.parse.urlsplit(text)
        if parsed.netloc or not parsed.path or parsed.query:
            raise StateError(f"state URL {text!r} is not valid: use sqlite:///absolute/path "
                             "(three slashes, no host, no options) or a plain path")
        # sqlite:///abs/path, or SQLAlchemy's sqlite:////abs/path: the same file
        return Path("/" + urllib.parse.unquote(parsed.path).lstrip("/"))
    return Path(text)


def backend_class(location: str | os.PathLike[str]) -> type[StoreCore]:
    """The StateStore subclass that serves ``location``.

    :raises StateError: no installed distribution serves the URL's scheme (naming the
        one that would), or its entry point does not load.
    """
    scheme = scheme_of(location)
    builtin = _BUILTIN.get(scheme)
    if builtin is not None:
        return builtin()
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group=BACKEND_GROUP)}
    ep = found.get(scheme) or (found.get("postgresql") if scheme == "postgres" else None)
    if ep is None:
        hint = (f"install {_KNOWN[scheme]}" if scheme in _KNOWN
                else "known schemes: " + ", ".join(["sqlite", *sorted(found)]))
        raise StateError(f"no state backend for {scheme}:// URLs ({redact(location)}): {hint}")
    try:
        cls: Any = ep.load()
    except Exception as exc:  # noqa: BLE001 - a broken backend is reported, not a traceback
        raise StateError(f"state backend {scheme!r} ({BACKEND_GROUP} entry point {ep.value}) "
                         f"failed to load: {type(exc).__name__}: {exc}") from None
    from virtplane.state._core import StoreCore

    if not (isinstance(cls, type) and issubclass(cls, StoreCore)):
        raise StateError(f"state backend {scheme!r} ({ep.value}) is not a StateStore subclass")
    return cls


def validate(value: object, source: str) -> str:
    """Check a ``[state] url`` value from ``source`` (a file or a variable name).

    Accepts a path, ``sqlite:///path`` or ``<scheme>://...`` with a host or a path;
    the backend itself is only looked for when the store is opened.

    :raises ConfigError: naming the source, the value and what is allowed.
    """
    allowed = ("a path, sqlite:///path/state.db or "
               "postgresql://user@host[:port]/database")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{source}: state.url = {value!r} is not allowed; it must be "
                          f"{allowed}")
    if "\0" in value or "\n" in value:
        raise ConfigError(f"{source}: state.url contains a control character; it must be "
                          f"{allowed}")
    scheme = scheme_of(value)
    if scheme == "sqlite":
        if value.startswith("sqlite:"):
            try:
                path_of(value)
            except StateError as exc:
                raise ConfigError(f"{source}: {exc}") from None
        elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", value) and not value.startswith("/"):
            raise ConfigError(f"{source}: state.url = {value!r} is not a URL virtplane "
                              f"reads (scheme://...); it must be {allowed}")
        return value
    parts = urllib.parse.urlsplit(value)
    if not (parts.hostname or parts.path.strip("/") or parts.query):
        raise ConfigError(f"{source}: state.url = {redact(value)!r} names no server and no "
                          f"database; it must be {allowed}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ConfigError(f"{source}: state.url = {redact(value)!r} has an invalid port"
                          ) from None
    return value


def location_of(config: Any) -> str:
    """The state location a loaded :class:`~virtplane.config.Config` names.

    ``[state] url`` when the configuration has one, else ``[state] path`` (which
    ``VIRTPLANE_STATE`` sets, possibly to a URL). The raw string is used: a URL must
    not go through :class:`pathlib.Path`, which would fold its ``//``.
    """
    values = config.values.get("state", {})
    url = values.get("url")
    if url:
        return str(url)
    return str(values["path"])


def local_anchor(location: str | os.PathLike[str]) -> Path:
    """The local file a store's neighbours are named after (endpoint file, saved images,
    the API's users and CA): the SQLite file itself, or, for a server URL, a per-URL
    folder under ``$XDG_DATA_HOME/virtplane/remote/`` (named by a hash of the URL
    without its password, so the password never lands in a path).
    """
    if scheme_of(location) == "sqlite":
        return path_of(location).absolute()
    import hashlib

    from virtplane.paths import data_dir

    digest = hashlib.sha256(redact(location).encode()).hexdigest()[:16]
    return data_dir() / "remote" / f"{scheme_of(location)}-{digest}" / "state"
