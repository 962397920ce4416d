"""osinfo files of every oVirt era load: retired attributes, all errors at once, drops.

The files below are written here in the style of oVirt's defaults file of each
era (2013's first repository, 2014-2020 with the balloon flag, 2021's short-lived
``tpmAllowed``), each on top of the x86_64 plugin's own entries.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from virtplane import osinfo
from virtplane.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
X86 = ROOT / "arch_x86_64/src/virtplane_arch_x86_64/osinfo/x86_64.properties"

#: oVirt 3.3 (2013): spiceSupport, numberOsCpus, recommended.ram, an OS without an id
ERA_2013 = """\
# oVirt 3.3 style
os.legacy_other.id.value = 8000
os.legacy_other.name.value = Other OS (2013)
os.legacy_other.derivedFrom.value = other
os.legacy_other.resources.minimum.numberOsCpus.value = 1
os.legacy_other.spiceSupport.value = true
os.legacy_win8.id.value = 8001
os.legacy_win8.name.value = Windows 8 (2013)
os.legacy_win8.derivedFrom.value = legacy_other
os.legacy_win8.spiceSupport.value = false
os.legacy_win8.watchDogModels.value = i6300esb
os.legacy_64.derivedFrom.value = legacy_other
os.legacy_64.resources.recommended.ram.value = 2000
"""

#: oVirt 3.4 (early 2014): displayProtocols with SPICE spelled "qxl"
ERA_2014 = """\
os.legacy_rhel6.id.value = 8010
os.legacy_rhel6.name.value = RHEL 6 (2014)
os.legacy_rhel6.derivedFrom.value = other
os.legacy_rhel6.displayProtocols.value = vnc/cirrus,qxl/qxl
"""

#: oVirt 3.5-4.4.4 (2014-2021): devices.balloon.enabled, also versioned
ERA_BALLOON = """\
os.legacy_ppc.id.value = 8020
os.legacy_ppc.name.value = Other PPC (2015)
os.legacy_ppc.derivedFrom.value = other
os.legacy_ppc.devices.balloon.enabled.value = true
os.legacy_ppc.devices.balloon.enabled.value.3.4 = false
"""

#: oVirt 4.4.6-4.4.9 (2021): devices.tpmAllowed, before it became devices.tpm
ERA_2021 = """\
os.legacy_rhel8.id.value = 8030
os.legacy_rhel8.name.value = RHEL 8 (2021)
os.legacy_rhel8.derivedFrom.value = other
os.legacy_rhel8.devices.tpmAllowed.value = true
os.legacy_old.id.value = 8031
os.legacy_old.name.value = Old OS (2021)
os.legacy_old.derivedFrom.value = other
os.legacy_old.devices.tpmAllowed.value = false
os.legacy_both.id.value = 8032
os.legacy_both.name.value = Both spellings (2022 override on a 2021 file)
os.legacy_both.derivedFrom.value = other
os.legacy_both.devices.tpm.value = required
os.legacy_both.devices.tpmAllowed.value = false
"""


def _write(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    return f


def _load(*files):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        repo = osinfo.load([X86, *files])
    return repo, [w for w in caught if issubclass(w.category, osinfo.RetiredAttributeWarning)]


def test_a_2013_file_loads_with_its_retired_attributes_mapped_or_ignored(tmp_path):
    f = _write(tmp_path, "2013.properties", ERA_2013)
    repo, warned = _load(f)
    assert {"legacy_other", "legacy_win8"} <= set(repo.names())
    # spiceSupport became the display protocol list, as oVirt's own change did it
    assert repo.get("legacy_other", "devices.display.protocols") == "vnc/cirrus,spice/qxl"
    assert repo.get("legacy_win8", "devices.display.protocols") == "vnc/cirrus"
    assert repo.get("legacy_win8", "devices.watchdog.models") == "i6300esb"
    # numberOsCpus was never enforced: it must not become today's numberOfCpus rule
    assert repo.lookup("legacy_other", "resources.minimum.numberOfCpus") == repo.lookup(
        "other", "resources.minimum.numberOfCpus")
    lines = {(r.line, r.name): r.message for r in repo.retired}
    assert "ignored" in lines[(5, "legacy_other")]
    assert "read as devices.display.protocols = 'vnc/cirrus'" in lines[(10, "legacy_win8")]
    assert "devices.watchdog.models" in lines[(11, "legacy_win8")]
    assert "resources.recommended.ram" in lines[(13, "legacy_64")]
    # an OS no file gives an id (2013's Unassigned_64 style) is dropped and reported
    assert [(d.file, d.line, d.name) for d in repo.dropped] == [(str(f), 12, "legacy_64")]
    assert "no loaded file gives it an id" in repo.dropped[0].message
    # one warning for the file, naming it and every line
    assert len(warned) == 1
    text = str(warned[0].message)
    assert str(f) in text and "5 retired osinfo attribute(s)" in text and "line 11" in text


def test_the_2014_qxl_spelling_of_spice_is_read_as_spice(tmp_path):
    f = _write(tmp_path, "2014.properties", ERA_2014)
    repo, warned = _load(f)
    assert repo.get_list("legacy_rhel6", "devices.display.protocols") == [
        "vnc/cirrus", "spice/qxl"]
    messages = [r.message for r in repo.retired]
    assert any("displayProtocols" in m for m in messages)
    assert any("graphics type 'qxl' is SPICE" in m for m in messages)
    assert len(warned) == 1


def test_the_balloon_flag_of_2014_2021_is_accepted_and_ignored(tmp_path):
    f = _write(tmp_path, "balloon.properties", ERA_BALLOON)
    repo, warned = _load(f)
    assert "legacy_ppc" in repo.names()
    assert [(r.line, r.name) for r in repo.retired] == [(4, "legacy_ppc"), (5, "legacy_ppc")]
    assert all("memory balloon is allowed" in r.message for r in repo.retired)
    assert "devices.balloon.enabled" not in repo.effective("legacy_ppc")
    assert len(warned) == 1


def test_tpm_allowed_of_2021_becomes_devices_tpm(tmp_path):
    f = _write(tmp_path, "2021.properties", ERA_2021)
    repo, _warned = _load(f)
    assert repo.get("legacy_rhel8", "devices.tpm") == "supported"
    assert repo.get("legacy_old", "devices.tpm") == "unsupported"
    # the successor written out wins over a mapped retired attribute, whatever the order
    assert repo.get("legacy_both", "devices.tpm") == "required"
    value = repo.lookup("legacy_rhel8", "devices.tpm")
    assert value is not None and value.mapped_from == "devices.tpmAllowed"
    assert value.source == f"{f}:4"


def test_a_retired_attribute_with_a_bad_value_is_still_an_error(tmp_path):
    f = _write(tmp_path, "bad-tpm.properties",
               "os.x.id.value = 8040\nos.x.devices.tpmAllowed.value = maybe\n")
    with pytest.raises(ConfigError, match=r"bad-tpm.properties:2: devices.tpmAllowed = "
                                          r"'maybe' is not allowed; allowed: true or false"):
        _load(f)


def test_three_bad_lines_are_reported_together_with_their_lines(tmp_path):
    f = _write(tmp_path, "three.properties", (
        "os.x.id.value = 8050\n"
        "os.x.colour.value = red\n"                       # 2: unknown attribute
        "os.x.devices.tpmAllowed.value = true\n"          # 3: retired, fine
        "os.x.bus.value = 48\n"                           # 4: bad value
        "# a comment\n"
        "os.x.devices.network.value = pv, token_ring\n"   # 6: bad list item
    ))
    with pytest.raises(osinfo.OsinfoError) as info:
        _load(f)
    problems = info.value.problems
    assert [(p.file, p.line, p.name) for p in problems] == [
        (str(f), 2, "x"), (str(f), 4, "x"), (str(f), 6, "x")]
    text = str(info.value)
    assert text.startswith("osinfo: 3 errors:")
    assert f"{f}:2: unknown osinfo attribute 'colour' of os x" in text
    assert "retired (accepted with a warning): " in text and "devices.tpmAllowed" in text
    assert f"{f}:4: bus = '48' is not allowed; allowed: 32, 64" in text
    assert f"{f}:6: devices.network = 'pv, token_ring' is not allowed" in text
    assert isinstance(info.value, ConfigError)  # callers catching ConfigError still do


def test_errors_of_several_files_come_in_one_exception(tmp_path):
    a = _write(tmp_path, "a.properties", "os.a.id.value = eight\n")
    b = _write(tmp_path, "b.properties", "os.b.id.value = 8061\nos.b.name.text = B\n")
    with pytest.raises(osinfo.OsinfoError) as info:
        _load(a, b)
    assert [(Path(p.file).name, p.line) for p in info.value.problems] == [
        ("a.properties", 1), ("b.properties", 2)]


def test_cycles_and_colliding_ids_are_listed_together(tmp_path):
    f = _write(tmp_path, "whole.properties", (
        "os.c1.id.value = 8070\nos.c1.derivedFrom.value = c2\n"
        "os.c2.id.value = 8071\nos.c2.derivedFrom.value = c1\n"
        "os.d1.id.value = 8072\nos.d2.id.value = 8072\n"))
    with pytest.raises(osinfo.OsinfoError) as info:
        _load(f)
    messages = [p.message for p in info.value.problems]
    assert len(messages) == 2  # the cycle once, not once per member
    assert messages[0].startswith("derivedFrom cycle: c1 -> c2 -> c1")
    assert messages[1].startswith("colliding os id 8072: d1")


def test_a_missing_parent_is_dropped_and_the_rest_loads(tmp_path):
    f = _write(tmp_path, "orphans.properties", (
        "os.kept.id.value = 8080\nos.kept.derivedFrom.value = other\n"
        "os.orphan.id.value = 8081\nos.orphan.derivedFrom.value = rhel_3x64_gone\n"))
    repo, _warned = _load(f)
    assert "kept" in repo.names() and "orphan" not in repo.names()
    assert repo.dropped == [osinfo.Problem(
        str(f), 4, "orphan", "os orphan dropped: derivedFrom 'rhel_3x64_gone' names no "
        "loaded OS (oVirt: 'Illegal parent for os')")]


def test_every_retired_attribute_is_documented_with_its_era():
    doc = (ROOT / "docs" / "architectures.md").read_text()
    for attr, retired in osinfo.RETIRED.items():
        assert f"`{attr}`" in doc, f"{attr} missing from docs/architectures.md"
        assert retired.successor is None or retired.successor in osinfo.ATTRIBUTES


def test_the_cli_shows_a_retired_attribute_as_one_warning_line(tmp_path, xdg):
    """``arch list``, ``vm create`` and ``vm update`` load osinfo: a retired attribute is
    one ``virtplane: warning:`` line, never Python's ``osinfo.py:LINE: Category`` and
    source line (run as a process: pytest records warnings itself in-process)."""
    import os
    import subprocess
    import sys

    folder = xdg["XDG_CONFIG_HOME"] / "virtplane" / "osinfo.conf.d"
    folder.mkdir(parents=True)
    _write(folder, "50-2013.properties", ERA_2013)
    state = str(tmp_path / "state.db")

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "virtplane.cli", "--state", state,
                               *argv], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PYTHONWARNINGS="default"))

    for argv in (("arch", "list"), ("dc", "add", "dc1"), ("cluster", "add", "cl1", "--dc",
                                                             "dc1"),
                 ("vm", "create", "v1", "--cluster", "cl1", "--memory", "256"),
                 ("vm", "update", "v1", "--property", "p_a=1")):
        done = run(*argv)
        assert done.returncode == 0, (argv, done.stderr)
        assert "osinfo.py:" not in done.stderr and "RetiredAttributeWarning" not in done.stderr
        assert "repo.add_file" not in done.stderr, done.stderr
        if argv[0] in ("arch", "vm"):
            warned = [line for line in done.stderr.splitlines() if "retired osinfo" in line]
            assert warned and all(line.startswith("virtplane: warning: ") for line in warned)
    done = run("--debug", "arch", "list")  # --debug keeps Python's own form
    assert done.returncode == 0 and "RetiredAttributeWarning" in done.stderr
