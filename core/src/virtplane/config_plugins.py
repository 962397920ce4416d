"""Validating a plugin's ``[plugin.<name>]`` table with the plugin's attrs settings class.

Values must be of the field's type as TOML writes it before cattrs structures them;
:func:`plugin_settings` is re-exported by :mod:`virtplane.config`, its usual import path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from virtplane.config_toml import _SHOWN, _TYPE_NAMES, _cut, key_name, shown
from virtplane.errors import ConfigError

if TYPE_CHECKING:
    from virtplane.config import Config

T = TypeVar("T")


def _allowed(tp: Any) -> str | None:
    """What a value of type ``tp`` is, in an administrator's words (None: a type this
    check leaves to cattrs)."""
    import types
    import typing

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _TYPE_NAMES and tp is not list:
        return _TYPE_NAMES[tp]
    if tp is type(None):
        return "unset"
    if origin in (typing.Union, types.UnionType):
        parts = [_allowed(a) for a in args if a is not type(None)]
        return None if None in parts else " or ".join(p for p in parts if p)
    if origin in (list, tuple) and args:
        inner = _allowed(args[0])
        return (
            None
            if inner is None
            else f"a list of {inner.removeprefix('a ')}s"
            if inner.startswith("a ")
            else f"a list of ({inner})"
        )
    if origin is dict and len(args) == 2:
        inner = _allowed(args[1])
        return (
            None
            if inner is None
            else f"a table of {inner.removeprefix('a ')}s"
            if inner.startswith("a ")
            else f"a table of ({inner})"
        )
    return None


def _fits(value: Any, tp: Any) -> bool:
    """Whether ``value`` (as TOML gives it) is a ``tp`` without any conversion: no
    ``"no"`` for a bool (cattrs would make it True), no string for a list (it would
    become a list of characters), no float for an int (it would be truncated)."""
    import types
    import typing

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin in (list, tuple) and args:
        item = args[0]
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if origin is dict and len(args) == 2:
        return isinstance(value, dict) and all(_fits(v, args[1]) for v in value.values())
    return True  # a type of its own: cattrs decides


def plugin_settings(cfg: Config, name: str, cls: type[T]) -> T:
    """Validate the ``[plugin.<name>]`` table with the plugin's attrs class ``cls``.

    Values must be of the field's type as TOML writes it (``true``, not ``"yes"``; a
    list, not a string; an integer, not ``1.5``): cattrs alone would convert them.

    :raises ConfigError: naming the file, the key and what is allowed.
    """
    table = cfg.plugin_tables.get(name, {})
    if not table:
        return cls()  # all defaults: no need to pay for cattrs on the common path

    import typing

    import attrs
    import cattrs

    from virtplane.model import converter, format_exception

    source = cfg.plugin_sources.get(name, "defaults")
    fields = {f.name: f for f in attrs.fields(cls)}  # type: ignore[arg-type]
    for key in table:
        if key not in fields:
            raise ConfigError(
                f"{source}: unknown key {key_name('plugin', name, key)}; allowed keys: "
                + (", ".join(sorted(fields)) or "none")
            )
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: cattrs decides
        hints = {}
    for key, value in table.items():
        tp = hints.get(key)
        allowed = _allowed(tp) if tp is not None else None
        if allowed is not None and not _fits(value, tp):
            raise ConfigError(
                f"{source}: {key_name('plugin', name, key)} = {shown(value)} "
                f"is not allowed; it must be {allowed}"
            )

    def short(exc: BaseException, type_: Any) -> str:
        return _cut(format_exception(exc, type_), 4 * _SHOWN)

    try:
        settings: T = converter().structure(table, cls)
    except cattrs.BaseValidationError as exc:
        details = cattrs.transform_error(exc, path=f"plugin.{name}", format_exception=short)
        raise ConfigError(f"{source}: " + "; ".join(details)) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{source}: invalid [plugin.{name}]: {_cut(str(exc), 4 * _SHOWN)}"
        ) from None
    return settings
