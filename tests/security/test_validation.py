"""Validation gaps: vCPU bounds, positive sizes, known compatibility versions, absolute
storage paths, and read-only state files that still answer read-only commands.

Before: 100,000 vCPUs were accepted, a disk of 0 bytes was made, ``--compat abc``
ended in a traceback and ``9.9`` was recorded, a relative ``--path`` was stored
relative (and meant another folder from another working directory).
"""

from __future__ import annotations

import os

import pytest

from virtplane import model
from virtplane.errors import InvalidInput


@pytest.fixture
def m(manager_factory, tmp_path):
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.storage.add("sd", "localfs", "dc", {"path": str(tmp_path / "sd")})
    return m


@pytest.mark.parametrize("arch, limit", [("x86_64", 710), ("ppc64", 384)])
def test_vcpus_are_bounded_by_the_architecture(m, arch, limit):
    cl = m.clusters.add(f"c-{arch}", "dc", architecture=arch)
    for bad in (0, -1, limit + 1, 100_000):
        with pytest.raises(InvalidInput, match=f"vcpus must be between 1 and {limit}"):
            m.vms.create(model.VmSpec(name="v", memory_mib=1024, vcpus=bad), cl.name)
    with pytest.raises(InvalidInput, match=f"max_vcpus must be between 1 and {limit}"):
        m.vms.create(model.VmSpec(name="v", memory_mib=1024, max_vcpus=limit + 1), cl.name)
    assert m.vms.list() == []
    m.vms.create(model.VmSpec(name="v", memory_mib=1024, vcpus=limit), cl.name)


def test_the_os_limit_applies_when_osinfo_has_one(m, tmp_path, monkeypatch):
    extra = tmp_path / "extra.properties"
    extra.write_text("os.other.resources.maximum.numberOfCpus.value = 16\n")
    monkeypatch.setenv("VIRTPLANE_OSINFO", str(extra))
    fresh = m.arch.__class__(m.context)
    cl = m.clusters.get("cl")
    with pytest.raises(InvalidInput, match="other allows at most 16 vCPUs"):
        fresh.validate(model.VmSpec(name="v", memory_mib=1024, vcpus=17), cl)
    fresh.validate(model.VmSpec(name="v", memory_mib=1024, vcpus=16), cl)


@pytest.mark.parametrize("size", [0, -1, 1 << 61, True, 1.5])
def test_disk_sizes_must_be_positive_and_bounded(m, size):
    with pytest.raises(InvalidInput, match="size must be a positive number of bytes"):
        m.disks.create("d", "sd", size)
    dom = m.storage.get("sd").id
    with pytest.raises(InvalidInput, match="size must be a positive number of bytes"):
        m.vms.create(model.VmSpec(name="v", memory_mib=1024, disks=[
            model.DiskSpec(name="d0", size_bytes=size, domain_id=dom)]), "cl")
    assert m.store.list(model.Image) == [] and m.vms.list() == []


def test_extend_refuses_sizes_out_of_bounds(m):
    m.disks.create("d", "sd", 1 << 20)
    with pytest.raises(InvalidInput, match="size must be a positive number of bytes"):
        m.disks.extend("d", 1 << 61)


@pytest.mark.parametrize("version", ["abc", "9.9", "4", "", "4.8.1", "4.1"])
def test_compatibility_versions_must_be_known(m, version):
    with pytest.raises(InvalidInput, match=f"compatibility version {version!r} is not one "
                                           "x86_64 knows; known: 4.2, "):
        m.clusters.add("c2", "dc", compat_version=version)
    with pytest.raises(InvalidInput, match="is not one x86_64 knows"):
        m.arch.features("x86_64", version)
    assert [c.name for c in m.clusters.list()] == ["cl"]


def test_a_relative_storage_path_is_made_absolute(m, tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    dom = m.storage.add("rel", "localfs", "dc", {"path": "rel/dom"})
    assert dom.connection["path"] == str(tmp_path / "rel" / "dom")
    assert m.store.get(model.StorageDomain, dom.id).connection["path"] == str(
        tmp_path / "rel" / "dom")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    m.disks.create("d", "rel", 1 << 20)  # still the folder it was added with
    assert not (elsewhere / "rel").exists()
    assert m.storage.verify("rel") == []


def test_a_read_only_state_file_still_answers_read_only_commands(m, cli, tmp_path,
                                                                 monkeypatch):
    """Tests run as root, for whom permissions do not stop a write; a read-only mount
    does (access(2) says EROFS). That is what is simulated: the file is not writable."""
    state = tmp_path / "state.db"
    m.vms.create(model.VmSpec(name="v", memory_mib=1024), "cl")
    m.close()
    real = os.access

    def access(path, mode, *args, **kwargs):
        if str(path).startswith(str(state)) and mode & os.W_OK:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setenv("VIRTPLANE_DIRECT", "1")
    before = state.read_bytes()
    for argv in (["vm", "list"], ["vm", "show", "v"], ["dc", "list"], ["cluster", "list"],
                 ["storage", "list"], ["disk", "list"], ["host", "list"]):
        rc, _out, err = cli("--state", str(state), *argv)
        assert rc == 0 and "Traceback" not in err, (argv, err)
    rc, _out, err = cli("--state", str(state), "dc", "add", "x")
    assert rc == 1 and "read-only" in err and "Traceback" not in err
    assert state.read_bytes() == before


@pytest.mark.parametrize("arch", ["x86_64", "ppc64"])
def test_arch_show_checks_the_compat_version_against_the_named_architecture(cli, tmp_path,
                                                                            arch):
    state = str(tmp_path / "arch.db")
    rc, _out, err = cli("--state", state, "arch", "show", arch, "--compat", "abc")
    assert rc != 0 and "Traceback" not in err
    assert f"compatibility version 'abc' is not one {arch} knows; known: 4.2" in err, err
    other = {"x86_64": "ppc64", "ppc64": "x86_64"}[arch]
    assert other not in err
    rc, out, err = cli("--state", state, "arch", "show", arch, "--compat", "4.5")
    assert rc == 0 and f"name                     {arch}" in out, (out, err)
    assert "compat_version           4.5" in out
    rc, _out, err = cli("--state", state, "arch", "show", "sparc", "--compat", "abc")
    assert rc == 1 and "no architecture 'sparc' is loaded" in err
