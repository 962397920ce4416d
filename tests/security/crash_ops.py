"""The fault-injection harness: operations to kill, their set-ups, and the checks after.

Run as a script, it performs one operation on a state store, in a process the
test kills at a chosen kill point (``VIRTPLANE_FAULT_AT``, see
:mod:`virtplane.faults`)::

    python crash_ops.py STATE_FILE OPERATION

Imported, it gives the test each operation's set-up (what must exist before it
runs) and :func:`consistency`, the invariants that must hold after
``storage repair`` whatever the moment of the kill.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from virtplane import Manager, config, model

MiB = 1 << 20


def _spec(m: Manager, name: str, disks: int = 2) -> model.VmSpec:
    dom = m.storage.get("sd").id
    return model.VmSpec(name=name, memory_mib=256, disks=[
        model.DiskSpec(name=f"d{i}", size_bytes=MiB, domain_id=dom) for i in range(disks)])


def base(m: Manager, work: Path) -> None:
    """What every operation starts from: a data domain, a standalone disk with two
    layers, a VM with two disks and two snapshots, a template made from another VM."""
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.storage.add("sd", "localfs", "dc", {"path": str(work / "data")})
    m.disks.create("disk", "sd", MiB)
    m.disks.snapshot("disk")
    m.vms.create(_spec(m, "vm"), "cl")
    m.snapshots.take("vm", "s1")
    m.snapshots.take("vm", "s2")
    m.vms.create(_spec(m, "src", disks=1), "cl")
    m.templates.create("src", "tpl")
    raw = work / "import.raw"
    raw.write_bytes(b"\0" * MiB)


#: operation name -> what it does (run in the process that gets killed)
OPS: dict[str, Callable[[Manager, Path], Any]] = {
    "disk create": lambda m, w: m.disks.create("new", "sd", MiB),
    "disk import": lambda m, w: m.disks.import_file("imp", "sd", str(w / "import.raw"), "raw"),
    "disk clone": lambda m, w: m.disks.clone("disk", "copy"),
    "disk extend": lambda m, w: m.disks.extend("disk", 2 * MiB),
    "disk merge": lambda m, w: m.disks.merge("disk"),
    "disk remove": lambda m, w: m.disks.remove("disk"),
    "vm create": lambda m, w: m.vms.create(_spec(m, "fresh"), "cl"),
    "vm remove": lambda m, w: m.vms.remove("vm"),
    "snapshot revert": lambda m, w: m.snapshots.revert("vm", "s1"),
    "snapshot delete": lambda m, w: m.snapshots.delete("vm", "s1"),
    "template create": lambda m, w: m.templates.create("vm", "tpl2"),
    "template remove": lambda m, w: (m.vms.remove("src"), m.templates.remove("tpl")),
    "vm from template": lambda m, w: m.templates.create_vm("tpl", "thin", "cl"),
    "vm clone from template": lambda m, w: m.templates.create_vm("tpl", "full", "cl",
                                                                  clone=True),
}


def consistency(m: Manager) -> list[str]:
    """What must hold after repair, beyond ``storage verify``: nothing points at an image,
    volume or snapshot that is gone, and nothing is half-done."""
    problems = []
    images = {i.id: i for i in m.store.list(model.Image)}
    for vm in m.store.list(model.Vm):
        for d in vm.spec.disks:
            if d.image_id and d.image_id not in images:
                problems.append(f"VM {vm.name}: disk {d.name} points at missing image")
    for tpl in m.store.list(model.Template):
        problems += [f"template {tpl.name}: image {i} is missing" for i in tpl.image_ids
                     if i not in images]
    for snap in m.store.list(model.Snapshot):
        for image_id, vol_id in snap.volumes.items():
            chain = [v.id for v in images[image_id].volumes] if image_id in images else []
            if vol_id not in chain:
                problems.append(f"snapshot {snap.name}: volume {vol_id} is not in its image")
    for image in images.values():
        if image.intent is not None:
            problems.append(f"image {image.id}: intent {image.intent.op} left")
        for vol in image.volumes:
            base_image = vol.base_image_id
            if base_image and base_image not in images:
                problems.append(f"image {image.id}: its base image {base_image} is gone")
    return problems


def main(argv: list[str]) -> int:
    state, op = Path(argv[0]), argv[1]
    m = Manager(config.load(), state_path=state)
    try:
        OPS[op](m, state.parent)
    finally:
        m.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
