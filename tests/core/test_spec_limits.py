"""VmSpec's numbers are checked whatever path the spec comes by (Python API, CLI; the
REST API in tests/api/test_limits_and_versions.py), and data centers keep the
compatibility version they are given.

Before: ``max_memory_mib`` of any size (9.5e16 MiB) or below the memory was stored,
a float or a string memory or vCPU count reached the domain XML, ``ha_priority`` was
checked on create only, and a data center was always made at 4.8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import small_plane
from virtplane import model, osrules
from virtplane.errors import InvalidInput, InvalidState

HUGE = 95_000_000_000_000_000  # what the fuzzer stored


@pytest.fixture
def m(manager_factory: Any, tmp_path: Path) -> Any:
    return small_plane(manager_factory(), tmp_path / "sd")


def _spec(**kw: Any) -> model.VmSpec:
    return model.VmSpec(name="v", **{"memory_mib": 1024, **kw})


@pytest.mark.parametrize("top", [HUGE, 4194305, 1 << 62])
def test_max_memory_above_the_os_maximum_is_refused(m: Any, top: int) -> None:
    with pytest.raises(InvalidInput, match=(
            rf"max_memory_mib {top} MiB is outside what other allows \(x86_64, "
            r"compatibility 4\.8\): from the VM's memory_mib \(1024\) to 4194304 MiB")):
        m.vms.create(_spec(max_memory_mib=top), "cl")
    assert m.vms.list() == []


@pytest.mark.parametrize("top", [1023, 0, -1])
def test_max_memory_below_the_memory_is_refused(m: Any, top: int) -> None:
    with pytest.raises(InvalidInput, match=rf"max_memory_mib {top} MiB is outside .* from "
                                           r"the VM's memory_mib \(1024\) to 4194304 MiB"):
        m.vms.create(_spec(max_memory_mib=top), "cl")


def test_max_memory_in_range_is_kept(m: Any) -> None:
    for name, top in (("a", 1024), ("b", 4194304), ("c", None)):
        vm = m.vms.create(model.VmSpec(name=name, memory_mib=1024, max_memory_mib=top), "cl")
        assert m.vms.get(vm.id).spec.max_memory_mib == top


def test_memory_without_an_os_maximum_has_the_absolute_one(m: Any, tmp_path: Path,
                                                           monkeypatch: Any) -> None:
    """An OS entry without resources.maximum.ram (0 in an override: none) still has
    osrules.MAX_MEMORY_MIB."""
    extra = tmp_path / "extra.properties"
    extra.write_text("os.other.resources.maximum.ram.value = 0\n")
    monkeypatch.setenv("VIRTPLANE_OSINFO", str(extra))
    fresh = m.arch.__class__(m.context)
    cl = m.clusters.get("cl")
    limit = osrules.MAX_MEMORY_MIB
    fresh.validate(_spec(memory_mib=limit, max_memory_mib=limit), cl)
    with pytest.raises(InvalidInput, match=rf"memory {limit + 1} MiB is outside what other "
                                           rf"allows .*: 256\.\.{limit} MiB"):
        fresh.validate(_spec(memory_mib=limit + 1), cl)
    with pytest.raises(InvalidInput, match=rf"max_memory_mib {HUGE} MiB .* to {limit} MiB"):
        fresh.validate(_spec(max_memory_mib=HUGE), cl)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("max_memory_mib", 2048.5, "max_memory_mib must be a whole number of MiB or None, "
                               "not 2048.5"),
    ("max_memory_mib", "4096", "max_memory_mib must be a whole number of MiB or None, "
                               "not '4096'"),
    ("max_memory_mib", True, "max_memory_mib must be a whole number of MiB or None, not True"),
    ("memory_mib", 1024.0, "memory_mib must be a whole number of MiB, not 1024.0"),
    ("vcpus", "2", "vcpus must be a whole number of vCPUs, not '2'"),
    ("max_vcpus", 2.0, "max_vcpus must be a whole number of vCPUs or None, not 2.0"),
])
def test_numbers_must_be_whole(m: Any, field: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=f"VM 'v' is not valid: {message}"):
        m.vms.create(_spec(**{field: value}), "cl")
    assert m.vms.list() == []


def test_ha_priority_is_checked_on_every_validation(m: Any) -> None:
    """vms.create checked it; a template's VM, a properties update did not."""
    cl = m.clusters.get("cl")
    for bad in (101, -1):
        with pytest.raises(InvalidInput, match=f"ha_priority must be from 0 to 100 .* got {bad}"):
            m.arch.validate(_spec(ha_priority=bad), cl)
    with pytest.raises(InvalidInput, match="ha_priority must be a whole number, not 5.5"):
        m.arch.validate(_spec(ha_priority=5.5), cl)
    m.arch.validate(_spec(ha_priority=100), cl)


