"""Passwords never travel inside URIs.

A URI is stored in the state store, printed by ``host list`` and ``storage
show``, written to event logs and quoted in error messages; a password in its
user part (``https://oracle:PW@host:8899``) would go everywhere the URI goes.
So URIs with a password are refused where they come in (host add, storage
domain connections), naming where the password belongs instead: each driver
reads it from a file (``password_file``) or an environment variable (see
docs/security.md, "Secrets"). :func:`redact_uri` is for showing URIs stored
before this rule.

Percent-decoding: a password is used exactly as read from its file or
variable; drivers send it themselves (e.g. as an HTTP ``Authorization``
header) instead of pasting it into a URI's user part, where the HTTP client
would percent-decode it (``%41`` would become ``A``).
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from virtplane.errors import InvalidInput

__all__ = ["check_connection", "password_in_uri", "redact_connection", "redact_uri",
           "refuse_password_in_uri"]


def _split(uri: str) -> SplitResult | None:
    try:
        return urlsplit(uri)
    except ValueError:  # not a URI at all (an unclosed IPv6 bracket ...): no password
        return None


def password_in_uri(uri: str) -> bool:
    """Whether ``uri`` carries a password (``scheme://user:password@host``)."""
    parts = _split(uri)
    return parts is not None and "@" in parts.netloc and parts.password is not None


def redact_uri(uri: str) -> str:
    """``uri`` with the password of its user part replaced by ``***`` (for display)."""
    parts = _split(uri)
    if parts is None or not password_in_uri(uri):
        return uri
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{hostport}").geturl()


def refuse_password_in_uri(uri: str, what: str, where: str) -> None:
    """Refuse a URI with a password, saying where the password goes instead.

    :param what: what the URI is (``"host URI"``, ``"array URI"``), for the message.
    :param where: where this driver reads its password from (its ``password_file``
        setting and environment variable).
    :raises InvalidInput: the URI is shown with the password replaced by ``***``.
    """
    if password_in_uri(uri):
        raise InvalidInput(
            f"{what} {redact_uri(uri)!r} carries a password; URIs are stored and shown "
            f"(host list, storage show, events), so a password never goes in one: "
            f"give the user only ({redact_uri(uri).replace(':***@', '@')!r}) and the "
            f"password through {where}")


#: connection keys that hold where a secret is, never the secret itself
_SECRET_REFERENCE_SUFFIXES = ("_file", "_env")
_SECRET_WORDS = ("password", "passwd", "secret", "token", "passphrase")


def _secret_key(key: str) -> bool:
    low = key.lower()
    return any(w in low for w in _SECRET_WORDS) and not low.endswith(
        _SECRET_REFERENCE_SUFFIXES)


def check_connection(connection: dict[str, object], what: str, where: str) -> None:
    """Refuse a storage connection that holds a secret: a key named like one
    (``password=``, ``secret=`` ...; ``password_file`` is fine: it says where the
    password is) or a URI value with a password.

    :raises InvalidInput: naming the key (never its value) and where secrets go.
    """
    for key, value in connection.items():
        if _secret_key(str(key)):
            raise InvalidInput(
                f"{what}: connection key {str(key)!r} would store a secret in the state "
                f"store, where `storage show` prints it; give the password through {where}")
        # a value as the API gives it, or the list of texts ``-o KEY=VALUE`` gives
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                refuse_password_in_uri(text, f"{what}: connection.{key}", where)


def redact_connection(connection: dict[str, object]) -> dict[str, object]:
    """A connection for display: secret-named values and URI passwords as ``***`` (for
    records stored before :func:`check_connection`)."""
    return {k: "***" if _secret_key(str(k)) else
            redact_uri(v) if isinstance(v, str) else v for k, v in connection.items()}
