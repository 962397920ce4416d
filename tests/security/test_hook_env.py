"""Custom property names become hook script environment variables: only safe ones."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from virtplane import model
from virtplane.errors import HookError, InvalidInput
from virtplane.names import (
    DENIED_PROPERTY_NAMES,
    MAX_PROPERTY_NAME,
    RUNNER_ENV_NAMES,
    check_property_name,
)
from virtplane_hook_scripts.runner import environment_problem, run_point

EVIL_PYTHON = """#!/bin/sh
echo pwned > {marker}
exit 0
"""


@pytest.mark.parametrize("name", ["pincpu", "sap_agent", "_x", "Hugepages", "a" * MAX_PROPERTY_NAME])
def test_ordinary_property_names_pass(name):
    check_property_name(name)


@pytest.mark.parametrize("name", sorted(DENIED_PROPERTY_NAMES | RUNNER_ENV_NAMES) + [
    "path", "Path", "LD_PRELOAD", "LD_LIBRARY_PATH", "ld_audit", "PYTHONPATH",
    "PYTHONSTARTUP", "PYTHONHOME", "VIRTPLANE_STATE", "VIRTPLANE_HOOK_RUNDIR", "MALLOC_ARENA_MAX",
    "vmid", "_HOOK_DOMXML"])
def test_reserved_property_names_are_refused(name):
    with pytest.raises(InvalidInput, match="custom property name .* (reserved|family)"):
        check_property_name(name)


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", "a=b", "a.b", "BASH_FUNC_x%%",
                                  "é", "x\n", "a" * (MAX_PROPERTY_NAME + 1)])
def test_non_identifiers_are_refused(name):
    with pytest.raises(InvalidInput, match=r"custom property name .*\[A-Za-z_\]"):
        check_property_name(name)


def _script(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "50_hook"
    path.write_text(body)
    path.chmod(0o755)
    return path


def _evil_path(tmp_path: Path) -> tuple[Path, Path]:
    """A folder holding a fake python3 that leaves a marker when it runs."""
    evil = tmp_path / "evil"
    evil.mkdir()
    marker = tmp_path / "pwned"
    py = evil / "python3"
    py.write_text(EVIL_PYTHON.format(marker=marker))
    py.chmod(0o755)
    return evil, marker


def test_runner_refuses_a_path_property_merged_into_the_environment(tmp_path):
    """Defence in depth: even when a caller merged an unchecked property into the
    environment, the runner refuses to start the script."""
    evil, marker = _evil_path(tmp_path)
    script = _script(tmp_path / "hooks", "#!/usr/bin/env python3\nprint('hello')\n")
    env = dict(os.environ, PATH=f"{evil}:{os.environ.get('PATH', '')}")
    result = run_point("before_vm_start", [script], "<domain/>", False, env, 10)
    assert not marker.exists()
    [res] = result.scripts
    assert res.refused and res.rc == 2
    assert "custom property name 'PATH' is reserved" in res.stderr


@pytest.mark.parametrize("name", ["LD_PRELOAD", "PYTHONPATH", "BASH_ENV", "IFS", "TMPDIR"])
def test_runner_refuses_reserved_properties_passed_apart(tmp_path, name):
    marker = tmp_path / "ran"
    script = _script(tmp_path / "hooks", f"#!/bin/sh\ntouch {marker}\n")
    result = run_point("before_vm_start", [script], "<domain/>", False, dict(os.environ), 10,
                       properties={name: str(tmp_path / "x")})
    assert not marker.exists()
    assert result.scripts[0].refused and name in result.scripts[0].stderr


def test_runner_passes_safe_properties_and_its_own_variables(tmp_path):
    out = tmp_path / "env"
    script = _script(tmp_path / "hooks", f"#!/bin/sh\necho \"$pincpu $vmId\" > {out}\n")
    env = dict(os.environ, vmId="abc", VIRTPLANE_HOOK_POINT="before_vm_start")
    assert environment_problem(env, {"pincpu": "0-1"}) is None
    result = run_point("before_vm_start", [script], "<domain/>", False, env, 10,
                       properties={"pincpu": "0-1"})
    assert result.scripts[0].rc == 0 and not result.scripts[0].refused
    assert out.read_text().strip() == "0-1 abc"


def test_a_vm_with_a_path_property_never_runs_an_attackers_python(hooks, manager_factory,
                                                                   tmp_path):
    """End to end: the property is refused when the VM is created (once the services
    call check_property_name), or at the latest when its hook point runs: the start is
    refused naming the property, and the fake python3 never runs."""
    evil, marker = _evil_path(tmp_path)
    script = hooks.add("before_vm_start", "50_env", "", python=False)
    script.write_text("#!/usr/bin/env python3\nimport sys\n")  # found through $PATH
    m = manager_factory()
    m.add_datacenter("dc1")
    m.add_cluster("cl1", "dc1")
    m.add_host("h1", "cl1", "test:///default")
    spec = model.VmSpec(name="vm1", memory_mib=256,
                        custom_properties={"PATH": f"{evil}:/usr/bin:/bin"})
    try:
        m.create_vm(spec, "cl1")
    except InvalidInput as exc:
        assert "PATH" in str(exc)
    else:
        with pytest.raises(HookError, match="custom property name 'PATH' is reserved"):
            m.start_vm("vm1")
        assert m.get_vm("vm1").status == model.VmStatus.DOWN
    assert not marker.exists()


def test_the_plugin_validates_property_names_itself():
    """Defence in depth: the hook_scripts plugin's own validate_vm_spec refuses names that
    cannot become variables, for the VM and each device, whoever calls it."""
    from virtplane_hook_scripts import HookScripts

    spec = model.VmSpec(name="vm1", custom_properties={"LD_PRELOAD": "/x.so", "ok": "1"},
                        nics=[model.NicSpec(name="n", custom_properties={"IFS": "x"})])
    problems = HookScripts().validate_vm_spec(spec, None)
    assert len(problems) == 2
    assert "'LD_PRELOAD'" in problems[0] and "'IFS'" in problems[1]


def test_launch_flags_go_to_the_private_run_dir(hooks, manager_factory, monkeypatch, tmp_path):
    """The launch-flags file is made through runner.launch_flags_file (0700 folder, no
    links followed), in the private runtime folder, and removed afterwards."""
    from virtplane import paths

    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setattr(paths, "ROOT_RUNTIME_DIR", run / "virtplane")
    monkeypatch.setattr(paths, "_is_root", lambda: True)
    seen = tmp_path / "seen"
    hooks.add("before_vm_start", "10_flags", f"""
        import os
        open({str(seen)!r}, "w").write(os.environ["VIRTPLANE_HOOK_RUNDIR"])
        """)
    m = manager_factory()
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    m.hosts.add("h1", "cl1", "test:///default")
    vm = m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "cl1")
    m.vms.start("vm1")
    try:
        assert seen.read_text() == str(run / "virtplane" / "hooks-run")
        folder = run / "virtplane" / "hooks-run" / vm.id
        assert (os.stat(folder).st_mode & 0o777) == 0o700
        assert not (folder / "launchflags").exists()
    finally:
        m.vms.destroy("vm1")
