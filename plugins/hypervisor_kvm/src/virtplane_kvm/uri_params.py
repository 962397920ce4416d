"""The query parameters of a host URI: which libvirt reads, and which only a system
administrator may give.

libvirt's remote driver reads a fixed set of parameters (``?keyfile=``,
``?no_verify=``, ...), case-insensitively and after %-decoding, and passes any other
on to the remote end as part of the URI it opens there. A misspelt one (``?keyfle=``)
is therefore not an error in libvirt, only a parameter nobody reads: here it is
refused, naming it and the parameters libvirt knows (:func:`check_params`).

Some known parameters reach this machine rather than the host: they name a socket,
a key, a certificate folder or a known-hosts file that libvirt opens as the engine's
user, or they weaken how the host proves who it is (``no_verify=1``,
``known_hosts_verify=ignore``, a ``tls_priority`` string). Which of them a URI gives
is what :func:`privileged_parts` returns: the REST API lets only a SuperUser on
System add a host with any of them. The parameters that run a program (``command``,
``netcat``, the ``ext`` transport) are refused for everyone (``opening.check_program``).

This module imports nothing of libvirt, so the core can ask before connecting.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from virtplane.errors import InvalidInput

#: what each parameter libvirt's remote driver reads is for (``root``: the folder of
#: ``qemu:///embed``, QEMU run inside the connecting process)
KNOWN: dict[str, str] = {
    "name": "the URI libvirt opens on the host",
    "command": "the program the ext transport runs",
    "socket": "a UNIX socket on this machine",
    "auth": "the SASL mechanism",
    "authfile": "a credentials file on this machine",
    "sshauth": "the ssh authentication methods",
    "netcat": "the command line run on the host",
    "keyfile": "an ssh private key on this machine",
    "pkipath": "a folder of TLS certificates and keys on this machine",
    "known_hosts": "an ssh known-hosts file on this machine",
    "known_hosts_verify": "whether the host's ssh key is checked",
    "tls_priority": "the TLS ciphers and versions allowed",
    "no_sanity": "skipping the checks of the TLS certificates' form",
    "no_verify": "skipping the check of the host's certificate",
    "no_tty": "no terminal for ssh prompts",
    "mode": "which daemon the host runs (auto, legacy, direct)",
    "proxy": "how the ssh transports reach the daemon (auto, netcat, native)",
    "root": "the folder of an embedded QEMU driver on this machine",
}

#: parameters that name something on this machine, or say which URI the host opens
_LOCAL = ("socket", "authfile", "keyfile", "pkipath", "known_hosts", "root", "name")
#: value lists of parameters that are harmless with these values only
_SAFE_VALUES: dict[str, frozenset[str]] = {
    "no_verify": frozenset({"0"}),
    "no_sanity": frozenset({"0"}),
    "known_hosts_verify": frozenset({"normal"}),
}
_WEAKENING = ("no_verify", "no_sanity", "known_hosts_verify", "tls_priority")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")


def _query(uri: str) -> str:
    """The raw query of ``uri``: after the first ``?``, before any ``#``."""
    return uri.partition("?")[2].partition("#")[0]


def params(uri: str) -> list[tuple[str, str]]:
    """The (lower-case name, value) pairs of a URI's query as libvirt reads them:
    split at ``&`` (and ``;``, which libvirt takes as a separator too), then
    %-decoded (``+`` stays a plus). Splitting at both finds every name libvirt
    finds, and possibly more: never fewer."""
    found = []
    for part in re.split(r"[&;]", _query(uri)):
        if part:
            name, _, value = part.partition("=")
            found.append((unquote(name).strip().lower(), unquote(value)))
    return found


#: URI parameters that make libvirt run a program: ``command`` (the ``ext``
#: transport's program, run here) and ``netcat`` (the command line the ssh transports
#: run on the remote host)
RUNS_PROGRAM = frozenset({"command", "netcat"})


def transport_of(uri: str) -> str:
    """The transport a URI names (``ssh`` of ``qemu+ssh://...``), lower case; "" for a
    local URI without one."""
    m = _SCHEME.match(uri.strip())
    return m.group(1).split("+", 1)[1].lower() if m and "+" in m.group(1) else ""


