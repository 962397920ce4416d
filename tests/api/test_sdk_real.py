"""The oVirt SDK on real QEMU (issue 19): the SDK's own ``start_vm.py`` and
``stop_vm.py`` start and stop a guest on the machine's libvirtd, and the SDK's
``vm_service.migrate()`` live-migrates a running guest to the second libvirt host
(tools/start-second-host.sh). The guests are checked in libvirt itself, not only in
virtplane's record. Fails in CI without the daemons; skips locally.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import PASSWORD
from tests.api.test_sdk_examples import example_server as example_server  # fixtures
from tests.api.test_sdk_examples import examples_dir as examples_dir
from tests.api.test_sdk_examples import run_example
from tests.conftest import need
from tests.libvirt_hosts import H1, H2, reachable, running
from virtplane import model

pytestmark = [pytest.mark.integration]


@pytest.fixture
def real_world(example_server: Any) -> Iterator[Any]:
    """myhost on this machine's libvirtd, otherhost on the second one, and myvm."""
    need(reachable(H1), f"libvirtd not reachable at {H1} (tools/start-daemons.sh)")
    need(reachable(H2), f"second libvirtd not reachable at {H2} (tools/start-second-host.sh)")
    assert "myvm" not in running(H1) | running(H2), \
        "a guest named myvm already runs here (left by another run): stop it first"
    m = example_server.manager
    m.datacenters.add("mydc")
    m.clusters.add("mycluster", "mydc")
    m.hosts.add("myhost", "mycluster", H1)
    m.hosts.add("otherhost", "mycluster", H2)
    m.vms.create(model.VmSpec(name="myvm", memory_mib=256), "mycluster")
    yield example_server
    vm = m.vms.get("myvm")
    if vm.status != model.VmStatus.DOWN and vm.host_id:
        m.vms.destroy("myvm")


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_sdk_examples_start_and_stop_a_real_guest(real_world: Any, examples_dir: Path,
                                                  tmp_path: Path) -> None:
    m = real_world.manager
    run_example(examples_dir, "start_vm.py", real_world, tmp_path / "start", 120)
    assert "myvm" in running(H1)  # QEMU runs it, on the host the scheduler chose
    assert m.vms.get("myvm").status == model.VmStatus.UP
    run_example(examples_dir, "stop_vm.py", real_world, tmp_path / "stop", 120)
    assert "myvm" not in running(H1) | running(H2)
    assert m.vms.get("myvm").status == model.VmStatus.DOWN


def test_sdk_migrates_a_running_guest_between_real_hosts(real_world: Any) -> None:
    import ovirtsdk4
    import ovirtsdk4.types as types

    m = real_world.manager
    m.vms.start("myvm", host="myhost")
    assert "myvm" in running(H1)
    conn = ovirtsdk4.Connection(url=real_world.url, username="admin@internal",
                                password=PASSWORD, ca_file=str(real_world.pki / "ca.pem"),
                                timeout=120)
    try:
        vms = conn.system_service().vms_service()
        vm = vms.list(search="name=myvm")[0]
        assert vm.host.id == m.hosts.get("myhost").id
        vms.vm_service(vm.id).migrate(host=types.Host(name="otherhost"))
        _wait(lambda: vms.vm_service(vm.id).get().status == types.VmStatus.UP
              and vms.vm_service(vm.id).get().host.id == m.hosts.get("otherhost").id,
              60, "the SDK sees myvm Up on otherhost")
    finally:
        conn.close()
    assert "myvm" in running(H2) and "myvm" not in running(H1)
