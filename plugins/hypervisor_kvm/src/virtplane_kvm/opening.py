"""Opening a libvirt connection safely: which host URIs are allowed, a bounded wait for
the host to answer, and what of libvirt's error reaches the caller.

- libvirt's test driver loads any file named in its URI as its configuration
  (``test:///etc/passwd``), and its parse error quotes the file's first line. So a test
  URI is ``test:///default``, or, only when ``[plugin.kvm] test_driver_files`` is true,
  a plain ``test:///ABSOLUTE/PATH.xml`` naming an existing file by its normalised path
  (:func:`check_uri`).
- ``virConnectOpen`` has no timeout (an ssh host that drops packets, a TCP peer that
  accepts and never answers), so it runs in a worker thread and the caller gives up
  after ``[plugin.kvm] connect_timeout`` seconds; a connection that completes after
  that is closed by the worker, never handed to anyone (:func:`open_within`). While
  such a given-up attempt is still waiting on its transport, a new open of the same
  URI fails at once instead of starting another thread: a monitor polling a dead
  host keeps one waiting thread per URI, not one per poll.
- libvirt's connect errors can span lines (an XML parse error shows the offending
  line of the file and a caret): only the first line is reported, and for the test
  driver not even that (:func:`connect_error`); the whole message goes to the log.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from urllib.parse import urlsplit

import libvirt

from virtplane.errors import HostUnreachable, InvalidInput
from virtplane_kvm import uri_params

log = logging.getLogger("virtplane.kvm")

#: the test driver's built-in configuration, always allowed
TEST_DEFAULT = "test:///default"
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.\-]*):")


def driver_of(uri: str) -> str:
    """The libvirt driver a URI names (``qemu`` of ``qemu+ssh://...``), lower case;
    "" when the URI has no scheme."""
    m = _SCHEME.match(uri)
    return m.group(1).split("+", 1)[0].lower() if m else ""


def is_test_uri(uri: str) -> bool:
    return driver_of(uri) == "test"


def _refuse(uri: str, why: str, allow_files: bool) -> InvalidInput:
    allowed = (f"{TEST_DEFAULT}, or test:///ABSOLUTE/PATH.xml naming an existing file by "
               "its normalised path" if allow_files else
               f"{TEST_DEFAULT} only (a test-driver config file test:///ABSOLUTE/PATH.xml "
               "needs [plugin.kvm] test_driver_files = true)")
    return InvalidInput(f"host URI {uri!r}: {why}; libvirt's test driver takes {allowed}")


def check_uri(uri: str, test_driver_files: bool) -> None:
    """Refuse a test-driver URI other than ``test:///default`` unless files are allowed,
    and then any but ``test:///ABSOLUTE/PATH.xml`` (no host, transport, query, fragment
    or %-escape; a normalised path without symbolic links to an existing regular file).

    :raises InvalidInput: naming the URI and what is allowed.
    """
    if not is_test_uri(uri):
        return
    parts = urlsplit(uri.strip())
    if parts.path == "/default":
        return
    if not test_driver_files:
        raise _refuse(uri, "test-driver config files are not allowed", False)
    if uri != uri.strip() or parts.scheme != "test" or parts.netloc or parts.query \
            or parts.fragment or not uri.startswith("test:///"):
        raise _refuse(uri, "a test-driver config file is named only as test:///PATH "
                      "(no host, transport, query or fragment)", True)
    path = parts.path
    if "%" in path:
        raise _refuse(uri, "the path may not hold %-escapes", True)
    if not path.endswith(".xml"):
        raise _refuse(uri, "the file name must end in .xml", True)
    if path.startswith("//") or os.path.normpath(path) != path \
            or os.path.realpath(path) != path:
        raise _refuse(uri, f"{path} is not a normalised absolute path (no '..', '.', "
                      "double slashes or symbolic links)", True)
    if not os.path.isfile(path):
        raise _refuse(uri, f"{path} is not an existing file", True)


# the program check moved to uri_params (no libvirt import); its names stay here too
RUNS_PROGRAM = uri_params.RUNS_PROGRAM
transport_of = uri_params.transport_of
check_program = uri_params.check_program


def connect_error(uri: str, exc: libvirt.libvirtError) -> str:
    """What a client is told of a failed ``virConnectOpen``: libvirt's first line, or
    for the test driver only that its configuration did not load (its errors quote the
    file). The whole message is logged."""
    message = exc.get_error_message() or str(exc)
    log.info("connecting to %s failed: %s", uri, message)
    if is_test_uri(uri):
        return ("libvirt's test driver could not load its configuration (libvirt error "
                f"{exc.get_error_code()}; the details are in the server's log)")
    first = message.strip().splitlines()
    return first[0] if first else f"libvirt error {exc.get_error_code()}"


class _Attempt:
    """One ``virConnectOpen`` in a worker thread; what it gave, or that it was given up."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.conn: libvirt.virConnect | None = None
        self.error: Exception | None = None
        self.abandoned = False
        #: when it was given up (time.monotonic()), for the message of a later attempt
        self.abandoned_at = 0.0

    def run(self) -> None:
        try:
            conn = libvirt.open(self.uri)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
            with self.lock:
                self.error = exc
            self.done.set()
            return
        with self.lock:
            keep = not self.abandoned
            if keep:
                self.conn = conn
        self.done.set()
        if not keep:
            log.info("closing the connection to %s that opened after its caller gave up",
                     self.uri)
            try:
                conn.close()
            except libvirt.libvirtError as exc:
                log.warning("closing the late connection to %s: %s", self.uri,
                            exc.get_error_message())


#: attempts still running (given up on or not); tests read it to see none is left over
running: set[_Attempt] = set()
_running_lock = threading.Lock()


def open_within(uri: str, timeout: float) -> libvirt.virConnect:
    """``libvirt.open(uri)``, waiting at most ``timeout`` seconds.

    :raises HostUnreachable: the host did not answer in time, or libvirt refused (its
        message as :func:`connect_error` gives it).
    """
    with _running_lock:
        lingering = [a for a in running if a.uri == uri and a.abandoned]
    if lingering:
        waited = time.monotonic() - min(a.abandoned_at for a in lingering)
        raise HostUnreachable(f"cannot connect to {uri}: an earlier attempt, given up "
                              f"{waited:.0f} s ago after {timeout:g} s without an answer "
                              "([plugin.kvm] connect_timeout), is still waiting for the "
                              "host; no new attempt until it ends")
    attempt = _Attempt(uri)

    def work() -> None:
        try:
            attempt.run()
        finally:
            with _running_lock:
                running.discard(attempt)

    with _running_lock:
        running.add(attempt)
    threading.Thread(target=work, name="libvirt-open", daemon=True).start()
    attempt.done.wait(timeout)
    with attempt.lock:
        conn, error = attempt.conn, attempt.error
        if conn is None and error is None:
            attempt.abandoned_at = time.monotonic()
            attempt.abandoned = True
    if conn is not None:
        return conn
    if isinstance(error, libvirt.libvirtError):
        raise HostUnreachable(f"cannot connect to {uri}: {connect_error(uri, error)}")
    if error is not None:
        raise error
    raise HostUnreachable(f"cannot connect to {uri}: no answer within {timeout:g} s "
                          "([plugin.kvm] connect_timeout)")
