"""Reading a configuration file and checking its values before any key is looked at.

The TOML parser's failures become one-line :class:`~virtplane.errors.ConfigError`
messages naming the file, and what no key of any table can use (deep nesting,
integers beyond 64 bits, ``nan``, dates, NUL characters) is refused. The helpers
that write a key and a value into such a message (:func:`key_name`, :func:`shown`)
live here too; :mod:`virtplane.config` re-exports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from virtplane.errors import ConfigError

_TYPE_NAMES = {
    list: "a list of strings",
    str: "a string",
    bool: "true or false",
    int: "an integer",
    float: "a number",
}

#: TOML integers are 64-bit signed (toml.io: larger ones must be refused)
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: tables and arrays nested deeper than this are refused (no key needs more than 4)
MAX_DEPTH = 16
#: longest value shown in a message (the rest is cut, ``...`` says so)
_SHOWN = 60


def _cut(text: str, limit: int = _SHOWN) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def shown(value: object) -> str:
    """``repr(value)`` for a message: one line (control characters escaped), at most
    about :data:`_SHOWN` characters."""
    return _cut(repr(value))


def key_name(*parts: object) -> str:
    """A dotted key as TOML writes it: bare parts as they are, any other quoted with its
    control and non-ASCII characters escaped (so a message stays one readable line)."""
    import json
    import re

    out = []
    for part in parts:
        text = str(part)
        bare = re.fullmatch(r"[A-Za-z0-9_-]+", text) is not None
        out.append(text if bare else _cut(json.dumps(text)))
    return ".".join(out)


def check_data(path: Path, value: Any, keys: tuple[str, ...] = ()) -> None:
    """Refuse what no key of any table can use, wherever it is: tables and arrays
    nested deeper than :data:`MAX_DEPTH`, integers beyond 64 bits, ``nan`` and
    ``inf``, dates and times, and NUL characters in strings or keys.

    :raises ConfigError: naming the file, the key and what is allowed.
    """
    import datetime
    import math

    where = key_name(*keys) if keys else "the top level"
    if len(keys) > MAX_DEPTH:
        raise ConfigError(
            f"{path}: {key_name(*keys[:MAX_DEPTH])}...: tables and arrays are "
            f"nested more than {MAX_DEPTH} levels deep; no key takes that"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            if "\0" in key:
                raise ConfigError(
                    f"{path}: key {key_name(*keys, key)} contains a NUL character; keys are names"
                )
            check_data(path, item, (*keys, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_data(path, item, (*keys, str(index)))
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise ConfigError(
                f"{path}: {where} = {shown(value)} is not allowed; integers "
                f"must be from {INT_MIN} to {INT_MAX} (64 bits)"
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(
                f"{path}: {where} = {value} is not allowed; it must be a "
                "finite number (no key takes nan or inf)"
            )
    elif isinstance(value, str):
        if "\0" in value:
            raise ConfigError(
                f"{path}: {where} contains a NUL character (\\u0000); no key takes one"
            )
    elif isinstance(value, (datetime.date, datetime.time)):
        raise ConfigError(
            f"{path}: {where} = {value.isoformat()} is not allowed; no key "
            "takes a date or time (write a string or a number)"
        )


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file.

    :raises ConfigError: it cannot be read or is not TOML (naming the file and why).
    """
    import tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        # TOML is UTF-8; tomllib decodes the bytes first and lets this escape
        raise ConfigError(
            f"{path}: not valid TOML: byte {exc.start} is not UTF-8 "
            f"({exc.reason}); TOML files are UTF-8 text"
        ) from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(
            f"{path}: not valid here: arrays or inline tables nested "
            f"thousands of levels deep; no key takes more than {MAX_DEPTH}"
        ) from None
    except ValueError as exc:
        # int() of an integer of more than 4300 digits (sys.get_int_max_str_digits)
        raise ConfigError(
            f"{path}: not valid TOML: {_cut(str(exc))}; integers "
            f"must be from {INT_MIN} to {INT_MAX} (64 bits)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
