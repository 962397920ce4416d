"""``Clusters.update`` (rename, compatibility version, CPU model, fencing, checked and
written in one step) and ``virtplane cluster set`` on it.

Before: the core had no call to change a cluster (``PUT /clusters/{id}`` checked, then
wrote back through the store the version it had read, even on a mere rename, so a
version changed meanwhile was overwritten), and the command line could not change one.
The REST side: tests/api/test_cluster_update_service.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from virtplane import model
from virtplane.errors import AlreadyExists, InvalidInput, InvalidState

FLOOR = ("cluster 'c7' cannot be at compatibility version 4.5: its data center 'd6' is at "
         "4.6, and a cluster is never older than its data center (whose version is never "
         "lowered); use a version from 4.6 up")


def _plane(m: Any) -> Any:
    m.datacenters.add("d6", compat_version="4.6")
    return m.clusters.add("c7", "d6", compat_version="4.7")


def test_update_renames_moves_and_switches(manager_factory: Any) -> None:
    m = manager_factory()
    cl = _plane(m)
    cpu = m.context.drivers.architecture("x86_64").cpu_models()[0]
    after = m.clusters.update("c7", new_name="c8", compat="4.8", cpu_model=cpu,
                              fencing_enabled=False)
    assert (after.id, after.name, after.compat_version, after.cpu_model,
            after.fencing_enabled) == (cl.id, "c8", "4.8", cpu, False)
    stored = m.clusters.get(cl.id)
    assert (stored.name, stored.compat_version, stored.cpu_model,
            stored.fencing_enabled) == ("c8", "4.8", cpu, False)
    # lowered down to the data center's version: allowed, as in oVirt
    assert m.clusters.update(cl.id, compat="4.6").compat_version == "4.6"
    # "" clears the CPU model; nothing given, or the current values, change nothing
    assert m.clusters.update("c8", cpu_model="").cpu_model is None
    assert m.clusters.update("c8").compat_version == "4.6"
    assert m.clusters.update("c8", new_name="c8", compat="4.6").name == "c8"


def test_update_refuses_and_changes_nothing(manager_factory: Any) -> None:
    m = manager_factory()
    cl = _plane(m)
    m.clusters.add("other", "d6")
    with pytest.raises(InvalidState) as caught:
        m.clusters.update("c7", new_name="renamed", compat="4.5", fencing_enabled=False)
    assert str(caught.value) == FLOOR
    with pytest.raises(InvalidInput, match=r"'9\.9' is not one x86_64 knows; known: "):
        m.clusters.update("c7", compat="9.9", new_name="renamed")
    with pytest.raises(AlreadyExists):
        m.clusters.update("c7", new_name="other", compat="4.8")
    with pytest.raises(InvalidInput):
        m.clusters.update("c7", new_name="no/slash", fencing_enabled=False)
    with pytest.raises(InvalidInput, match="CPU model 'No-Such-CPU' is not supported on "
                                           "x86_64; allowed: "):
        m.clusters.update("c7", cpu_model="No-Such-CPU", compat="4.8")
    after = m.clusters.get(cl.id)
    assert (after.name, after.compat_version, after.cpu_model, after.fencing_enabled) == (
        "c7", "4.7", None, True)


def test_the_cpu_model_stays_while_a_vm_runs(manager_factory: Any) -> None:
    m = manager_factory()
    cl = _plane(m)
    m.context.store.add(model.Vm(spec=model.VmSpec(name="busy"), cluster_id=cl.id,
                                 status=model.VmStatus.UP))
    cpu = m.context.drivers.architecture("x86_64").cpu_models()[0]
    with pytest.raises(InvalidState) as caught:
        m.clusters.update("c7", cpu_model=cpu, new_name="c9")
    assert str(caught.value) == ("cluster 'c7' runs VMs (busy); stop them before changing "
                                 "its CPU type")
    assert (m.clusters.get(cl.id).name, m.clusters.get(cl.id).cpu_model) == ("c7", None)
    # the rest may change while it runs
    assert m.clusters.update("c7", compat="4.8", fencing_enabled=False).compat_version == "4.8"


def test_checks_and_write_are_one_step(manager_factory: Any,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """What another writer changed between the service's first read and its write is
    seen by the checks and kept by the write."""
    m = manager_factory()
    cl = _plane(m)
    m.clusters.add("c8", "d6", compat_version="4.8")
    store = m.context.store
    real = store.modify
    raced: list[str] = []

    def racing(cls: Any, key: str, fn: Any, **kw: Any) -> Any:
        if cls is model.Cluster and not raced:
            raced.append(key)
            # meanwhile: c7 moves to 4.8, then its data center rises to 4.7
            real(model.Cluster, key, lambda c: setattr(c, "compat_version", "4.8"))
            real(model.DataCenter, "d6", lambda d: setattr(d, "compat_version", "4.7"))
        return real(cls, key, fn, **kw)

    monkeypatch.setattr(store, "modify", racing)
    with pytest.raises(InvalidState, match="its data center 'd6' is at 4.7"):
        m.clusters.update("c7", compat="4.6")
    assert m.clusters.get(cl.id).compat_version == "4.8"
    raced.clear()
    # a rename writes the name alone: the version moved meanwhile stays
    m.clusters.update("c7", new_name="renamed")
    after = m.clusters.get(cl.id)
    assert (after.name, after.compat_version) == ("renamed", "4.8")


def test_cluster_set_on_the_command_line(cli: Any, manager_factory: Any,
                                         tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    for args in (("dc", "add", "d6", "--compat", "4.6"),
                 ("cluster", "add", "c7", "--dc", "d6", "--compat", "4.7")):
        rc, _out, err = cli("--state", state, *args)
        assert rc == 0, err
    rc, out, err = cli("--state", state, "cluster", "set", "c7", "--compat", "4.5")
    assert (rc, out, err.strip()) == (1, "", f"virtplane: error: {FLOOR}")
    rc, out, err = cli("--state", state, "cluster", "set", "c7", "--name", "c8",
                       "--compat", "4.6", "--no-fencing")
    assert rc == 0, err
    assert out.startswith("cluster c8 ") and out.rstrip().endswith(
        "(x86_64, compatibility 4.6, fencing off)")
    cl = manager_factory(state_path=state).clusters.get("c8")
    assert (cl.compat_version, cl.fencing_enabled) == ("4.6", False)
    rc, out, err = cli("--state", state, "cluster", "set", "c8", "--cpu", "No-Such-CPU")
    assert rc == 1 and "CPU model 'No-Such-CPU' is not supported" in err
    rc, out, err = cli("--state", state, "cluster", "set", "c8")
    assert rc == 1 and "nothing to change for cluster 'c8'" in err and "Traceback" not in err


def test_cluster_set_help_names_its_options(cli: Any) -> None:
    rc, out, _err = cli("cluster", "set", "--help")
    assert rc == 0
    for option in ("--compat MAJOR.MINOR", "--name NEW", "--cpu MODEL", "--no-fencing"):
        assert option in out
