"""Users and sessions: ``admin@internal`` and local users (argon2 hashes), bearer tokens.

**Where users live.** In a small SQLite file of this plugin's own, beside the
state store (``api-users.db``), not in the state store. The store's public API
keeps model objects, jobs, events and leases; users are not a model kind, and
adding one is a core change that belongs to the roles-and-permissions issue.
A separate file also keeps password hashes out of everything that reads or
copies the state (``virtplane state`` dumps, PostgreSQL replicas); it is
created mode 0600. With a PostgreSQL state store the file's folder is
``--users`` (or the engine's data folder).

**Tokens.** The SDK asks ``/ovirt-engine/sso/oauth/token`` for a token once and
sends it as ``Authorization: Bearer``; when a request answers 401 it asks for a
new one and replays the request. So a token simply expires (default one hour)
and the client logs in again; tokens are random (256 bits) and held in this
process's memory only: a restarted API makes every client log in again, once.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from virtplane.errors import InvalidInput, NotFound

#: the administrator every installation has (its password is set at install)
ADMIN = "admin@internal"
#: the only directory (authz profile) so far; LDAP directories are a later issue
DOMAIN = "internal"
USERS_FILE = "api-users.db"


def full_name(user: str) -> str:
    """``admin`` -> ``admin@internal``; a name in another directory is refused."""
    user = user.strip()
    if "@" not in user:
        return f"{user}@{DOMAIN}"
    name, _, domain = user.rpartition("@")
    if not name or domain != DOMAIN:
        raise InvalidInput(f"user {user!r}: only the {DOMAIN!r} directory exists "
                           f"(name@{DOMAIN})")
    return user


class UserStore:
    """Local users and their argon2 password hashes in ``path`` (SQLite, mode 0600)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._hasher = PasswordHasher()
        self._lock = threading.Lock()
        # a hash to verify against when the user does not exist, so that a wrong
        # user name costs the same time as a wrong password
        self._dummy = self._hasher.hash(secrets.token_hex(16))

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute("CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, hash TEXT NOT "
                     "NULL, created REAL NOT NULL, updated REAL NOT NULL)")
        return conn

    def set_password(self, user: str, password: str) -> None:
        """Create the user or change its password."""
        name = full_name(user)
        if len(password) < 8:
            raise InvalidInput("a password needs at least 8 characters")
        digest = self._hasher.hash(password)
        now = time.time()
        with self._lock, self._connect() as conn:
            conn.execute("INSERT INTO users(name, hash, created, updated) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET hash=excluded.hash, "
                         "updated=excluded.updated", (name, digest, now, now))
        conn.close()

    def remove(self, user: str) -> None:
        name = full_name(user)
        with self._lock, self._connect() as conn:
            gone = conn.execute("DELETE FROM users WHERE name=?", (name,)).rowcount
        conn.close()
        if not gone:
            raise NotFound(f"no user {name!r}")

    def list(self) -> list[str]:
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute("SELECT name FROM users ORDER BY name").fetchall()
        conn.close()
        return [r[0] for r in rows]

    def verify(self, user: str, password: str) -> str | None:
        """The user's full name when the password is right, else None (always one
        argon2 verification, whether or not the user exists)."""
        try:
            name = full_name(user)
        except InvalidInput:
            return None
        stored = None
        if self.path.exists():
            with self._connect() as conn:
                row = conn.execute("SELECT hash FROM users WHERE name=?", (name,)).fetchone()
            conn.close()
            stored = row[0] if row else None
        try:
            self._hasher.verify(stored or self._dummy, password)
        except (VerificationError, InvalidHashError):
            return None
        if stored is None:
            return None
        if self._hasher.check_needs_rehash(stored):
            self.set_password(name, password)
        return name


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

    def revoke(self, token: str) -> bool:
        with self._lock:
            return self._tokens.pop(token, None) is not None

    def __len__(self) -> int:
        return len(self._tokens)