def test_a_stored_spec_gets_the_same_checks_on_update(m: Any) -> None:
    """A VM stored before the check (max below its memory) is refused on its next
    change, naming the field, instead of being written back."""
    vm = m.vms.create(_spec(max_memory_mib=2048), "cl")
    m.store.modify(model.Vm, vm.id, lambda v: setattr(v.spec, "max_memory_mib", 512))
    with pytest.raises(InvalidInput, match=r"max_memory_mib 512 MiB is outside"):
        m.vms.update_properties("v", {"k": "x"})


def test_cli_refuses_a_huge_max_memory(cli: Any, tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    for args in (("dc", "add", "dc"), ("cluster", "add", "cl", "--dc", "dc")):
        assert cli("--state", state, *args)[0] == 0
    rc, _out, err = cli("--state", state, "vm", "create", "v", "--cluster", "cl",
                        "--memory", "1024", "--max-memory", str(HUGE))
    assert rc == 1 and f"max_memory_mib {HUGE} MiB is outside what other allows" in err
    assert "Traceback" not in err
    rc, _out, err = cli("--state", state, "vm", "create", "v", "--cluster", "cl",
                        "--memory", "1024", "--max-memory", "512")
    assert rc == 1 and "from the VM's memory_mib (1024) to 4194304 MiB" in err
    rc, out, _err = cli("--state", state, "vm", "create", "v", "--cluster", "cl",
                        "--memory", "1024", "--max-memory", "4096")
    assert rc == 0, out


# ------------------------------------------------ data center compatibility versions


def test_a_data_center_keeps_its_version(m: Any) -> None:
    dc = m.datacenters.add("old", compat_version="4.5")
    assert m.datacenters.get(dc.id).compat_version == "4.5"
    assert m.datacenters.get("dc").compat_version == model.DEFAULT_COMPAT


@pytest.mark.parametrize("version", ["9.9", "4.1", "abc", "", "4"])
def test_a_data_center_version_must_be_supported(m: Any, version: str) -> None:
    with pytest.raises(InvalidInput, match=rf"data center compatibility version {version!r} is "
                                           r"not supported; supported: 4\.2, 4\.3, .*4\.8"):
        m.datacenters.add("bad", compat_version=version)
    assert [d.name for d in m.datacenters.list()] == ["dc"]


def test_versions_between_a_data_center_and_its_clusters(m: Any) -> None:
    dc = m.datacenters.add("d5", compat_version="4.5")
    m.clusters.add("c6", "d5", compat_version="4.6")
    m.clusters.add("c7", "d5", compat_version="4.7")
    assert m.datacenters.lowest_cluster_version(dc) == ("c6", "4.6")
    m.datacenters.check_new_version(dc, "4.6")
    with pytest.raises(InvalidState, match="data center 'd5' cannot move to compatibility "
                                           "version 4.7: its cluster 'c6' is at 4.6"):
        m.datacenters.check_new_version(dc, "4.7")
    with pytest.raises(InvalidInput, match="not supported"):
        m.datacenters.check_new_version(dc, "5.0")
    m.datacenters.check_cluster_version(dc, "cx", "4.5")
    with pytest.raises(InvalidState, match="cluster 'cx' cannot be at compatibility version "
                                           "4.4: its data center 'd5' is at 4.5"):
        m.datacenters.check_cluster_version(dc, "cx", "4.4")
