"""The engine serves its front ends: the oVirt REST API over the engine's own Manager.

The real oVirt SDK talks to an engine in a subprocess; the CLI in other processes
sees what the API did (on libvirt's test driver the VMs live in the engine's
process, so this only works when the API runs inside the engine).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from tests.engine.conftest import EngineRun, wait_for
from virtplane.errors import ConfigError
from virtplane_engine.frontends import FrontendError, factory, parse_all
from virtplane_engine.settings import EngineSettings

PASSWORD = "engine-api-pass"


# ----------------------------------------------------------------- configuration


def test_entries_take_the_default_address_or_their_own() -> None:
    specs = parse_all(("ovirt", "other@[::1]:9000"), "127.0.0.1:8443", tls=True)
    assert [(s.name, s.host, s.port) for s in specs] == [
        ("ovirt", "127.0.0.1", 8443), ("other", "::1", 9000)]


@pytest.mark.parametrize(("entries", "tls", "words"), [
    (("ovirt@0.0.0.0:8080",), False, "plain HTTP on 0.0.0.0"),
    (("ovirt", "ovirt@127.0.0.1:9"), True, "twice"),
    (("ovirt", "other"), True, "both listen on 127.0.0.1:8443"),
    (("ovirt@example.org:80",), True, "is not an address"),
    (("@127.0.0.1:1",), True, "names no front end"),
])
def test_bad_entries_are_refused_with_the_reason(entries: tuple[str, ...], tls: bool,
                                                 words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_all(entries, "127.0.0.1:8443", tls=tls)


def test_settings_check_frontends_when_built() -> None:
    with pytest.raises(ConfigError, match="plain HTTP"):
        EngineSettings(frontends=("ovirt@10.1.2.3:80",), frontend_tls=False)
    assert EngineSettings(frontends=["ovirt"]).frontends == ("ovirt",)


def test_an_unknown_frontend_names_the_installed_ones() -> None:
    with pytest.raises(FrontendError, match="no installed distribution.*ovirt"):
        factory("nope")


# ------------------------------------------------------------- the real thing


def _configure(xdg: dict[str, Path]) -> None:
    folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "virtplane.toml").write_text(
        '[engine]\nfrontends = ["ovirt"]\nfrontend_listen = "127.0.0.1:0"\n'
        "frontend_tls = false\n")


def _vm_status(engine: EngineRun, name: str) -> str:
    rows = json.loads(engine.vp("vm", "list", "--json", check=True).stdout)
    return str(next(r for r in rows if r["name"] == name)["status"])


@pytest.mark.slow
def test_the_sdk_drives_the_engine_and_the_cli_sees_it(engine: EngineRun,
                                                       xdg: dict[str, Path]) -> None:
    need(importlib.util.find_spec("ovirtsdk4") is not None,
         "ovirt-engine-sdk-python is not installed (requirements-dev.txt)")
    import ovirtsdk4 as sdk
    import ovirtsdk4.types as t

    _configure(xdg)
    engine.state.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "virtplane_api_ovirt.cli", "--state",
                    str(engine.state), "set-password", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    engine.start("--host-interval", "0.5", "--vm-interval", "1")
    fronts = engine.status()["frontends"]
    assert [f["name"] for f in fronts] == ["ovirt"], fronts
    url = fronts[0]["url"]
    assert url.startswith("http://127.0.0.1:")
    for argv in (("dc", "add", "dc1"), ("cluster", "add", "c1", "--dc", "dc1"),
                 ("host", "add", "h1", "test:///default", "--cluster", "c1"),
                 ("vm", "create", "vm1", "--cluster", "c1", "--memory", "256")):
        engine.vp(*argv, check=True)

    conn: Any = sdk.Connection(url=url, username="admin@internal", password=PASSWORD)
    try:
        vms = conn.system_service().vms_service()
        found = vms.list(search="name=vm1")
        assert [v.name for v in found] == ["vm1"]
        service = vms.vm_service(found[0].id)
        service.start()
        wait_for(lambda: service.get().status == t.VmStatus.UP, 20, "vm1 up through the SDK")
        # another process, through the engine: the same VM, running
        assert _vm_status(engine, "vm1") == "Up"
        stats = json.loads(engine.vp("vm", "stats", "vm1", check=True).stdout)
        assert stats["status"] == "Up", stats
        # a CLI change is what the API reads next
        engine.vp("vm", "destroy", "vm1", check=True)
        wait_for(lambda: service.get().status == t.VmStatus.DOWN, 20, "vm1 down, seen by SDK")
    finally:
        conn.close()
    assert engine.stop() == 0
    assert "front end ovirt serving" in engine.logs()


@pytest.mark.slow
def test_an_engine_whose_frontend_cannot_start_exits_and_says_why(
        engine: EngineRun, xdg: dict[str, Path]) -> None:
    folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "virtplane.toml").write_text('[engine]\nfrontends = ["missing-one"]\n')
    with pytest.raises(AssertionError, match="missing-one"):
        engine.start(wait=20)
    assert not engine.endpoint.exists()
