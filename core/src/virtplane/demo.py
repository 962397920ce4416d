"""``virtplane demo``: a short end-to-end scenario, printed step by step.

On the embedded default it uses libvirt's test driver (``test:///default``), a
localfs storage domain and a SQLite state store, all under
``$XDG_DATA_HOME/virtplane/demo/`` (recreated on each run, so the
administrator's own state is never touched). With ``--uri qemu:///system`` it
runs a real QEMU guest (no OS; firmware only) on the local libvirtd.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

from virtplane import config, model
from virtplane.manager import Manager


def _step(n: int, text: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    print(f"[{n:2}] {text} ...", end=" ", flush=True)
    result = fn()
    print(f"ok ({(time.perf_counter() - t0) * 1000:.0f} ms)")
    return result


def run(args: argparse.Namespace) -> int:
    root = config.data_dir() / "demo"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    cfg = config.load(args.config)
    real = not args.uri.startswith("test:")
    print(f"virtplane demo on {args.uri} (state and storage in {root})")
    m = Manager(cfg, state_path=root / "state.db")
    vm_name = "demo-vm"
    try:
        _step(1, "create data center dc1", lambda: m.datacenters.add("dc1"))
        _step(2, "create cluster cl1 (x86_64)", lambda: m.clusters.add("cl1", "dc1"))
        host = _step(3, f"add host h1 at {args.uri}",
                     lambda: m.hosts.add("h1", "cl1", args.uri, "kvm"))
        caps = host.capabilities
        print(f"     host: {caps['arch']}, {caps['cpus']} CPUs, {caps['memory_mib']} MiB, "
              f"libvirt {caps['libvirt_version']}, guests {', '.join(caps['guest_arches'])}")
        dom = _step(4, "create localfs storage domain data1",
                    lambda: m.storage.add("data1", "localfs", "dc1",
                                                 {"path": str(root / "storage")}))
        spec = model.VmSpec(
            name=vm_name, memory_mib=256, vcpus=1,
            disks=[model.DiskSpec(name="disk0", size_bytes=64 << 20, domain_id=dom.id,
                                  bootable=True)],
            nics=[model.NicSpec(name="nic0", network="user" if real else "default")],
        )
        _step(5, f"create VM {vm_name} (256 MiB, 64 MiB qcow2 disk, virtio NIC)",
              lambda: m.vms.create(spec, "cl1"))
        vm = _step(6, f"start {vm_name}", lambda: m.vms.start(vm_name))
        print(f"     status: {vm.status.value} on h1")
        stats = _step(7, "read its stats (bulk getAllDomainStats)", lambda: m.vms.stats(vm_name))
        print("     " + json.dumps({k: stats[k] for k in ("status", "cpu_time_ns", "vcpus",
                                                       "balloon_kib")}))
        _step(8, "snapshot it as snap1", lambda: m.snapshots.take(vm_name, "snap1"))
        vm = _step(9, "pause", lambda: m.vms.pause(vm_name))
        print(f"     status: {vm.status.value}")
        vm = _step(10, "continue", lambda: m.vms.resume(vm_name))
        print(f"     status: {vm.status.value}")
        how = _step(11, "shut down (ACPI, destroy after 5 s)",
                    lambda: m.vms.shutdown(vm_name, timeout=5))
        print(f"     went down by: {how}")
        _step(12, f"remove {vm_name} and its disk", lambda: m.vms.remove(vm_name))
        print("     events of the run are in the state store; VMs left: "
              f"{len(m.vms.list())}")
    except Exception as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        try:
            vm2 = m.vms.get(vm_name)
            if vm2.status != model.VmStatus.DOWN:
                m.vms.destroy(vm_name)
        except Exception as cleanup_exc:  # noqa: BLE001 - report, keep the original error
            print(f"cleanup after failure also failed: {cleanup_exc}", file=sys.stderr)
        raise
    finally:
        m.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print("demo finished: every step succeeded")
    return 0
