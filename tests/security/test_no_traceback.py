"""No input makes ``virtplane`` print a traceback (without ``--debug``).

The known ones first (each printed a traceback before): a size of ``infG``, a
compatibility version ``abc``, a state file under a file, invalid UTF-8 in the
config file, a non-XML reply from an OVM3 agent, device XML from a hook that is
not XML. Then a property-based test (hypothesis) drives the command line
in-process with generated commands, names, sizes, paths, URIs and config files
against a small installation on the test driver, and asserts a clean exit (a
status, never an exception) and no traceback on stderr. It is derandomized and
bounded (about 200 examples) so CI stays fast and repeatable.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtplane import model
from virtplane.cli import main
from virtplane.errors import HookError, HypervisorError


@contextlib.contextmanager
def _stdin(text: str):
    """What a command reading stdin (``vm ticket``) gets."""
    import sys

    saved, sys.stdin = sys.stdin, io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = saved


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            _stdin("s3cret\n"):
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def installed(tmp_path, monkeypatch) -> Path:
    """A data center, cluster, host (test driver), data and ISO domains, a disk and a VM;
    returns the state file."""
    monkeypatch.setenv("VIRTPLANE_DIRECT", "1")
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "state.db"
    iso = tmp_path / "cd.iso"
    iso.write_bytes(b"\0" * 2048)
    for argv in (["dc", "add", "dc1"], ["cluster", "add", "cl1", "--dc", "dc1"],
                 ["host", "add", "h1", "test:///default", "--cluster", "cl1"],
                 ["storage", "add", "sd1", "--type", "localfs", "--path",
                  str(tmp_path / "sd1"), "--dc", "dc1"],
                 ["storage", "add", "iso1", "--type", "localfs", "--path",
                  str(tmp_path / "iso1"), "--dc", "dc1", "--class", "iso"],
                 ["iso", "upload", "iso1", str(iso)],
                 ["disk", "create", "d1", "--domain", "sd1", "--size", "1M"],
                 ["vm", "create", "vm1", "--cluster", "cl1", "--memory", "256",
                  "--disk", "1M@sd1"]):
        rc, _out, err = _cli("--state", str(state), *argv)
        assert rc == 0, (argv, err)
    return state


def _clean(rc: int, err: str) -> None:
    assert isinstance(rc, int) and 0 <= rc < 128, rc
    assert "Traceback" not in err, err


# ------------------------------------------------------------------ known inputs


@pytest.mark.parametrize("argv", [
    ["vm", "create", "v", "--cluster", "cl1", "--disk", "infG@sd1"],
    ["vm", "create", "v", "--cluster", "cl1", "--disk", "nan@sd1"],
    ["vm", "create", "v", "--cluster", "cl1", "--disk", "99999999999999999999T@sd1"],
    ["disk", "create", "x", "--domain", "sd1", "--size", "1e400"],
    ["disk", "extend", "d1", "--size", "-1"],
    ["arch", "show", "x86_64", "--compat", "abc"],
    ["arch", "list", "--compat", "4"],
    ["cluster", "add", "c2", "--dc", "dc1", "--compat", "x.y"],
    ["vm", "create", "v", "--cluster", "cl1", "--vcpus", "100000"],
    ["--state", "/etc/passwd/x.db", "dc", "list"],
])
def test_known_inputs_give_an_error_not_a_traceback(installed, argv):
    rc, _out, err = _cli("--state", str(installed), *argv)
    assert rc != 0 and err.startswith(("virtplane: error:", "usage:")), err
    _clean(rc, err)


def test_invalid_utf8_in_the_config_file(installed, xdg):
    conf = xdg["XDG_CONFIG_HOME"] / "virtplane" / "virtplane.toml"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_bytes(b'[state]\npath = "\xff\xfe"\n')
    rc, _out, err = _cli("dc", "list")
    assert rc == 2 and "not valid TOML" in err and "UTF-8" in err
    _clean(rc, err)


class _NotAnAgent(http.server.BaseHTTPRequestHandler):
    body = b"<html><body>a proxy's error page</body></html>"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.mark.parametrize("body", [b"hello, not XML at all", b"<html>not XML-RPC</html>"])
def test_a_non_xml_reply_from_an_ovm3_agent(installed, body, monkeypatch):
    monkeypatch.setenv("VIRTPLANE_OVM3_PASSWORD", "pw")
    handler = type("H", (_NotAnAgent,), {"body": body})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rc, _out, err = _cli("--state", str(installed), "host", "add", "o1",
                             f"http://oracle@127.0.0.1:{server.server_port}", "--cluster",
                             "cl1", "--driver", "ovm3")
    finally:
        server.shutdown()
        server.server_close()
    assert rc != 0 and "not an XML-RPC response" in err
    _clean(rc, err)


@pytest.mark.parametrize("point", ["before_device_create", "after_device_create"])
def test_device_xml_from_a_hook_that_is_not_xml(hooks, manager_factory, point):
    hooks.add(point, "10_bad", 'echo "<interface><broken" > "$_hook_domxml"\n', python=False)
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.hosts.add("h", "cl", "test:///default")
    m.vms.create(model.VmSpec(name="v", memory_mib=256, nics=[
        model.NicSpec(name="n0", custom_properties={"x": "1"})]), "cl")
    if point.startswith("before"):
        with pytest.raises(HookError, match="device XML a hook returned is not usable"):
            m.vms.start("v")
        assert m.vms.get("v").status == model.VmStatus.DOWN
    else:  # an after point never fails the operation; the failure is in the event log
        m.vms.start("v")
        assert any("not usable" in e[2] for e in m.vms.events("v"))
        m.vms.destroy("v")


def test_hypervisor_errors_stay_errors():
    assert issubclass(HookError, Exception) and issubclass(HypervisorError, Exception)


# --------------------------------------------------------------- generated inputs

NAMES = ["dc1", "cl1", "h1", "sd1", "iso1", "d1", "vm1", "tpl1", "s1", "cd.iso", "x86_64",
         "ppc64", "before_vm_start", "n0", "disk0"]
TRICKY = ["", " ", "-", "--", ".", "..", "../../etc/x", "a/b", "\x1b[2J", "x\x00y", "é\u202e",
          "0", "-1", "1e400", "inf", "nan", "NaN", "100000", "9" * 30, "0f8fad5b-d9cb-469f-a165-"
          "70867728950e", "iso:iso1/../../etc/shadow", "iso:iso1/cd.iso", "disk=d1",
          "disk=vm1", "1M@sd1", "infG@sd1", "0@sd1", "1M@nope", "-5G@sd1", "1.5.5G",
          "PATH=x", "a=b", "password=pw", "4.8", "4.2", "abc", "9.9", "{}", "[]", "%41",
          "/etc/passwd/x", "/nonexistent/file", "test:///default",
          "https://oracle:pw@127.0.0.1:1", "qemu+ssh://a:b@127.0.0.1:1/system",
          "http://[::1", "user", "network:model", "vnc", "spice"]
#: mostly names that exist (so commands get past the lookup) and known-tricky values,
#: sometimes any text
word = st.one_of(st.sampled_from(NAMES), st.sampled_from(NAMES), st.sampled_from(TRICKY),
                 st.sampled_from(TRICKY),
                 st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12))

COMMANDS = [
    "dc add W", "dc list", "cluster add W --dc W", "cluster add W --dc dc1 --compat W",
    "cluster list", "host add W W --cluster W", "host add W W --cluster cl1 --driver W",
    "host list", "host show W", "host check W", "host maintenance W",
    "storage add W --type W --path P --dc W", "storage add W --type localfs --path P -o W",
    "storage show W", "storage verify W", "storage repair W", "storage refresh W",
    "storage list", "disk create W --domain W --size W", "disk create W --domain sd1 "
    "--size W --format W", "disk import W --domain W --file P", "disk list", "disk snapshot W",
    "disk merge W", "disk clone W W", "disk extend W --size W", "disk remove W",
    "iso upload W P", "iso list W", "vm create W --cluster W", "vm create W --cluster cl1 "
    "--memory W --vcpus W --disk W --nic W", "vm create W --cluster cl1 --cd W --os W",
    "vm list", "vm show W", "vm start W", "vm destroy W", "vm pause W", "vm continue W",
    "vm snapshot W W", "vm snapshots W", "vm revert W W", "vm snapshot-delete W W",
    "vm cd W W", "vm ticket W", "vm stats W", "vm events W", "vm remove W",
    "vm plug W disk W", "vm plug W nic W", "vm unplug W W W", "template create W W",
    "template list", "template vm W W --cluster W", "template remove W", "arch list",
    "arch show W", "arch show W --compat W", "hooks list", "hooks run W --vm W --dry-run",
    "plugins list", "plugins show W", "config show", "W", "W W", "vm W W",
]


@st.composite
def command_lines(draw: st.DrawFn, tmp: Path) -> list[str]:
    template = draw(st.sampled_from(COMMANDS)).split()
    paths = [str(tmp / "cd.iso"), str(tmp / "new"), str(tmp / "sd1"), "/etc/passwd/x",
             "/nonexistent/file", "relative/dir", ""]
    argv = []
    for token in template:
        if token == "W":
            argv.append(draw(word))
        elif token == "P":
            argv.append(draw(st.sampled_from(paths)))
        else:
            argv.append(token)
    if draw(st.integers(0, 5)) == 0:
        argv.append(draw(st.sampled_from(["--json", "--help", "-o", "x=y", "--force"])))
    return argv


CONFIGS = [None, b"", b"[state]\npath = 5\n", b"[nope]\n", b"\xff\xfe\x00",
           b"[plugin.hook_scripts]\ntimeout_secnds = 1\n", b"[plugins]\ndisabled = 'x'\n",
           b"[[[", b'[state]\npath = "/etc/passwd/x.db"\n']


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_command_lines_exit_cleanly(installed, xdg, data):
    tmp = installed.parent
    argv = data.draw(command_lines(tmp), label="argv")
    config = data.draw(st.sampled_from(CONFIGS), label="config") \
        if data.draw(st.integers(0, 4), label="with a config") == 0 else None
    conf = xdg["XDG_CONFIG_HOME"] / "virtplane" / "virtplane.toml"
    if config is not None:
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_bytes(config)
    try:
        rc, _out, err = _cli("--state", str(installed), *argv)
    finally:
        if config is not None:
            conf.unlink()
    _clean(rc, err)
    assert not (Path("/etc/passwd/x").exists() or Path(os.getcwd()).parent / "x" == tmp)
