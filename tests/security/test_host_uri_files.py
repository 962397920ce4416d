"""Host URIs naming a file for libvirt's test driver.

libvirt's test driver loads whatever file its URI names as its configuration, and its
parse error quoted the file's first line: ``host add h test:///../../etc/passwd``
answered ``cannot connect to ...: /../../etc/passwd:1: Start tag expected ...
root:x:0:0:root:/root:/bin/bash``. Now a test URI is ``test:///default``, or with
``[plugin.kvm] test_driver_files = true`` a plain ``test:///ABSOLUTE/PATH.xml`` naming
an existing file by its normalised path; libvirt's own words about a test config that
did not load never reach the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from virtplane.errors import HostUnreachable, InvalidInput

#: URIs that made libvirt read /etc/passwd (each seen doing so)
PASSWD_URIS = [
    "test:///../../etc/passwd",
    "test:///etc/passwd",
    "test:////etc//passwd",
    "test+unix:///etc/passwd",
    "test:///etc/passwd?x=1",
    "test:///%65tc/passwd",
    "test:/etc/passwd",
]


def _kvm_config(xdg: dict[str, Path], text: str) -> None:
    folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "virtplane.toml").write_text("[plugin.kvm]\n" + text)


def _plane(manager_factory: Callable[..., Any]) -> Any:
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    return m


def _node(path: Path, body: str = "<node/>") -> Path:
    path.write_text(body)
    return path


@pytest.mark.parametrize("uri", PASSWD_URIS)
def test_a_test_uri_naming_a_file_is_refused_by_default(
        manager_factory: Callable[..., Any], uri: str) -> None:
    m = _plane(manager_factory)
    with pytest.raises(InvalidInput) as caught:
        m.hosts.add("h", "cl", uri)
    message = str(caught.value)
    assert f"host URI {uri!r}" in message
    assert "test:///default" in message and "test_driver_files = true" in message
    assert "root:" not in message
    assert m.hosts.list() == []


@pytest.mark.parametrize("uri", [*PASSWD_URIS, "test:///etc/../tmp/x.xml"])
def test_files_allowed_still_refuse_what_is_not_a_normalised_xml_file(
        manager_factory: Callable[..., Any], xdg: dict[str, Path], uri: str) -> None:
    _kvm_config(xdg, "test_driver_files = true\n")
    m = _plane(manager_factory)
    with pytest.raises(InvalidInput, match="test:///ABSOLUTE/PATH.xml") as caught:
        m.hosts.add("h", "cl", uri)
    assert "root:" not in str(caught.value)
    assert m.hosts.list() == []


def test_files_allowed_refuse_links_missing_files_and_transports(
        manager_factory: Callable[..., Any], xdg: dict[str, Path], tmp_path: Path) -> None:
    _kvm_config(xdg, "test_driver_files = true\n")
    m = _plane(manager_factory)
    node = _node(tmp_path / "node.xml")
    (tmp_path / "link.xml").symlink_to("/etc/passwd")
    (tmp_path / "sub").mkdir()
    cases = {
        f"test://{tmp_path}/link.xml": "symbolic links",
        f"test://{tmp_path}/missing.xml": "not an existing file",
        f"test://{tmp_path}/sub/../node.xml": "not a normalised absolute path",
        f"test://{tmp_path}//node.xml": "not a normalised absolute path",
        f"test+unix://{node}": "no host, transport",
        f"test://{node}?x=1": "no host, transport",
        f"test://localhost{node}": "no host, transport",
    }
    for uri, why in cases.items():
        with pytest.raises(InvalidInput, match=why):
            m.hosts.add("h", "cl", uri)
    assert m.hosts.list() == []


def test_a_test_config_file_is_a_host_when_the_setting_allows_it(
        manager_factory: Callable[..., Any], xdg: dict[str, Path], tmp_path: Path) -> None:
    node = _node(tmp_path / "node.xml",
                 "<node><domain type='test'><name>ext-1</name><memory>131072</memory>"
                 "<vcpu>1</vcpu><os><type>hvm</type></os></domain></node>")
    m = _plane(manager_factory)
    with pytest.raises(InvalidInput, match="test_driver_files = true"):
        m.hosts.add("h", "cl", f"test://{node}")
    m.close()
    _kvm_config(xdg, "test_driver_files = true\n")
    m = manager_factory()  # the same store, the new configuration
    host = m.hosts.add("h", "cl", f"test://{node}")
    assert host.uri == f"test://{node}"
    assert m.hosts.check("h").status.value == "Up"


def test_a_test_config_that_does_not_load_is_not_quoted(
        manager_factory: Callable[..., Any], xdg: dict[str, Path], tmp_path: Path) -> None:
    _kvm_config(xdg, "test_driver_files = true\n")
    m = _plane(manager_factory)
    bad = _node(tmp_path / "bad.xml", "secret-first-line\nsecond\n")
    with pytest.raises(HostUnreachable) as caught:
        m.hosts.add("h", "cl", f"test://{bad}")
    assert "secret-first-line" not in str(caught.value)
    assert "test driver could not load its configuration" in str(caught.value)
    assert m.hosts.list() == []


def test_the_default_test_uri_is_always_a_host(manager_factory: Callable[..., Any]) -> None:
    m = _plane(manager_factory)
    assert m.hosts.add("h", "cl", "test:///default").uri == "test:///default"


def test_host_add_on_the_command_line_refuses_it(
        cli: Callable[..., tuple[int, str, str]]) -> None:
    assert cli("dc", "add", "dc")[0] == 0
    assert cli("cluster", "add", "cl", "--dc", "dc")[0] == 0
    rc, out, err = cli("host", "add", "h", "test:///../../etc/passwd", "--cluster", "cl")
    assert rc == 1
    assert "'test:///../../etc/passwd'" in err and "test:///default" in err
    assert "root:" not in out + err
    assert cli("host", "list")[1].count("test:") == 0
