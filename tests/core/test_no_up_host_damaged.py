"""The message "no host is Up" names the host rows the state store could not read.

Before: a listing leaves a damaged row out (with a warning), so when the only host of
a VM's cluster had a damaged row, ``vm start`` said "no host is Up in the cluster"
and nothing more, though the host was there and possibly Up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import small_plane
from virtplane import model, scheduling
from virtplane.errors import InvalidState


def raw(m: Any, sql: str, **params: Any) -> None:
    """Write around the store (as a hand edit or a broken writer would)."""
    m.store._rows(sql + " RETURNING id", params)


def damage_data(m: Any, obj_id: str) -> None:
    raw(m, "UPDATE objects SET data=:d WHERE id=:id", d='{"broken": ', id=obj_id)


def damage_version(m: Any, obj_id: str) -> None:
    raw(m, "UPDATE objects SET version=0 WHERE id=:id", id=obj_id)


def _plane(manager_factory: Callable[..., Any], tmp_path: Path) -> tuple[Any, Any, Any]:
    m = small_plane(manager_factory(state_path=str(tmp_path / "s.db")), tmp_path / "sd")
    vm = m.vms.create(model.VmSpec(name="v1", memory_mib=256), "cl")
    return m, m.hosts.get("h"), vm


@pytest.mark.parametrize("damage", [damage_data, damage_version])
def test_the_only_host_unreadable_is_named(
    manager_factory: Callable[..., Any], tmp_path: Path, damage: Callable[[Any, str], None]
) -> None:
    m, host, vm = _plane(manager_factory, tmp_path)
    damage(m, host.id)
    hosts = m.store.list(model.Host)
    assert hosts == []
    with pytest.raises(InvalidState) as caught:
        scheduling.FirstUpHost(m.store).pick(vm, hosts)
    assert str(caught.value) == (
        "no host is Up in the cluster of VM 'v1'; 1 host row was left out because the "
        f"state store could not read it: 'h' (id {host.id}) (run 'virtplane state "
        "check' to list every unreadable row)"
    )


def test_without_the_store_or_without_damage_the_message_is_as_before(
    manager_factory: Callable[..., Any], tmp_path: Path
) -> None:
    m, host, vm = _plane(manager_factory, tmp_path)
    m.hosts.maintenance("h")
    hosts = m.store.list(model.Host)
    for scheduler in (scheduling.FirstUpHost(), scheduling.FirstUpHost(m.store)):
        with pytest.raises(InvalidState) as caught:
            scheduler.pick(vm, hosts)
        assert str(caught.value) == "no host is Up in the cluster of VM 'v1'"
    damage_data(m, host.id)
    with pytest.raises(InvalidState) as caught:
        scheduling.FirstUpHost().pick(vm, m.store.list(model.Host))
    assert str(caught.value) == "no host is Up in the cluster of VM 'v1'"


def test_rows_of_other_clusters_are_not_named_and_many_are_cut_short(
    manager_factory: Callable[..., Any], tmp_path: Path
) -> None:
    m, host, vm = _plane(manager_factory, tmp_path)
    m.clusters.add("other", "dc")
    elsewhere = m.hosts.add("far", "other", "test:///default")
    damage_data(m, elsewhere.id)
    m.hosts.maintenance("h")
    hosts = m.store.list(model.Host)
    with pytest.raises(InvalidState) as caught:
        scheduling.FirstUpHost(m.store).pick(vm, hosts)
    assert str(caught.value) == "no host is Up in the cluster of VM 'v1'"
    ids = []
    for i in range(scheduling.NAMED_ROWS + 2):
        ids.append(m.hosts.add(f"h{i}", "cl", "test:///default").id)
        damage_data(m, ids[-1])
    hosts = m.store.list(model.Host)
    with pytest.raises(InvalidState) as caught:
        scheduling.FirstUpHost(m.store).pick(vm, hosts)
    text = str(caught.value)
    assert f"; {scheduling.NAMED_ROWS + 2} host rows were left out" in text
    assert f"'h0' (id {ids[0]})" in text and " and 2 more (run " in text
    assert "'far'" not in text and "'h'" not in text


def test_a_start_placed_by_it_names_the_damaged_host(
    manager_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """Through the VM service (``pick_host``), with its default placement."""
    m, host, vm = _plane(manager_factory, tmp_path)
    damage_data(m, host.id)
    with pytest.raises(InvalidState) as caught:
        m.vms.start("v1")
    assert (
        f"; 1 host row was left out because the state store could not read it: 'h' (id {host.id})"
        in str(caught.value)
    )
    assert m.vms.get(vm.id).status == model.VmStatus.DOWN
