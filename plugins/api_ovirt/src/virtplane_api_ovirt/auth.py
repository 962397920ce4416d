"""Sessions (bearer tokens) and the user file's compatibility face.

**Where users live.** In ``api-users.db`` beside the state store, with groups,
roles and permissions (:mod:`virtplane_api_ovirt.authz`, docs/permissions.md).
:class:`UserStore` is the small face the 0.1 API had over that file
(``set_password``, ``verify``, ``list``, ``remove``), kept for embedders and
``virtplane-api``; logins with lockout, directories and checks go through
:class:`~virtplane_api_ovirt.authz.Authz`.

**Tokens.** The SDK asks ``/ovirt-engine/sso/oauth/token`` for a token once and
sends it as ``Authorization: Bearer``; when a request answers 401 it asks for a
new one and replays the request. So a token simply expires (default one hour)
and the client logs in again; tokens are random (256 bits) and held in this
process's memory only: a restarted API makes every client log in again, once.
A logout revokes the token at once; a user removed or locked since the token
was issued is refused at its next request.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from virtplane_api_ovirt.authz import ADMIN, USERS_FILE, Authz, LoginRefused
from virtplane_api_ovirt.authz.store import INTERNAL as DOMAIN
from virtplane_api_ovirt.authz.store import full_name

__all__ = ["ADMIN", "DOMAIN", "USERS_FILE", "Session", "Sessions", "UserStore", "full_name"]


class UserStore:
    """Local users and their argon2 password hashes in ``path`` (SQLite, mode 0600)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.authz = Authz(self.path)

    def set_password(self, user: str, password: str) -> None:
        """Create the user or change its password."""
        self.authz.set_password(user, password)

    def remove(self, user: str) -> None:
        self.authz.store.remove_user(user)

    def list(self) -> list[str]:
        if not self.path.exists():
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
    """Bearer tokens issued by the SSO endpoint, in memory, with an absolute lifetime."""

    def __init__(self, lifetime: float = 3600.0) -> None:
        self.lifetime = lifetime
        self._tokens: dict[str, Session] = {}
        self._lock = threading.Lock()

    def issue(self, user: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(user, now + self.lifetime)
        with self._lock:
            for old in [t for t, s in self._tokens.items() if s.expires <= now]:
                del self._tokens[old]
            self._tokens[token] = session
        return token, session

    def check(self, token: str) -> Session | None:
        """The live session of a token, or None (unknown, revoked or expired)."""
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
        with self._lock:
            return self._tokens.pop(token, None)

    def __len__(self) -> int:
        return len(self._tokens)
