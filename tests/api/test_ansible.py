"""The ``ovirt.ovirt`` Ansible collection against virtplane (issue 19).

``tests/api/ansible/site.yml`` (a data center, cluster, host and storage domain; a VM
with a disk, a NIC and a snapshot, started and stopped; a template of it and a VM from
the template; a running VM; the VM list) runs with ``ansible-playbook`` from the
``ansible`` 9.x package (a cached venv of its own, :mod:`tests.api.ansible_env`)
against the API over HTTPS on loopback with the API's CA, twice: the first run must
change things and succeed, the second must change nothing. Then twice more with
changed variables (descriptions, memory, cores, disk size, NIC model): the third run
updates, the fourth changes nothing. What the playbook made is checked through
virtplane's services after the second and the fourth run, not only through Ansible's
word.

Locally the test is skipped when the package cannot be installed; in CI that fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.ansible_env import AnsibleUnavailable, ensure
from tests.api.conftest import PASSWORD
from tests.conftest import need

PLAYBOOK = Path(__file__).parent / "ansible" / "site.yml"
#: what the first run must change (task names of site.yml); the rest only read
CHANGING_TASKS = {
    "Data center", "Cluster", "Host", "Storage domain, attached to the data center and active",
    "VM to template (created Down)", "A disk on it", "A NIC on it",
    "Start it when it was made or changed (a boot check)", "Stop it", "Snapshot it (once)",
    "Template from it", "A VM from the template", "Second VM, running",
}
#: the playbook's variables changed (the update runs), and the tasks that must change
UPDATES = {"describe": "changed by Ansible", "vm1_memory": "512MiB", "vm1_cores": 2,
           "disk_size": "2GiB", "nic_interface": "e1000"}
UPDATING_TASKS = CHANGING_TASKS - {"Snapshot it (once)", "A VM from the template"}
RUN_TIMEOUT = 600.0


@dataclass
class Run:
    seconds: float
    stats: dict[str, int]
    #: task name -> "changed" | "ok" | "skipped" | "failed"
    tasks: dict[str, str]
    output: str


@pytest.fixture(scope="session")
def ansible_playbook() -> Path:
    """``ansible-playbook`` of the cached venv (built on first use)."""
    need(importlib_has("ovirtsdk4"),
         "ovirt-engine-sdk-python is not installed (requirements-dev.txt); the "
         "collection's modules need it")
    try:
        return ensure()
    except AnsibleUnavailable as exc:
        need(False, f"the ansible 9.x package cannot be installed: {exc}")
        raise


def importlib_has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.fixture
def https_server(manager_factory: Callable[..., Any], tmp_path: Path) -> Iterator[Any]:
    """An empty manager and the API over it on HTTPS (loopback) with its own CA."""
    from virtplane_api_ovirt import Server, create_app
    from virtplane_api_ovirt.auth import UserStore

    m = manager_factory()
    pki = m.context.paths.state.parent / "api-pki"
    users = UserStore(tmp_path / "api-users.db")
    users.set_password("admin@internal", PASSWORD)
    app = create_app(m, users=users, pki=pki)
    server = Server(app, pki=pki).start()
    server.manager, server.pki, server.api = m, pki, app.state.api
    yield server
    server.stop()


def play(playbook: Path, server: Any, work: Path, **variables: Any) -> Run:
    """Run site.yml once; its per-task outcome and totals (JSON callback)."""
    storage = work / "storage"
    storage.mkdir(exist_ok=True)
    # nothing from the caller's Ansible setup: only the package's own collections
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({"ANSIBLE_PYTHON_INTERPRETER": sys.executable,
                "ANSIBLE_COLLECTIONS_PATH": str(work / "no-collections"),
                "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
                "ANSIBLE_LOCAL_TEMP": str(work / "ansible-local"),
                "ANSIBLE_REMOTE_TEMP": str(work / "ansible-remote"),
                "ANSIBLE_HOME": str(work / "ansible-home"),
                "ANSIBLE_LOCALHOST_WARNING": "false",
                "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
                "ANSIBLE_DEPRECATION_WARNINGS": "false",
                "ANSIBLE_NOCOLOR": "1"})
    extra = {"engine_url": server.url, "engine_password": PASSWORD,
             "engine_ca": str(server.pki / "ca.pem"), "storage_path": str(storage),
             "host_address": "test:///default", **variables}
    started = time.monotonic()
    done = subprocess.run(
        [str(playbook), "-i", "localhost,", str(PLAYBOOK), "-e", json.dumps(extra)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env, cwd=work)
    seconds = time.monotonic() - started
    try:
        report = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"ansible-playbook exited {done.returncode} without a JSON report:\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    tasks: dict[str, str] = {}
    for play_ in report["plays"]:
        for task in play_["tasks"]:
            result = task["hosts"].get("localhost", {})
            state = ("failed" if result.get("failed") else "skipped" if result.get("skipped")
                     else "changed" if result.get("changed") else "ok")
            tasks[task["task"]["name"]] = state
            if state == "failed":
                tasks[task["task"]["name"]] += f": {result.get('msg')}"
    return Run(seconds, report["stats"].get("localhost", {}), tasks, done.stdout)


def _no_failures(run: Run) -> None:
    failed = {k: v for k, v in run.tasks.items() if v.startswith("failed")}
    assert not failed, f"the run failed: {failed}"
    assert run.stats["failures"] == 0 and run.stats["unreachable"] == 0


def _changed(run: Run) -> set[str]:
    return {k for k, v in run.tasks.items() if v == "changed"}


def test_playbook_runs_twice_and_the_second_run_changes_nothing(
        ansible_playbook: Path, https_server: Any, tmp_path: Path) -> None:
    first = play(ansible_playbook, https_server, tmp_path)
    _no_failures(first)
    assert _changed(first) == CHANGING_TASKS
    assert first.stats["changed"] == len(CHANGING_TASKS)

    second = play(ansible_playbook, https_server, tmp_path)
    _no_failures(second)
    assert _changed(second) == set(), f"the second run changed {sorted(_changed(second))}"
    assert second.stats["changed"] == 0
    assert second.tasks["Start it when it was made or changed (a boot check)"] == "skipped"
    _check_virtplane(https_server, describe="made by Ansible", vm1_memory=256, vm1_cores=1,
                     disk_size=1 << 30, nic_model="virtio")

    # the administrator edits the playbook: the update services change what exists
    third = play(ansible_playbook, https_server, tmp_path, **UPDATES)
    _no_failures(third)
    assert _changed(third) == UPDATING_TASKS
    fourth = play(ansible_playbook, https_server, tmp_path, **UPDATES)
    _no_failures(fourth)
    assert _changed(fourth) == set(), f"the fourth run changed {sorted(_changed(fourth))}"
    _check_virtplane(https_server, describe="changed by Ansible", vm1_memory=512, vm1_cores=2,
                     disk_size=2 << 30, nic_model="e1000")
    print("ansible-playbook runs: " + ", ".join(
        f"{r.seconds:.1f} s" for r in (first, second, third, fourth)))


def _check_virtplane(server: Any, *, describe: str, vm1_memory: int, vm1_cores: int,
                     disk_size: int, nic_model: str) -> None:
    """What the playbook made, read through virtplane's services (and, for what the
    model has no field for, the API's own attribute store)."""
    from virtplane import model

    m, extras = server.manager, server.api.extras
    dc = m.datacenters.get("ans_dc")
    assert dc.description == describe
    cl = m.clusters.get("ans_cluster")
    assert cl.datacenter_id == dc.id
    assert cl.description == describe  # the model's since clusters have one
    host = m.hosts.get("ans_host")
    assert (host.cluster_id, host.uri, host.status) == (cl.id, "test:///default",
                                                        model.HostStatus.UP)
    assert extras.get(host.id, "comment") == describe
    dom = m.storage.get("ans_data")
    assert (dom.type, dom.datacenter_id, dom.status) == ("localfs", dc.id,
                                                        model.DomainStatus.ACTIVE)
    assert extras.get(dom.id, "description") == describe
    assert sorted(v.name for v in m.vms.list()) == ["ans_vm1", "ans_vm2", "ans_vm3"]

    vm1 = m.vms.get("ans_vm1")
    assert vm1.status == model.VmStatus.DOWN and vm1.cluster_id == cl.id
    assert (vm1.spec.memory_mib, vm1.spec.vcpus) == (vm1_memory, vm1_cores)
    assert extras.get(vm1.id, "topology") == f"1:{vm1_cores}:1"
    assert extras.get(vm1.id, "guaranteed") == str(128 << 20)
    assert [(d.name, d.domain_id, d.bootable) for d in vm1.spec.disks] == [
        ("ans_vm1_disk1", dom.id, True)]
    image = m.disks.get(vm1.spec.disks[0].image_id or "")
    assert image.volumes[-1].size_bytes == disk_size
    assert [(n.name, n.network, n.model) for n in vm1.spec.nics] == [
        ("nic1", "default", nic_model)]
    assert (vm1.spec.nics[0].mac or "").startswith("56:6f:")
    assert [s.description for s in m.snapshots.list(vm1.id)] == ["before the template"]

    tpl = m.templates.get("ans_tpl")
    assert [d.name for d in tpl.spec.disks] == ["ans_vm1_disk1"]
    assert extras.get(tpl.id, "description") == describe
    assert extras.get(tpl.id, "cluster") == cl.id

    vm2 = m.vms.get("ans_vm2")
    assert vm2.status == model.VmStatus.UP and vm2.host_id == host.id
    assert (vm2.spec.memory_mib, vm2.spec.vcpus) == (512, 2)
    assert vm2.spec.custom_properties.get("description") == describe

    vm3 = m.vms.get("ans_vm3")
    assert vm3.status == model.VmStatus.DOWN
    assert extras.get(vm3.id, "template") == tpl.id
    assert [d.name for d in vm3.spec.disks] == ["ans_vm1_disk1"]
    assert vm3.spec.disks[0].image_id not in (None, image.id)
