"""The custom property options of ``virtplane vm create`` and ``vm update``
(``--property``, ``--nic-property``, ``--disk-property`` and their ``--remove-`` forms):
the options themselves (:func:`_property_args`), reading them, and a VM's properties
as ``vm show`` lists them."""

from __future__ import annotations

import argparse
from typing import Any

# ------------------------------------------------------------- custom properties
#
# --property KEY=VALUE            the VM's (repeatable)
# --nic-property NIC:KEY=VALUE    a NIC's, by name (nic0, nic1 ... in --nic order)
# --disk-property DISK:KEY=VALUE  a disk's, by name (disk0, disk1 ... in --disk order)
# vm update also takes --remove-property KEY and --remove-nic/disk-property DEV:KEY.
# Values are everything after the first "=" (they may hold ":" and "="); keys are checked
# by the services (virtplane.names.check_property_name).


def _key_value(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        from virtplane.errors import InvalidInput

        raise InvalidInput(f"{option} {text!r} is not KEY=VALUE (e.g. {option} mtu=9000)")
    return key, value


def _device_item(text: str, option: str, example: str) -> tuple[str, str]:
    device, sep, rest = text.partition(":")
    if not sep or not device or not rest:
        from virtplane.errors import InvalidInput

        raise InvalidInput(f"{option} {text!r} names no device; it is DEVICE:{example} "
                           f"(e.g. {option} nic0:{example})")
    return device, rest


def _device_properties(args: argparse.Namespace) -> dict[str, dict[str, str | None]]:
    """``--nic/disk-property DEV:KEY=VALUE`` and ``--remove-nic/disk-property DEV:KEY``
    as ``{device: {key: value or None}}``, checked against the kind each option names."""
    out: dict[str, dict[str, str | None]] = {}
    for kind in ("nic", "disk"):
        option = f"--{kind}-property"
        for item in getattr(args, f"{kind}_property", None) or []:
            device, rest = _device_item(item, option, "KEY=VALUE")
            key, value = _key_value(rest, option)
            out.setdefault(f"{kind}\0{device}", {})[key] = value
        option = f"--remove-{kind}-property"
        for item in getattr(args, f"remove_{kind}_property", None) or []:
            device, key = _device_item(item, option, "KEY")
            out.setdefault(f"{kind}\0{device}", {})[key] = None
    return out


def _check_device(spec: Any, kind: str, device: str) -> None:
    from virtplane.errors import InvalidInput

    devices = spec.nics if kind == "nic" else spec.disks
    if not any(d.name == device for d in devices):
        raise InvalidInput(f"--{kind}-property: VM {spec.name!r} has no {kind} named "
                           f"{device!r}; its {kind}s: "
                           + (", ".join(d.name for d in devices) or "none"))


def _create_properties(args: argparse.Namespace, spec: Any) -> None:
    """Put the ``--property``/``--nic-property``/``--disk-property`` values on a new spec
    (``vms.create`` validates them with the rest)."""
    for item in args.property or []:
        key, value = _key_value(item, "--property")
        spec.custom_properties[key] = value
    for tagged, props in _device_properties(args).items():
        kind, device = tagged.split("\0", 1)
        _check_device(spec, kind, device)
        target = next(d for d in (spec.nics if kind == "nic" else spec.disks)
                      if d.name == device)
        target.custom_properties.update({k: v for k, v in props.items() if v is not None})

def _properties_of(spec: Any) -> dict[str, Any]:
    """The custom properties of a VM and of those of its devices that have any."""
    return {"vm": dict(spec.custom_properties),
            "disks": {d.name: dict(d.custom_properties) for d in spec.disks
                      if d.custom_properties},
            "nics": {n.name: dict(n.custom_properties) for n in spec.nics
                     if n.custom_properties}}

def _property_args(q: Any, update: bool) -> None:
    """The custom property options of ``vm create`` and ``vm update``."""
    q.add_argument("--property", action="append", metavar="KEY=VALUE",
                   help="a custom property of the VM (hook scripts get it as an environment "
                   "variable), repeatable")
    q.add_argument("--nic-property", action="append", metavar="NIC:KEY=VALUE",
                   help="a custom property of one NIC (nic0, nic1 ... in --nic order); only "
                   "that NIC's device hooks get it, repeatable")
    q.add_argument("--disk-property", action="append", metavar="DISK:KEY=VALUE",
                   help="a custom property of one disk (disk0, disk1 ...), repeatable")
    if update:
        q.add_argument("--remove-property", action="append", metavar="KEY",
                       help="remove a custom property of the VM, repeatable")
        q.add_argument("--remove-nic-property", action="append", metavar="NIC:KEY",
                       help="remove a custom property of a NIC, repeatable")
        q.add_argument("--remove-disk-property", action="append", metavar="DISK:KEY",
                       help="remove a custom property of a disk, repeatable")
