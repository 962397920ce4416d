"""What in-process hooks hand back before libvirt sees it, and a start that fails after
the hypervisor started the VM.

Before: a plugin's ``before_vm_start`` or ``adjust_domain_xml`` could rename the domain
(it then ran under a name the store did not know while the VM was recorded Up) or
change its uuid; an ``after_disk_prepare`` plugin could hand back an int or a relative
path, or replace the payload (``AttributeError`` from the core); a failure after
``conn.start`` (the state query) left the VM running on the host and Down in the store;
and an operation body raising anything but a VirtplaneError left the VM in its
transitional status for good.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import small_plane
from tests.libvirt_hosts import driver_domains
from virtplane import hookimpl, model
from virtplane.errors import HookError, HostUnreachable


@pytest.fixture
def m(manager_factory: Callable[..., Any], tmp_path: Path) -> Iterator[Any]:
    plane = small_plane(manager_factory(), tmp_path / "sd")
    plane.vms.create(model.VmSpec(name="sc1", memory_mib=256), "cl")
    yield plane
    from tests.libvirt_hosts import forget_test_domains

    forget_test_domains(["sc1", "renamed"])


def _running() -> set[str]:
    return driver_domains(active_only=True)


def _plugin(m: Any, name: str, **hooks: Callable[..., None]) -> None:
    m.plugins.register(SimpleNamespace(**{k: hookimpl(v) for k, v in hooks.items()}),
                       name=name)


def _edit(old: str, new: str) -> Callable[..., None]:
    def hook(vm: Any, domxml: Any, **_kw: Any) -> None:
        domxml.xml = domxml.xml.replace(old, new, 1)
    return hook


@pytest.mark.parametrize(("point", "old", "new", "why"), [
    ("before_vm_start", "<name>sc1</name>", "<name>renamed</name>", "name may not change"),
    ("adjust_domain_xml", "<name>sc1</name>", "<name>renamed</name>", "name may not change"),
    ("before_vm_start", "<uuid>", "<uuid>0", "uuid may not change"),
    ("before_vm_start", "<domain ", '<!DOCTYPE d [<!ENTITY e "x">]><domain ', "DOCTYPE"),
    ("before_vm_start", "<domain ", "<notdomain ", "not well-formed"),
])
def test_a_hook_that_breaks_the_domain_fails_the_start_cleanly(
        m: Any, point: str, old: str, new: str, why: str) -> None:
    def hook(vm: Any, domxml: Any, **_kw: Any) -> None:
        domxml.xml = domxml.xml.replace(old, new, 1)

    _plugin(m, "breaker", **{point: hook})
    with pytest.raises(HookError) as caught:
        m.vms.start("sc1")
    assert point in str(caught.value) and why in str(caught.value)
    vm = m.vms.get("sc1")
    assert vm.status == model.VmStatus.DOWN and vm.host_id is None
    assert not {"sc1", "renamed"} & _running()


def test_a_harmless_edit_still_starts(m: Any) -> None:
    _plugin(m, "tagger", before_vm_start=_edit("<on_reboot>", "<!-- tagged --><on_reboot>"))
    assert m.vms.start("sc1").status == model.VmStatus.UP
    assert "sc1" in _running()


def test_a_failure_after_the_hypervisor_started_the_vm_stops_it(
        m: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = m.hosts.connection(m.hosts.get("h"))

    def lost(name: str) -> Any:
        raise HostUnreachable("host h stopped answering")

    monkeypatch.setattr(type(conn), "state", lambda self, name: lost(name))
    with pytest.raises(HostUnreachable):
        m.vms.start("sc1")
    assert "sc1" not in _running()  # the undo destroyed it
    vm = m.vms.get("sc1")
    assert vm.status == model.VmStatus.DOWN and "stopped answering" in vm.status_reason


def test_any_exception_in_an_operation_restores_the_status(
        m: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    m.vms.start("sc1")
    conn = m.hosts.connection(m.hosts.get("h"))

    def broken(self: Any, name: str, path: str) -> None:
        raise RuntimeError("driver bug")

    monkeypatch.setattr(type(conn), "save", broken)
    with pytest.raises(RuntimeError, match="driver bug"):
        m.vms.hibernate("sc1")
    vm = m.vms.get("sc1")
    assert vm.status == model.VmStatus.UP  # not Saving State for good
    assert vm.status_reason == "RuntimeError: driver bug"
    assert any("hibernate failed: RuntimeError: driver bug" in e[2]
               for e in m.vms.events("sc1"))


@pytest.mark.parametrize("path", [5, "relative/disk.qcow2", "/tmp/a\nb", None])
def test_after_disk_prepare_must_hand_back_an_absolute_path(m: Any, path: Any) -> None:
    dom = m.storage.get("sd")
    m.vms.create(model.VmSpec(name="sc2", memory_mib=256, disks=[
        model.DiskSpec(name="d", size_bytes=1 << 20, domain_id=dom.id)]), "cl")

    def prepare(payload: Any, **_kw: Any) -> None:
        payload.data["path"] = path

    _plugin(m, "preparer", after_disk_prepare=prepare)
    try:
        with pytest.raises(HookError, match="after_disk_prepare.*absolute path"):
            m.vms.start("sc2")
        assert m.vms.get("sc2").status == model.VmStatus.DOWN
    finally:
        from tests.libvirt_hosts import forget_test_domains

        forget_test_domains(["sc2"])


def test_after_disk_prepare_must_keep_the_payload_an_object(m: Any) -> None:
    dom = m.storage.get("sd")
    m.vms.create(model.VmSpec(name="sc3", memory_mib=256, disks=[
        model.DiskSpec(name="d", size_bytes=1 << 20, domain_id=dom.id)]), "cl")

    def prepare(payload: Any, **_kw: Any) -> None:
        payload.data = []

    _plugin(m, "replacer", after_disk_prepare=prepare)
    try:
        with pytest.raises(HookError, match="must stay a JSON object"):
            m.vms.start("sc3")
    finally:
        from tests.libvirt_hosts import forget_test_domains

        forget_test_domains(["sc3"])
