"""``[plugin.hook_scripts]`` settings."""

from __future__ import annotations

import re
from typing import Any

import attrs


def _regexes(_inst: Any, attribute: attrs.Attribute[Any], value: dict[str, str]) -> None:
    for name, pattern in value.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{attribute.name}.{name}: {pattern!r} is not a regular "
                             f"expression ({exc})") from None


def _absolute(_inst: Any, attribute: attrs.Attribute[Any], value: str | list[str] | None
              ) -> None:
    """Hook roots and the run folder are absolute paths: a relative one would be read
    (and its scripts run) from whatever folder a command was started in."""
    for path in [value] if isinstance(value, str) else value or []:
        if not path.startswith("/") or any(ord(c) < 32 for c in path):
            raise ValueError(f"{attribute.name}: {path!r} is not allowed; it must be an "
                             "absolute path (starting with /)")


@attrs.define
class HookScriptsSettings:
    """Where hook scripts live and how they run.

    :ivar dirs: extra hook roots (each holds one folder per hook point).
    :ivar vdsm_dir: VDSM's hook root to run as well, e.g. ``/usr/libexec/vdsm/hooks``.
    :ivar timeout_seconds: a script running longer is killed and fails its point.
    :ivar vm_properties: custom property name -> regular expression its value must
        match (oVirt's ``UserDefinedVMProperties``); checked when a VM is created.
    :ivar strict_properties: refuse properties that are not declared.
    :ivar run_dir: where ``launchflags`` files go (``<run_dir>/<vmId>/launchflags``);
        default ``hooks-run`` in virtplane's private runtime folder
        (:func:`virtplane.paths.runtime_dir`: ``/run/virtplane`` for root), never a
        predictable folder under /tmp.
    """

    dirs: list[str] = attrs.field(factory=list, validator=_absolute)
    vdsm_dir: str | None = attrs.field(default=None, validator=_absolute)
    timeout_seconds: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    vm_properties: dict[str, str] = attrs.field(factory=dict, validator=_regexes)
    strict_properties: bool = False
    run_dir: str | None = attrs.field(default=None, validator=_absolute)