def check_program(uri: str) -> None:
    """Refuse a URI that would make libvirt run a program of its choosing: the ``ext``
    transport (it runs its ``command`` parameter on this machine, as the engine's user)
    and the ``command`` and ``netcat`` parameters of any transport. Whoever may add a
    host could otherwise run anything here, or anything on the host's shell.

    :raises InvalidInput: naming the URI, what it asks for and what is allowed.
    """
    if transport_of(uri) == "ext":
        raise InvalidInput(f"host URI {uri!r}: the ext transport runs a program of the URI's "
                           "choosing on this machine; use ssh, tls, tcp or unix (for "
                           "example qemu+ssh://root@host/system)")
    names = {name for name, _ in params(uri)}  # decoded: c%6fmmand is command
    asked = sorted(names & RUNS_PROGRAM)
    if asked:
        raise InvalidInput(f"host URI {uri!r}: the parameter {', '.join(asked)} makes libvirt "
                           "run a program of the URI's choosing; leave it out (libvirt "
                           "picks its own helper on the host)")


def check_params(uri: str) -> None:
    """Refuse what makes a URI read differently here and in libvirt, or reach past
    the host: white space or a control character anywhere, a ``;`` in the query
    (libvirt splits there only when no ``&`` follows), a parameter libvirt does not
    read, a host name that starts with ``-`` (ssh would take it as an option).

    :raises InvalidInput: naming the URI, what is wrong and what is allowed.
    """
    check_program(uri)  # the gravest first, whatever else is wrong
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in uri):
        raise InvalidInput(f"host URI {uri!r}: white space or a control character; a URI "
                           "holds neither (escape them as %XX where a value needs one)")
    if ";" in _query(uri):
        raise InvalidInput(f"host URI {uri!r}: ';' in the query; separate parameters with "
                           "'&' (libvirt reads ';' as a separator only sometimes)")
    unknown = sorted({name for name, _ in params(uri) if name not in KNOWN})
    if unknown:
        raise InvalidInput(
            f"host URI {uri!r}: unknown parameter {', '.join(map(repr, unknown))}; "
            f"libvirt reads only {', '.join(sorted(KNOWN))} (any other would be "
            "passed on to the host unread)")
    host = urlsplit(uri).hostname or ""
    if host.startswith("-"):
        raise InvalidInput(f"host URI {uri!r}: the host name {host!r} starts with '-'; a "
                           "host name starts with a letter or a digit")


def privileged_parts(uri: str) -> list[str]:
    """The parts of ``uri`` that only a system administrator may give, each as
    ``name=value (what it is)``; [] when there are none. Runs :func:`check_params`
    first.

    Privileged: a parameter naming a file, socket or folder of this machine or the
    URI the host opens (``socket``, ``authfile``, ``keyfile``, ``pkipath``,
    ``known_hosts``, ``root``, ``name``); one weakening how the host is authenticated
    (``no_verify`` or ``no_sanity`` other than ``0``, ``known_hosts_verify`` other than
    ``normal``, any ``tls_priority``); a test-driver configuration file
    (``test:///PATH.xml``) and the embedded QEMU driver (``qemu:///embed``), both on
    this machine.
    """
    check_params(uri)
    found: list[str] = []
    for name, value in params(uri):
        if name in _LOCAL or (name in _WEAKENING
                              and value.strip().lower() not in _SAFE_VALUES.get(name, ())):
            found.append(f"{name}={value} ({KNOWN[name]})")
    parts = urlsplit(uri)
    m = _SCHEME.match(uri)
    driver = m.group(1).split("+", 1)[0].lower() if m else ""
    if driver == "test" and parts.path not in ("", "/default"):
        found.append(f"{parts.path} (a test-driver configuration file on this machine)")
    if driver == "qemu" and not parts.netloc and parts.path.rstrip("/") == "/embed":
        found.append("qemu:///embed (QEMU run inside this process, as its user)")
    return found
