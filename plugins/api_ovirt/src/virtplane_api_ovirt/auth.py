"""Sessions (bearer tokens) and the user file's compatibility face.

**Where users live.** With groups, roles and permissions
(:mod:`virtplane_api_ovirt.authz`, docs/permissions.md): in ``api-users.db``
beside a SQLite state file, or in the state's PostgreSQL database, which every
engine serving the API shares. :class:`UserStore` is the small face the 0.1 API
had over that file (``set_password``, ``verify``, ``list``, ``remove``), kept
for embedders and ``virtplane-api``; logins with lockout, directories and
checks go through :class:`~virtplane_api_ovirt.authz.Authz`.

**Tokens.** The SDK asks ``/ovirt-engine/sso/oauth/token`` for a token once and
sends it as ``Authorization: Bearer``; when a request answers 401 it asks for a
new one and replays the request. So a token simply expires (default one hour)
and the client logs in again; tokens are random (256 bits). On SQLite they are
held in this process's memory only: a restarted API makes every client log in
again, once. On PostgreSQL (:meth:`Sessions.share`) they are rows of
``authz_sessions`` holding the token's SHA-256 (never the token), its user and
its expiry, so a token issued by one engine is good at every other behind the
same load balancer, and survives a restart; expired rows are purged now and
then. A logout revokes the token at once, everywhere; a user removed or locked
since the token was issued is refused at its next request.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from virtplane_api_ovirt.authz import ADMIN, USERS_FILE, Authz, LoginRefused
from virtplane_api_ovirt.authz.store import INTERNAL as DOMAIN
from virtplane_api_ovirt.authz.store import AuthzStore, full_name

#: seconds between two purges of expired sessions from a shared table
PURGE_EVERY = 300.0

__all__ = ["ADMIN", "DOMAIN", "USERS_FILE", "Session", "Sessions", "UserStore", "full_name"]


class UserStore:
    """Local users and their argon2 password hashes in ``path`` (SQLite, mode 0600),
    or in a given store (:meth:`for_state`: the shared database of a PostgreSQL
    state store)."""

    def __init__(self, path: str | os.PathLike[str], store: AuthzStore | None = None
                 ) -> None:
        self.path = Path(path)
        self.authz = Authz(store if store is not None else self.path)

    @classmethod
    def for_state(cls, location: str | os.PathLike[str],
                  path: str | os.PathLike[str] | None = None) -> UserStore:
        """The users of the state store at ``location``: the database of a PostgreSQL
        store (``path``: an older file to copy in once), else the file ``path``
        (default: beside the state file)."""
        from virtplane.state import local_anchor

        if path is None:
            path = local_anchor(location).parent / USERS_FILE
        return cls(path, AuthzStore.for_state(location, path))

    def set_password(self, user: str, password: str) -> None:
        """Create the user or change its password."""
        self.authz.set_password(user, password)

    def remove(self, user: str) -> None:
        self.authz.store.remove_user(user)

    def list(self) -> list[str]:
        if not self.authz.store.shared and not self.path.exists():
            return []
        return sorted(self.authz.store.index().users)

    def verify(self, user: str, password: str) -> str | None:
        """The user's full name when the password is right, else None (failures count
        towards the lockout, as any login)."""
        try:
            return self.authz.login(user, password).name
        except LoginRefused:
            return None


@dataclass(frozen=True)
class Session:
    user: str
    expires: float


class Sessions:
    """Bearer tokens issued by the SSO endpoint, with an absolute lifetime: in memory,
    or in a shared store's ``authz_sessions`` table once :meth:`share` was called."""

    def __init__(self, lifetime: float = 3600.0) -> None:
        self.lifetime = lifetime
        self._tokens: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._store: AuthzStore | None = None
        self._purged = 0.0

    def share(self, store: AuthzStore) -> None:
        """Keep the tokens in ``store`` when several engines share it (PostgreSQL);
        a store of one engine (SQLite) leaves them in memory."""
        if store.shared:
            self._store = store

    @property
    def shared(self) -> bool:
        return self._store is not None

    def issue(self, user: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(user, now + self.lifetime)
        if self._store is not None:
            self._store.query("INSERT INTO {sessions}(token_hash, user_name, expires) "
                              "VALUES (?, ?, ?)", (_digest(token), user, session.expires))
            if now - self._purged > PURGE_EVERY:
                self._purged = now
                self._store.query("DELETE FROM {sessions} WHERE expires <= ?", (now,))
            return token, session
        with self._lock:
            for old in [t for t, s in self._tokens.items() if s.expires <= now]:
                del self._tokens[old]
            self._tokens[token] = session
        return token, session

    def check(self, token: str) -> Session | None:
        """The live session of a token, or None (unknown, revoked or expired)."""
        if self._store is not None:
            # with the permission tables' version, in one round trip (AuthzStore.session)
            found = self._store.session(_digest(token), time.time())
            return Session(*found) if found is not None else None
        session = self._tokens.get(token)
        if session is None:
            return None
        if session.expires <= time.time():
            with self._lock:
                self._tokens.pop(token, None)
            return None
        return session

    def revoke(self, token: str) -> Session | None:
        """Forget a token (logout); its session, or None when it was not live."""
        if self._store is not None:
            rows = self._store.query("DELETE FROM {sessions} WHERE token_hash=? "
                                     "RETURNING user_name, expires", (_digest(token),))
            if not rows or float(rows[0][1]) <= time.time():
                return None
            return Session(str(rows[0][0]), float(rows[0][1]))
        with self._lock:
            return self._tokens.pop(token, None)

    def __len__(self) -> int:
        if self._store is not None:
            rows = self._store.query("SELECT COUNT(*) FROM {sessions} WHERE expires > ?",
                                     (time.time(),))
            return int(rows[0][0])
        return len(self._tokens)


def _digest(token: str) -> str:
    """What a shared table keeps of a token: its SHA-256 (a token is 256 random bits,
    so a plain hash is enough; a leaked table gives no usable token)."""
    return hashlib.sha256(token.encode()).hexdigest()
