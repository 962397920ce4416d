"""Host URIs that make libvirt run a program of the URI's choosing are refused.

libvirt's ``ext`` transport runs its ``command`` parameter on the machine that opens the
connection (here: the engine or the CLI, often as root), and the ssh transports run a
``netcat`` parameter as a command line on the remote host. Whoever may add a host could
so run anything: ``host add h 'qemu+ext:///system?command=/bin/sh...'``. The kvm driver
refuses both (and ``command`` anywhere), however the parameter is spelt, before libvirt
sees the URI; every other transport and parameter (``?socket=`` for a second libvirtd)
keeps working.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from virtplane.errors import InvalidInput


def _plane(manager_factory: Callable[..., Any]) -> Any:
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    return m


def _uris(marker: Path) -> list[str]:
    script = f"/bin/touch {marker}"
    return [
        f"qemu+ext:///system?command={script}",
        f"qemu+EXT:///system?command={script}",
        f"qemu+ssh://root@127.0.0.1/system?netcat={script}",
        f"qemu+ssh://root@127.0.0.1/system?NetCat={script}",
        f"qemu+ssh://root@127.0.0.1/system?c%6fmmand={script}",
        f"qemu+tcp://127.0.0.1:1/system?command={script}",
    ]


@pytest.mark.parametrize("which", range(6))
def test_a_uri_that_runs_a_program_is_refused_and_nothing_runs(
        manager_factory: Callable[..., Any], tmp_path: Path, which: int) -> None:
    m = _plane(manager_factory)
    marker = tmp_path / "ran"
    uri = _uris(marker)[which]
    with pytest.raises(InvalidInput) as caught:
        m.hosts.add("h", "cl", uri)
    message = str(caught.value)
    assert f"host URI {uri!r}" in message
    assert "run a program" in message or "runs a program" in message
    assert not marker.exists()
    assert [h.name for h in m.hosts.list()] == []  # nothing half-made


def test_a_uri_that_runs_a_program_is_refused_by_the_cli(
        manager_factory: Callable[..., Any], tmp_path: Path, capsys: Any) -> None:
    from virtplane.cli import main

    m = _plane(manager_factory)
    marker = tmp_path / "ran"
    uri = f"qemu+ext:///system?command=/bin/touch {marker}"
    rc = main(["--state", str(m.context.location), "host", "add", "h", uri, "--cluster", "cl"])
    err = capsys.readouterr().err
    assert rc != 0 and "ext transport" in err and "Traceback" not in err
    assert not marker.exists()


def test_other_transports_and_parameters_pass_the_check() -> None:
    from virtplane_kvm import opening

    for uri in ("qemu:///system", "test:///default", "qemu+ssh://root@h/system",
                "qemu+unix:///system?socket=/srv/vp-h2/run/libvirt-sock",
                "qemu+tls://h/system?pkipath=/etc/pki/x", "qemu+ssh://h/system?keyfile=/k&no_tty=1"):
        opening.check_program(uri)  # raises for a refused one
    assert opening.transport_of("qemu+ssh://h/system") == "ssh"
    assert opening.transport_of("qemu:///system") == ""
