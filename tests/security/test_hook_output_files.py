"""The payload file a hook script leaves behind is read back as untrusted input.

Before: the runner read ``$_hook_domxml`` / ``$_hook_json`` back with a plain
``open()``: a script that put a symbolic (or hard) link to another file there had
that file's content started as the VM's domain; a FIFO in its place hung the start
forever (``open()`` waits for a writer, and the hook timeout was over); a file of
any size was read into memory whole; bytes that were not UTF-8 ended in
``UnicodeDecodeError``, a removed file in ``FileNotFoundError`` (twice: reading it
and deleting it). Now the file lives in a private folder made for the point, is
opened without following a link and without blocking, must be a regular file with
one link, at most ``MAX_PAYLOAD_BYTES``, UTF-8 without NUL bytes; otherwise the
script counts as exiting 2 with a reason naming it.
"""

from __future__ import annotations

import threading

import pytest

from tests.libvirt_hosts import driver_domains
from virtplane import model
from virtplane.errors import HookError

SCRIPT = "50_swap"


_domains = driver_domains


@pytest.fixture
def vm(hooks, manager_factory):
    m = manager_factory()
    m.datacenters.add("dc1")
    m.clusters.add("cl1", "dc1")
    m.hosts.add("h1", "cl1", "test:///default")
    m.vms.create(model.VmSpec(name="vm1", memory_mib=256), "cl1")
    baseline = _domains()
    yield m
    if m.vms.get("vm1").status != model.VmStatus.DOWN:
        m.vms.destroy("vm1")
    assert _domains() <= baseline | {"vm1"}


def _start_fails(m, *words: str) -> str:
    """Start vm1 on another thread (a hang must fail the test, not the run); it must
    fail with a HookError naming the point, the script and ``words``; the VM stays
    Down and nothing is left in libvirt."""
    before = _domains()
    outcome: list[BaseException | None] = []

    def start() -> None:
        try:
            m.vms.start("vm1")
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=start, daemon=True)
    worker.start()
    worker.join(30)
    assert outcome, "the start hung on the script's payload file"
    error = outcome[0]
    assert isinstance(error, HookError), repr(error)
    message = str(error)
    assert "before_vm_start" in message and SCRIPT in message, message
    for word in words:
        assert word in message, message
    vm = m.vms.get("vm1")
    assert vm.status == model.VmStatus.DOWN and vm.host_id is None
    assert _domains() == before
    return message


def test_a_symlink_to_etc_passwd_is_not_read_into_the_domain(hooks, vm):
    hooks.add("before_vm_start", SCRIPT, """
        import os
        path = os.environ['_hook_domxml']
        os.unlink(path)
        os.symlink('/etc/passwd', path)
    """)
    message = _start_fails(vm, "symbolic link")
    assert "root:" not in message


def test_a_symlink_to_another_domain_xml_is_not_started(hooks, vm, tmp_path):
    """The linked file is a domain XML that libvirt would accept: before, it was
    started in place of the VM's own domain."""
    other = tmp_path / "other.xml"
    other.write_text("<domain type='test'><name>vm1</name><memory unit='MiB'>64</memory>"
                     "<description>read from another file</description>"
                     "<os><type>hvm</type></os></domain>")
    hooks.add("before_vm_start", SCRIPT, f"""
        import os
        path = os.environ['_hook_domxml']
        os.unlink(path)
        os.symlink({str(other)!r}, path)
    """)
    _start_fails(vm, "symbolic link")


def test_a_hard_link_to_another_file_is_not_read(hooks, vm, tmp_path):
    other = tmp_path / "other.xml"
    other.write_text("<domain type='test'><name>vm1</name><memory unit='MiB'>64</memory>"
                     "<os><type>hvm</type></os></domain>")
    hooks.add("before_vm_start", SCRIPT, f"""
        import os
        path = os.environ['_hook_domxml']
        os.unlink(path)
        os.link({str(other)!r}, path)
    """)
    _start_fails(vm, "hard link")


def test_a_fifo_in_place_of_the_file_does_not_hang_the_start(hooks, vm):
    hooks.add("before_vm_start", SCRIPT, """
        import os
        path = os.environ['_hook_domxml']
        os.unlink(path)
        os.mkfifo(path)
    """)
    _start_fails(vm, "not a regular file")


def test_a_removed_file_is_a_clear_refusal(hooks, vm):
    hooks.add("before_vm_start", SCRIPT, """
        import os
        os.unlink(os.environ['_hook_domxml'])
    """)
    _start_fails(vm, "removed")


def test_a_folder_in_place_of_the_file_is_a_clear_refusal(hooks, vm):
    hooks.add("before_vm_start", SCRIPT, """
        import os
        path = os.environ['_hook_domxml']
        os.unlink(path)
        os.mkdir(path)
    """)
    _start_fails(vm, "not a regular file")


def test_a_file_over_the_limit_is_not_read(hooks, vm):
    from virtplane_hook_scripts.runner import MAX_PAYLOAD_BYTES

    hooks.add("before_vm_start", SCRIPT, f"""
        import os
        with open(os.environ['_hook_domxml'], 'r+b') as f:
            f.truncate({MAX_PAYLOAD_BYTES + 1})  # sparse: cheap to make
    """)
    _start_fails(vm, f"at most {MAX_PAYLOAD_BYTES}")


@pytest.mark.parametrize("content, words", [
    (b"<domain>\xff</domain>", ("not UTF-8",)),
    (b"<domain>\x00</domain>", ("NUL byte",)),
])
def test_bytes_that_are_not_text_are_refused(hooks, vm, content, words):
    hooks.add("before_vm_start", SCRIPT, f"""
        import os
        with open(os.environ['_hook_domxml'], 'wb') as f:
            f.write({content!r})
    """)
    _start_fails(vm, *words)


def test_no_payload_folder_is_left_behind(hooks, vm, tmp_path, monkeypatch):
    """Whatever the script left in place of the file goes with the point's folder."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    hooks.add("before_vm_start", SCRIPT, """
        import os
        path = os.environ['_hook_domxml']
        os.unlink(path)
        os.mkdir(path)
        open(os.path.join(path, 'inside'), 'w').close()
    """)
    _start_fails(vm, "not a regular file")
    assert list((tmp_path / "tmp").iterdir()) == []
