"""oVirt's osinfo grammar: loading, lookup order, overrides, and load-time errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtplane import osinfo
from virtplane.errors import ConfigError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "osinfo-defaults.properties"
ROOT = Path(__file__).resolve().parents[2]
X86 = ROOT / "arch_x86_64/src/virtplane_arch_x86_64/osinfo/x86_64.properties"
PPC = ROOT / "arch_ppc64/src/virtplane_arch_ppc64/osinfo/ppc64.properties"


@pytest.fixture
def ovirt() -> osinfo.OsRepository:
    assert SHARED.exists(), f"oVirt's defaults file is expected at {SHARED}"
    return osinfo.load([SHARED])


def test_ovirt_defaults_load_unchanged_and_every_entry_resolves(ovirt):
    assert len(ovirt.names()) == 61 and ovirt.dropped == [] and ovirt.retired == []
    for name in ovirt.names():
        chain = ovirt.chain(name)
        assert chain[-1].name == "other"  # every entry resolves to the root
        assert ovirt.get(name, "name")
        assert ovirt.arch_of(name) in ("x86_64", "ppc64", "s390x")
        for version in (None, "4.2", "4.8"):
            assert ovirt.effective(name, version)["id"].text.isdigit()
    assert ovirt.backward_compatibility["Windows7"].text == "11"


def test_lookup_order_and_chipset_prefixes(ovirt):
    assert ovirt.get("rhel_9x64", "devices.network") == "rtl8139, e1000, e1000e, pv, pciPassthrough"
    assert ovirt.get_list("other", "devices.diskInterfaces", "4.8", "i440fx") == [
        "IDE", "VirtIO_SCSI", "VirtIO"]
    assert ovirt.get_list("other", "devices.diskInterfaces", "4.8", "q35") == [
        "VirtIO_SCSI", "VirtIO", "SATA"]
    # oVirt's gotcha: a versioned value on an ancestor beats the child's unversioned one
    assert ovirt.get("other_ppc64", "devices.network") == "pv, spaprVlan, pciPassthrough"
    assert ovirt.get("other_ppc64", "devices.network", "4.6") == "rtl8139, e1000, pv, pciPassthrough"
    assert ovirt.get_int("other", "resources.maximum.ram", "4.2") == 6291456
    assert ovirt.get_int("other", "resources.maximum.ram", "4.7") == 65536
    src = ovirt.lookup("rhel_8_ppc64", "devices.cdInterface")
    assert src is not None and src.text == "scsi" and "osinfo-defaults.properties:" in src.source
    assert ovirt.list_for("ppc64") == sorted(n for n in ovirt.names() if "ppc64" in n)


def test_plugin_entries_stand_alone_and_under_ovirts_file():
    own = osinfo.load([X86, PPC])
    assert own.dropped == [] and own.retired == [] and {"other", "other_ppc64", "windows_11", "rhel_9_ppc64",
                                   "ubuntu_24_04", "sles_15_ppc64"} <= set(own.names())
    both = osinfo.load([X86, PPC], [SHARED])
    assert both.dropped == [] and both.retired == []
    assert both.get("other_ppc64", "derivedFrom") == "other"  # oVirt's file won, key by key


def test_override_folder_order_last_wins(xdg, tmp_path):
    d = xdg["XDG_CONFIG_HOME"] / "virtplane" / "osinfo.conf.d"
    d.mkdir(parents=True)
    (d / "10-site.properties").write_text("os.rhel_9x64.devices.network.value = pv\n")
    (d / "20-later.properties").write_text("os.rhel_9x64.devices.network.value = e1000, pv\n")
    (d / "notes.txt").write_text("os.rhel_9x64.devices.network.value = rtl8139\n")
    repo = osinfo.load([X86])
    assert repo.get("rhel_9x64", "devices.network") == "e1000, pv"
    assert repo.lookup("rhel_9x64", "devices.network").source.endswith("20-later.properties:1")


@pytest.mark.parametrize("text, message", [
    ("os.x.id.value = 9000\nos.y.id.value = 9000\n", "colliding os id 9000: x"),
    ("os.x.id.value = 9001\nos.x.colour.value = red\n", "unknown osinfo attribute 'colour'"),
    ("os.x.id.value = nine\n", "id = 'nine' is not allowed; allowed: an integer"),
    ("os.x.id.value = 9002\nos.x.devices.network.value = pv, token_ring\n",
     "a comma list of e1000, e1000e, pciPassthrough, pv"),
    ("os.x.id.value.5.1 = 3\n", "version '5.1' is not allowed"),
    ("os.x.name.text = 3\n", "has no '.value' part"),
    ("hello = world\n", "is not an osinfo key"),
    ("os.x.id.value = 9003\nos.x.derivedFrom.value = x\n", "derivedFrom cycle: x -> x"),
])
def test_bad_files_name_file_line_and_what_is_allowed(tmp_path, text, message):
    f = tmp_path / "bad.properties"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        osinfo.load([X86, f])
    assert message in str(info.value)
    assert "bad.properties" in str(info.value) or "colliding" in message or "cycle" in message


def test_missing_parent_is_dropped_and_reported(tmp_path):
    f = tmp_path / "orphans.properties"
    f.write_text("os.orphan.id.value = 9100\nos.orphan.derivedFrom.value = nowhere\n"
                 "os.grandchild.id.value = 9101\nos.grandchild.derivedFrom.value = orphan\n")
    repo = osinfo.load([X86, f])
    assert "orphan" not in repo.entries and "grandchild" not in repo.entries
    by_name = {d.name: d for d in repo.dropped}
    assert "derivedFrom 'nowhere' names no loaded OS" in by_name["orphan"].message
    assert (by_name["orphan"].file, by_name["orphan"].line) == (str(f), 2)
    assert "Illegal parent" in by_name["grandchild"].message
    assert "names an OS that was dropped itself" in by_name["grandchild"].message
    assert by_name["grandchild"].line == 4


def test_properties_syntax_continuations_and_escapes(tmp_path):
    f = tmp_path / "syntax.properties"
    f.write_text("! bang comment\nos.x.id.value : 9200\nos.x.name.value = Long \\\n"
                 "    name\nos.x.description.value=a\\=b\n")
    repo = osinfo.load([X86, f])
    assert repo.get("x", "name") == "Long name" and repo.get("x", "description") == "a=b"
