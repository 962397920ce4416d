"""drivers.implements: isinstance's answer for runtime protocols, without its cost."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import pytest

from virtplane import drivers


@runtime_checkable
class _Configures(Protocol):
    config_format: str

    def render_config(self, data: dict[str, Any]) -> str: ...


class _Plain:
    pass


class _Full:
    config_format = "cfg"

    def render_config(self, data: dict[str, Any]) -> str:
        return str(data)


def _check(obj: object, proto: type) -> bool:
    answer = drivers.implements(obj, proto)
    assert answer == isinstance(obj, proto)
    return answer


def test_two_classes_are_answered_each_for_itself() -> None:
    assert not _check(_Plain(), _Configures)
    assert _check(_Full(), _Configures)
    assert not _check(_Plain(), _Configures)  # the first answer is not the other's


def test_a_class_gaining_its_members_later_implements_the_protocol() -> None:
    class Late:
        pass

    assert not _check(Late(), _Configures)
    Late.config_format = "cfg"  # type: ignore[attr-defined]
    assert not _check(Late(), _Configures)
    Late.render_config = lambda self, data: ""  # type: ignore[attr-defined]
    assert _check(Late(), _Configures)
    del Late.render_config  # type: ignore[attr-defined]
    assert not _check(Late(), _Configures)


def test_members_on_the_instance_and_methods_set_to_none() -> None:
    obj = _Plain()
    assert not _check(obj, _Configures)
    obj.config_format = "cfg"  # type: ignore[attr-defined]
    obj.render_config = lambda data: ""  # type: ignore[attr-defined]
    assert _check(obj, _Configures)
    assert _check(_Plain(), _Configures) is False  # other instances of the class are not
    full = _Full()
    full.render_config = None  # type: ignore[assignment]
    assert not _check(full, _Configures)  # a method that is None is missing, as for typing


def test_a_registered_class_and_a_nominal_subclass() -> None:
    class Registered:
        pass

    assert not _check(Registered(), _Configures)
    _Configures.register(Registered)
    assert _check(Registered(), _Configures)  # registering invalidates what was kept

    class Sub(_Configures):
        pass

    assert _check(Sub(), _Configures)


@pytest.mark.parametrize("proto", [drivers.NativeConfig, drivers.SupportsMigration,
                                   drivers.HypervisorConnection])
def test_the_core_protocols_on_plain_objects(proto: type) -> None:
    assert not _check(_Plain(), proto)
    assert not _check(_Full(), proto)
