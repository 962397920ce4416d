"""Typed unit parameters under oVirt's names, checked where a policy is compiled.

oVirt keeps policy parameters as a map of strings checked by regexes
(``PolicyUnitParameter``). Here each unit declares an attrs class; every field
carries the oVirt name it is set by (``HighUtilization`` ...), its type and its
allowed range, so one policy map (``{"HighUtilization": 80}``, from TOML, the
REST API or an exported oVirt policy) feeds every unit, and a wrong value is
refused when the policy is loaded with a message naming the unit, the
parameter and what is allowed, never at 3 a.m. in the balancing loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

T = TypeVar("T")

#: Values a policy map may hold (strings are what oVirt exports and the REST API sends).
ParamValue = int | float | bool | str


class PolicyError(ValueError):
    """A cluster policy or one of its parameters is wrong (the message says how to fix it)."""


def _range_validator(name: str, minimum: float | None,
                     maximum: float | None) -> Callable[[Any, Any, Any], None]:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            lo = "" if minimum is None else f"{minimum:g}"
            hi = "" if maximum is None else f"{maximum:g}"
            allowed = f"between {lo} and {hi}" if lo and hi else (
                f"at least {lo}" if lo else f"at most {hi}")
            raise PolicyError(f"{name} must be {allowed}, not {value!r}")
    return check


def int_param(name: str, default: int, doc: str, minimum: int | None = None,
              maximum: int | None = None) -> Any:
    """An integer parameter set by ``name`` in a policy map."""
    return attrs.field(default=default, validator=_range_validator(name, minimum, maximum),
                       metadata={"name": name, "type": int, "doc": doc, "min": minimum,
                                 "max": maximum})


def float_param(name: str, default: float, doc: str, minimum: float | None = None,
                maximum: float | None = None) -> Any:
    """A decimal parameter set by ``name`` in a policy map."""
    return attrs.field(default=default, validator=_range_validator(name, minimum, maximum),
                       metadata={"name": name, "type": float, "doc": doc, "min": minimum,
                                 "max": maximum})


def bool_param(name: str, default: bool, doc: str) -> Any:
    """A true/false parameter set by ``name`` in a policy map."""
    return attrs.field(default=default, metadata={"name": name, "type": bool, "doc": doc,
                                                  "min": None, "max": None})


@attrs.frozen
class NoParams:
    """For units that read no parameter."""


@attrs.frozen
class ParamInfo:
    """One parameter as documentation and ``scheduling units`` show it."""

    name: str
    type: str
    default: ParamValue
    doc: str
    minimum: float | None
    maximum: float | None


def describe(cls: type[Any]) -> list[ParamInfo]:
    """The parameters an attrs params class reads, in declaration order."""
    out = []
    for f in attrs.fields(cls):
        meta = f.metadata
        if "name" not in meta:
            raise PolicyError(f"{cls.__qualname__}.{f.name} is not declared with int_param, "
                              "float_param or bool_param, so no policy can set it")
        out.append(ParamInfo(meta["name"], meta["type"].__name__, f.default, meta["doc"],
                             meta["min"], meta["max"]))
    return out


def parameter_names(cls: type[Any]) -> frozenset[str]:
    """The oVirt names a params class reads."""
    return frozenset(p.name for p in describe(cls))


def _convert(name: str, kind: type[Any], value: ParamValue) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise PolicyError(f"{name} must be true or false, not {value!r}")
    if isinstance(value, bool):
        raise PolicyError(f"{name} must be a number, not {value!r}")
    try:
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        return float(value)
    except ValueError:
        raise PolicyError(f"{name} must be {'an integer' if kind is int else 'a number'}, "
                          f"not {value!r}") from None


def build(cls: type[T], values: Mapping[str, ParamValue], owner: str) -> T:
    """An instance of ``cls`` from a policy map (keys it does not read are ignored here;
    the policy checks that every key is read by one of its units)."""
    kwargs: dict[str, Any] = {}
    try:
        for f in attrs.fields(cls):  # type: ignore[arg-type]
            name = f.metadata["name"]
            if name in values:
                kwargs[f.name] = _convert(name, f.metadata["type"], values[name])
        return cls(**kwargs)
    except PolicyError as exc:
        raise PolicyError(f"{owner}: {exc}") from None
