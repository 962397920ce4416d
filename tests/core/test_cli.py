"""The CLI's contract: --version, errors on stderr without traceback, --debug."""

from __future__ import annotations

import subprocess
import sys

from virtplane import PLUGIN_API_VERSION, __version__


def test_version(cli):
    rc, out, _ = cli("--version")
    assert rc == 0 and out.strip() == f"virtplane {__version__} (plugin API {PLUGIN_API_VERSION})"


def test_error_is_one_line_on_stderr(cli):
    rc, out, err = cli("vm", "start", "ghost")
    assert rc == 1 and out == ""
    assert err.strip() == "virtplane: error: no vm named 'ghost' (known: none)"


def test_debug_shows_the_traceback():
    proc = subprocess.run([sys.executable, "-m", "virtplane.cli", "--debug", "vm", "start", "ghost"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "NotFound" in proc.stderr


def test_usage_error_names_the_choices(cli):
    rc, _, err = cli("plugins", "frobnicate")
    assert rc == 2 and "invalid choice: 'frobnicate'" in err and "doctor" in err


def test_cli_objects_end_to_end(cli, tmp_path):
    import libvirt

    # test:///default lives as long as one connection to it is open in the process;
    # each CLI call opens and closes its own, so hold one for the test's duration.
    keep = libvirt.open("test:///default")
    assert cli("dc", "add", "dc1")[0] == 0
    assert cli("cluster", "add", "cl1", "--dc", "dc1")[0] == 0
    rc, out, err = cli("cluster", "add", "cl2", "--dc", "dc1", "--cpu", "Pentium")
    assert rc == 1 and "CPU model 'Pentium' is not supported on x86_64; allowed: Nehalem" in err
    assert cli("host", "add", "h1", "test:///default", "--cluster", "cl1")[0] == 0
    assert cli("storage", "add", "sd", "--type", "localfs", "--path", str(tmp_path / "sd"),
               "--dc", "dc1")[0] == 0
    rc, out, err = cli("vm", "create", "v1", "--cluster", "cl1", "--disk", "16M@sd", "--nic", "default")
    assert rc == 0, err
    rc, out, err = cli("vm", "create", "v2", "--cluster", "cl1", "--disk", "lots")
    assert rc == 1 and "size 'lots' is not valid" in err
    assert cli("vm", "start", "v1")[1].strip() == "vm v1: Up"
    rc, out, _ = cli("vm", "list")
    assert "v1" in out and "Up" in out and "h1" in out
    assert cli("vm", "pause", "v1")[1].strip() == "vm v1: Paused"
    assert cli("vm", "continue", "v1")[1].strip() == "vm v1: Up"
    assert '"status": "Up"' in cli("vm", "stats", "v1")[1]
    assert cli("vm", "shutdown", "v1", "--timeout", "5")[1].strip() == "vm v1: Down (shutdown)"
    assert cli("vm", "remove", "v1")[0] == 0
    rc, out, _ = cli("vm", "events", "ghost")
    assert rc == 1
    keep.close()


def test_plugins_list_stays_import_light():
    """Listing plugins must not pay for what only operations need (cold-start budget)."""
    code = ("import sys, io\nfrom virtplane.cli import main\nsys.stdout = io.StringIO()\n"
            "main(['plugins', 'list'])\nsys.stdout = sys.__stdout__\n"
            "heavy = [m for m in ('libvirt', 'attr', 'cattrs', 'xmltodict', 'sqlite3',"
            " 'packaging.specifiers', 'virtplane.model') if m in sys.modules]\n"
            "print(','.join(heavy))")
    # the first run fills the entry-point index and the API-verdict cache
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported while listing plugins: {proc.stdout.strip()}"


def test_storage_options_lists_what_a_driver_declares(cli):
    """``storage options TYPE`` (symmetric to ``host options DRIVER``) lists a storage
    driver's declared connection fields; the core's help points to it instead of naming
    any plugin's fields."""
    import json

    rc, out, err = cli("storage", "options", "localfs")
    assert rc == 0, err
    assert out.splitlines()[-1].split()[:4] == ["path", "str", "default", "(required)"]
    rc, out, err = cli("storage", "options", "localfs", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["path"]["default"] == "(required)" and rows["path"]["help"]
    rc, out, err = cli("storage", "options", "nope")
    assert rc == 1 and "no storage driver named 'nope'" in err and "localfs" in err
    for command in (("storage", "add"), ("storage", "attach"), ("host", "add")):
        rc, out, _ = cli(*command, "--help")
        assert rc == 0
        text = " ".join(out.split())
        for plugin_word in ("gluster", "ovm3", "oracle", "posixfs", "nfs", "localfs",
                            "server=", "volume=", "spec="):
            assert plugin_word not in text.lower(), (command, plugin_word)
        if command[0] == "storage":
            assert "`virtplane storage options TYPE` lists them" in text
