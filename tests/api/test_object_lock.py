"""API actions on a VM run under that VM's lock: the engine hands its per-object locks
to the front end (``object_lock``), so an SDK ``start`` and the engine's monitor never
write the same VM between each other's read and write (which failed the action with
"changed by another writer")."""

from __future__ import annotations

import threading
import time
from typing import Any

import requests

from tests.api.conftest import PASSWORD
from virtplane import model
from virtplane_engine.frontends import FrontendSpec, _start_one
from virtplane_engine.locks import ObjectLocks

JSON = {"Accept": "application/json", "Content-Type": "application/json"}


def test_an_action_runs_holding_the_vms_lock(world: Any, serve: Any) -> None:
    locks = ObjectLocks()
    held_during: list[bool] = []

    def object_lock(kind: str, name: str) -> Any:
        return locks.hold([f"{kind}:{name}"])

    world.vms.create(model.VmSpec(name="vm1", memory_mib=256), "c1")
    real = world.vms.start

    def start(*args: Any, **kwargs: Any) -> model.Vm:
        # another holder of vm:vm1 (the monitor) cannot get in while the action runs
        with locks.attempt("vm:vm1") as got:
            held_during.append(not got)
        return real(*args, **kwargs)

    world.vms.start = start
    server = serve(object_lock=object_lock)
    vm_id = world.vms.get("vm1").id
    started = requests.post(f"{server.url}/vms/{vm_id}/start", json={}, headers=JSON,
                            auth=("admin@internal", PASSWORD), timeout=30)
    assert started.status_code == 200, started.text
    assert held_during == [True]

    # and an action waits while someone else holds the VM
    with locks.hold(["vm:vm1"]):
        answers: list[int] = []
        t = threading.Thread(target=lambda: answers.append(requests.post(
            f"{server.url}/vms/{vm_id}/stop", json={"async": "false"}, headers=JSON,
            auth=("admin@internal", PASSWORD), timeout=30).status_code))
        t.start()
        time.sleep(1.0)
        assert world.vms.get("vm1").status == model.VmStatus.UP  # not stopped yet
    t.join(30)
    assert answers == [200] and world.vms.get("vm1").status == model.VmStatus.DOWN


def test_the_engine_gives_front_ends_its_locks(world: Any, tmp_path: Any) -> None:
    locks = ObjectLocks()
    served = _start_one(FrontendSpec("ovirt", "127.0.0.1", 0), world, tmp_path, False, (),
                        locks)
    try:
        api = served.runner._server.config.app.state.api  # the app the engine built
        with api.object_lock("vm", "web1"):
            with locks.attempt("vm:web1") as got:
                assert not got  # the same lock the engine's monitor takes
        with locks.attempt("vm:web1") as got:
            assert got
    finally:
        served.runner.stop()
