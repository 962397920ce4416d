"""Options that belong to a plugin, declared by the plugin and parsed by the core.

A driver declares what an operation of its own takes as an attrs class (OVM3's
host setup: ``VIRTPLANE_SETUP_OPTIONS`` on its entry-point class); the core
CLI passes ``-o KEY=VALUE`` pairs through :func:`parse`, which types each value
by the field's annotation, so the CLI keeps no knowledge of any plugin (tox
lets plugins add their own options the same way). ``virtplane host options
DRIVER`` prints :func:`describe`.

Field types understood from text: ``str``, ``int``, ``float``, ``bool`` (yes/no, true/false,
on/off, 1/0), ``list[str]`` (comma separated, or the option repeated) and their
``| None`` forms. Each field's ``metadata={"help": ...}`` documents it.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import attrs

from virtplane.errors import InvalidInput

T = TypeVar("T")

_TRUE = {"yes", "true", "on", "1"}
_FALSE = {"no", "false", "off", "0"}


def pairs(items: Iterable[str] | None, what: str = "--option") -> dict[str, list[str]]:
    """``KEY=VALUE`` arguments as ``{key: [values...]}`` (a key may repeat)."""
    out: dict[str, list[str]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{what} {item!r} is not KEY=VALUE")
        out.setdefault(key.strip(), []).append(value)
    return out


def _base(tp: Any) -> tuple[Any, bool]:
    """(the type without ``None``, whether None is allowed)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _convert(field: attrs.Attribute[Any], values: list[str], owner: str) -> Any:
    tp, _optional = _base(field.type)
    name = field.name
    if typing.get_origin(tp) is list:
        return [part.strip() for v in values for part in v.split(",") if part.strip()]
    if len(values) > 1:
        raise InvalidInput(f"{owner} option {name!r} was given {len(values)} times; it takes "
                           "one value")
    text = values[0].strip()
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise InvalidInput(f"{owner} option {name}={text!r} is not a yes/no value; allowed: "
                           "yes, no, true, false, on, off, 1, 0")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise InvalidInput(f"{owner} option {name}={text!r} is not a whole number") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise InvalidInput(f"{owner} option {name}={text!r} is not a number") from None
    return text


def parse(cls: type[T], given: Mapping[str, list[str] | Any], owner: str) -> T:
    """An instance of the attrs class ``cls`` from options given as text (``-o`` pairs)
    or already typed (the Python API); unknown keys and bad values are refused with the
    allowed ones named."""
    klass: Any = cls  # an attrs class (checked by :func:`declared`)
    attrs.resolve_types(klass)
    fields = {f.name: f for f in attrs.fields(klass)}
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise InvalidInput(f"{owner} has no option {', '.join(map(repr, unknown))}; "
                           f"allowed: {', '.join(fields) or 'none'}")
    kwargs: dict[str, Any] = {}
    for key, value in given.items():
        is_text = isinstance(value, list) and all(isinstance(v, str) for v in value)
        kwargs[key] = _convert(fields[key], value, owner) if is_text else value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{owner} options are not valid: {exc}") from None


def describe(cls: type[Any]) -> list[dict[str, str]]:
    """One row per option: name, type, default and help (for ``--help``-like listings)."""
    attrs.resolve_types(cls)
    rows = []
    for f in attrs.fields(cls):
        default = f.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            shown = "(empty)"
        elif default is attrs.NOTHING:
            shown = "(required)"
        else:
            shown = repr(default)
        tp, _opt = _base(f.type)
        rows.append({"name": f.name, "type": getattr(tp, "__name__", str(tp)),
                     "default": shown, "help": str(f.metadata.get("help", ""))})
    return rows


def declared(owner: object, attr: str) -> type[Any] | None:
    """The options class a plugin declares as ``attr`` on its class (the class itself or a
    ``"module:Class"`` reference, imported only when needed), or None."""
    ref = getattr(owner if isinstance(owner, type) else type(owner), attr, None)
    if ref is None:
        return None
    if isinstance(ref, str):
        import importlib

        module, _, name = ref.partition(":")
        try:
            ref = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            from virtplane.errors import PluginError

            raise PluginError(f"{attr} = {ref!r} cannot be loaded: {exc}") from None
    if not attrs.has(ref):
        from virtplane.errors import PluginError

        raise PluginError(f"{attr} must be an attrs class; got {ref!r}")
    return ref


def plain(given: Mapping[str, list[str] | Any]) -> dict[str, Any]:
    """Options for a plugin that declares no class: one value as text, repeats as a list."""
    return {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in given.items()}


def as_dict(value: Any) -> dict[str, Any]:
    """A parsed options object as the keyword arguments / dict drivers take (unset
    optional fields left out, so stored connections stay as small as given)."""
    out = {}
    for f in attrs.fields(type(value)):
        v = getattr(value, f.name)
        if v is None or (v == [] and isinstance(f.default, attrs.Factory)):  # type: ignore[arg-type]
            continue
        out[f.name] = v
    return out
