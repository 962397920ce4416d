"""The model's JSON form: one cattrs converter for every model class.

Part of :mod:`virtplane.model`, which re-exports every name here (import them from
there): :func:`to_json` / :func:`from_json` round-trip any model object, strictly
(unknown keys fail, each bad field is named). ``revision``, the store's row version
a copy was read at, is never in the JSON (see :mod:`virtplane.model`).
"""

from __future__ import annotations

import functools
import json
from typing import Any, TypeVar

import attrs

T = TypeVar("T")


def format_exception(exc: BaseException, type_: type | None) -> str:
    """Keep the validator's own words (attrs validators say what is allowed)."""
    from cattrs.v import format_exception

    if isinstance(exc, ValueError) and not isinstance(exc, KeyError) and str(exc):
        msg = str(exc)
        if type_ is not None and ("could not convert" in msg or "invalid literal" in msg):
            name = getattr(type_, "__name__", str(type_))
            return f"invalid value, expected {name} ({exc})"
        return str(exc)
    return str(format_exception(exc, type_))



@functools.cache
def converter() -> Any:
    """The cattrs converter used for all model objects (JSON preconf, strict keys)."""
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
    from cattrs.preconf.json import make_converter

    conv = make_converter(forbid_extra_keys=True)

    def has_revision(cls: Any) -> bool:
        return attrs.has(cls) and "revision" in attrs.fields_dict(cls)

    # ``revision`` is the store's business (see the module docstring): never in JSON
    conv.register_unstructure_hook_factory(
        has_revision,
        lambda cls: make_dict_unstructure_fn(cls, conv, revision=override(omit=True)))
    conv.register_structure_hook_factory(
        has_revision,
        lambda cls: make_dict_structure_fn(cls, conv, revision=override(omit=True)))
    return conv


def unstructure(obj: Any) -> Any:
    """Turn a model object into plain JSON-compatible data."""
    return converter().unstructure(obj)


def structure(data: Any, cls: type[T]) -> T:
    """Build a model object of ``cls`` from plain data (strict: unknown keys fail).

    :raises virtplane.errors.InvalidInput: naming each bad field and why.
    """
    import cattrs

    try:
        result: T = converter().structure(data, cls)
    except cattrs.BaseValidationError as exc:
        from virtplane.errors import InvalidInput

        problems = "; ".join(cattrs.transform_error(exc, path=cls.__name__,
                                                     format_exception=format_exception))
        raise InvalidInput(f"invalid {cls.__name__}: {problems}") from None
    except (TypeError, AttributeError, ValueError, KeyError, RecursionError) as exc:
        # not an object at all (a list, a number, null), which cattrs does not wrap
        from virtplane.errors import InvalidInput

        shape = "an object" if not isinstance(data, dict) else "valid data"
        got = type(data).__name__ if not isinstance(data, dict) else exc.__class__.__name__
        raise InvalidInput(f"invalid {getattr(cls, '__name__', cls)}: expected {shape}, "
                           f"got {got} ({exc})") from None
    return result


def to_json(obj: Any) -> str:
    """Serialise a model object to a JSON string."""
    return json.dumps(unstructure(obj), sort_keys=True)


def from_json(text: str | bytes, cls: type[T]) -> T:
    """Parse a model object of ``cls`` from a JSON string.

    :raises virtplane.errors.InvalidInput: the text is not JSON (not UTF-8, nested too
        deeply ...) or not a valid ``cls``.
    """
    try:
        data = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:  # UnicodeDecodeError is one
        from virtplane.errors import InvalidInput

        what = exc.__class__.__name__ if isinstance(exc, RecursionError) else str(exc)
        raise InvalidInput(f"invalid {getattr(cls, '__name__', cls)}: not JSON "
                           f"({what:.200})") from None
    return structure(data, cls)
