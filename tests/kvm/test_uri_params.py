"""A host URI's query parameters: unknown ones refused, privileged ones named.

libvirt passes a parameter it does not read on to the remote end unread, splits the
query at ``;`` as well as ``&`` (when no ``&`` follows), and decodes %-escapes in
names: a check that reads a URI differently from libvirt can be walked around
(``?no_tty=1;netcat=...`` went past the program check before). These tests hold the
kvm driver's reading to libvirt's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from virtplane.errors import InvalidInput
from virtplane_kvm import opening, uri_params


@pytest.mark.parametrize("uri", [
    "qemu:///system", "test:///default", "qemu+ssh://root@h1/system",
    "qemu+ssh://h1/system?no_tty=1&sshauth=agent,privkey&mode=direct&proxy=native",
    "qemu+tls://h1/system?no_verify=0&known_hosts_verify=normal&auth=sasl.gssapi",
    "qemu+unix:///system?socket=/run/libvirt/virtqemud-sock",
])
def test_libvirts_own_parameters_pass(uri: str) -> None:
    uri_params.check_params(uri)


@pytest.mark.parametrize("uri, named", [
    ("qemu+ssh://h1/system?keyfle=/k", "'keyfle'"),
    ("qemu+ssh://h1/system?no_tty=1&Colour=red", "'colour'"),
    ("qemu+ssh://h1/system?k%65yfle=/k", "'keyfle'"),
])
def test_an_unknown_parameter_is_named_with_the_allowed_ones(uri: str, named: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        uri_params.check_params(uri)
    message = str(caught.value)
    assert f"host URI {uri!r}" in message and named in message
    assert "libvirt reads only" in message and "keyfile" in message and "no_tty" in message


@pytest.mark.parametrize("uri, why", [
    ("qemu+ssh://h1/system?no_tty=1;keyfile=/k", "';' in the query"),
    ("qemu+ssh://h1/system?name=qemu:///system\n", "white space or a control"),
    ("qemu+ssh://h1/sys tem", "white space or a control"),
    ("qemu+ssh://h1/system\x00", "white space or a control"),
    ("qemu+ssh://-oProxyCommand=x/system", "starts with '-'"),
])
def test_what_libvirt_would_read_differently_is_refused(uri: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        uri_params.check_params(uri)


def test_a_semicolon_no_longer_hides_a_program_parameter() -> None:
    """libvirt splits ``no_tty=1;netcat=...`` into two parameters when no ``&``
    follows; the program check used to see only ``no_tty``."""
    for uri in ("qemu+ssh://root@h1/system?no_tty=1;netcat=/bin/sh",
                "qemu+ssh://root@h1/system?no_tty=1;c%6fmmand=/bin/sh"):
        with pytest.raises(InvalidInput, match="run a program"):
            opening.check_program(uri)


def test_a_plus_stays_a_plus_as_in_libvirt() -> None:
    assert uri_params.params("qemu+tls://h/system?tls_priority=NORMAL:+VERS-TLS1.3") == [
        ("tls_priority", "NORMAL:+VERS-TLS1.3")]


@pytest.mark.parametrize("uri, expected", [
    ("qemu+ssh://h1/system", []),
    ("test:///default", []),
    ("qemu+ssh://h1/system?no_tty=1&sshauth=agent&mode=auto&proxy=netcat", []),
    ("qemu+tls://h1/system?no_verify=0&no_sanity=0", []),
    ("qemu+ssh://h1/system?known_hosts_verify=normal", []),
    ("qemu+ssh://h1/system?keyfile=/etc/shadow", ["keyfile=/etc/shadow"]),
    ("qemu+ssh://h1/system?KeyFile=/k&known_hosts=/kh", ["keyfile=/k", "known_hosts=/kh"]),
    ("qemu+unix:///system?socket=/run/x", ["socket=/run/x"]),
    ("qemu+tls://h1/system?pkipath=/etc/pki/x", ["pkipath=/etc/pki/x"]),
    ("qemu+tls://h1/system?no_verify=1", ["no_verify=1"]),
    ("qemu+tls://h1/system?no_sanity=1", ["no_sanity=1"]),
    ("qemu+ssh://h1/system?known_hosts_verify=ignore", ["known_hosts_verify=ignore"]),
    ("qemu+tls://h1/system?tls_priority=NORMAL", ["tls_priority=NORMAL"]),
    ("qemu+ssh://h1/system?authfile=/root/auth.conf", ["authfile=/root/auth.conf"]),
    ("qemu+ssh://h1/system?name=qemu:///embed", ["name=qemu:///embed"]),
    ("qemu+ssh://h1/system?%6beyfile=/k", ["keyfile=/k"]),
    ("qemu:///embed?root=/tmp/q", ["root=/tmp/q", "qemu:///embed"]),
    ("test:///srv/x.xml", ["/srv/x.xml"]),
])
def test_privileged_parts_are_named(uri: str, expected: list[str]) -> None:
    found = uri_params.privileged_parts(uri)
    assert [part.split(" (", 1)[0] for part in found] == expected
    assert all(" (" in part for part in found)  # each says what it is


def test_privileged_parts_refuse_a_malformed_uri_first() -> None:
    with pytest.raises(InvalidInput, match="unknown parameter"):
        uri_params.privileged_parts("qemu+ssh://h1/system?keyfle=/k")


def test_the_core_refuses_an_unknown_parameter_before_connecting(
        manager_factory: Callable[..., Any]) -> None:
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    with pytest.raises(InvalidInput, match="unknown parameter 'keyfle'"):
        m.hosts.add("h", "cl", "test:///default?keyfle=/k")
    assert m.hosts.list() == []  # nothing half-made
    assert m.hosts.privileged_uri_parts("test:///default?keyfile=/k") == [
        "keyfile=/k (an ssh private key on this machine)"]
    assert m.hosts.privileged_uri_parts("test:///default") == []


def test_a_stored_uri_is_checked_when_its_connection_opens() -> None:
    """A host stored before the check (or written into the store by hand) is refused
    when the driver opens it, not handed to libvirt."""
    from virtplane_kvm import Kvm

    with pytest.raises(InvalidInput, match="unknown parameter 'keyfle'"):
        Kvm().connect("test:///default?keyfle=/k")
