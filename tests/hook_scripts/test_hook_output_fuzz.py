"""What a hook script writes back is untrusted input: a property-based fuzzer.

Real hook scripts (child processes, run by the hook-scripts plugin) are installed
for ``before_vm_start`` (domain XML), ``before_device_create`` (the XML of a disk
and a NIC with custom properties), ``after_vm_start`` (a ``LOG`` point) and
``after_disk_prepare`` (a JSON payload that fails the start), and
``before_nic_hotplug`` (the XML of a NIC plugged into a running VM). Each example tells
the script (through a plan file) what to leave in ``$_hook_domxml`` /
``$_hook_json``: an edit of what it got (a fragment inserted, the domain renamed),
bytes of its own (garbage, the wrong root element, DOCTYPEs with internal and
external entities, a "billion laughs", bytes that are not UTF-8, NUL bytes, a
file over the size limit, JSON that is not an object, NaN), or something in
place of the file (nothing, a folder, a FIFO, a symbolic link or a hard link to
another file); and an exit code.

For every example: the start either fails with a :class:`VirtplaneError` whose
message names the hook point or the script (a libvirt refusal of well-formed XML
is allowed too) and the VM is Down with nothing left in libvirt, or it succeeds
and every XML libvirt was handed is well-formed, has no DOCTYPE, is the VM's
``<domain>`` and holds nothing of the files the script pointed at (a plug: the
VM stays Up with its spec unchanged, the device handed over keeps its alias). An
``after_*`` point never fails the start; an unusable payload there is an error
event naming the script.

Derandomized and bounded (``VIRTPLANE_FUZZ_EXAMPLES`` examples per point, 25 by
default: about 15 s in all); more locally with ``VIRTPLANE_FUZZ_EXAMPLES=500``.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.libvirt_hosts import driver_domains
from virtplane import model
from virtplane.domxml import parse_element
from virtplane.errors import HookError, HypervisorError, InvalidInput, VirtplaneError

EXAMPLES = int(os.environ.get("VIRTPLANE_FUZZ_EXAMPLES", "25"))
#: the payload limit during the fuzzer (a file just over it is cheap to write)
LIMIT = 64 * 1024
SCRIPT = "50_fuzz"
#: text of the files a symbolic or hard link points at: it must never reach libvirt
SECRET = "s3cr3t-never-in-a-domain"

#: the script: does what the plan file (written per example) says
FUZZ_SCRIPT = """
import base64, json, os, sys
plan = json.load(open({plan!r}))
target = os.environ.get('_hook_domxml') or os.environ['_hook_json']
action, data = plan['action'], base64.b64decode(plan['data'])
if action == 'write':
    with open(target, 'wb') as f:
        f.write(data)
elif action == 'sub':
    old, new = json.loads(data)
    with open(target, encoding='utf-8') as f:
        text = f.read()
    with open(target, 'w', encoding='utf-8') as f:
        f.write(text.replace(old, new, 1))
elif action == 'merge':
    with open(target) as f:
        value = json.load(f)
    value.update(json.loads(data))
    with open(target, 'w') as f:
        json.dump(value, f)
elif action == 'sparse':
    with open(target, 'r+b') as f:
        f.truncate(int(data))
elif action == 'delete':
    os.unlink(target)
elif action == 'dir':
    os.unlink(target); os.mkdir(target)
elif action == 'fifo':
    os.unlink(target); os.mkfifo(target)
elif action == 'symlink':
    os.unlink(target); os.symlink(data.decode(), target)
elif action == 'hardlink':
    os.unlink(target); os.link(data.decode(), target)
sys.exit(plan['rc'])
"""

LAUGHS = ('<!DOCTYPE domain [<!ENTITY a "' + "A" * 64 + '">'
          + "".join(f'<!ENTITY {n} "{("&" + p + ";") * 10}">'
                    for p, n in zip("abcdefgh", "bcdefghi", strict=True))
          + ']>')


# ---------------------------------------------------------------- strategies

#: a plan: (action, data, rc, kind); kind "bad" when the payload must be refused,
#: "edit" when it may be used
Plan = tuple[str, bytes, int, str]


def _xml_plans(root: str, marker: str, files: dict[str, Path]) -> st.SearchStrategy[Plan]:
    """Plans for an XML point whose payload has root element ``root`` and holds
    ``marker`` (where fragments are inserted)."""
    fragments = st.sampled_from([
        "<!-- a comment -->", "<metadata/>", "<foo bar='1'>text</foo>", "<a><b/></a>",
        "&amp;", "&lt;x&gt;", "<", "</x>", "&undefined;", "&#0;", "]]>",
        "<![CDATA[<!DOCTYPE x>]]>", "<?pi data?>",
    ]) | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
    doctype = st.sampled_from([
        LAUGHS + f"<{root}>&i;</{root}>",
        f'<!DOCTYPE {root} [<!ENTITY x SYSTEM "file://{files["secret"]}">]>'
        f"<{root}>&x;</{root}>",
        f'<!DOCTYPE {root} [<!ENTITY x "{SECRET}">]><{root}><name>&x;</name></{root}>',
        f'<!DOCTYPE {root} SYSTEM "file://{files["secret"]}"><{root}/>',
        f'<?xml version="1.0"?>\n<!DOCTYPE {root}><{root}/>',
    ])
    own = st.sampled_from([
        "", "   ", "not xml", f"<{root}>", f"<{root}/><{root}/>", "<wrong/>",
        "<domain><name>other</name></domain>", "<x:y xmlns:x='u'/>",
    ])
    garbage = st.binary(max_size=64).filter(lambda b: b"<" not in b)
    return st.one_of(
        st.tuples(st.just("sub"), fragments.map(
            lambda f: json.dumps([marker, f + marker]).encode()), st.just(0), st.just("edit")),
        st.tuples(st.just("write"), (doctype | own).map(str.encode), st.just(0),
                  st.just("bad")),
        st.tuples(st.just("write"), garbage, st.just(0), st.just("bad")),
        # another alias: a device must keep its own (a domain may change its devices')
        st.tuples(st.just("sub"), st.just(json.dumps(["ua-", "ua-z"]).encode()),
                  st.just(0), st.just("edit")),
        # the right root but nothing in it: libvirt may refuse it
        st.tuples(st.just("write"), st.just(f"<{root}/>".encode()), st.just(0),
                  st.just("edit")),
        _common(files),
    )


def _common(files: dict[str, Path]) -> st.SearchStrategy[Plan]:
    """Plans every point shares: bytes that are not text, a file over the limit,
    something in place of the file, a failing script that left it alone."""
    return st.one_of(
        st.tuples(st.just("write"), st.sampled_from([
            b"\xff\xfe<domain/>", b"<domain>\x00</domain>", b"\x00", b"\xc3\x28",
            b"{\"a\": \"\xed\xa0\x80\"}",
        ]), st.just(0), st.just("bad")),
        st.tuples(st.just("sparse"), st.integers(LIMIT + 1, 4 * LIMIT).map(
            lambda n: str(n).encode()), st.just(0), st.just("bad")),
        st.tuples(st.sampled_from(["delete", "dir", "fifo"]), st.just(b""), st.just(0),
                  st.just("bad")),
        st.tuples(st.just("symlink"), st.sampled_from(
            [str(files["secret"]).encode(), str(files["valid"]).encode(), b"/etc/passwd",
             b"/nonexistent"]), st.just(0), st.just("bad")),
        st.tuples(st.just("hardlink"), st.just(str(files["valid"]).encode()), st.just(0),
                  st.just("bad")),
        st.tuples(st.just("keep"), st.just(b""), st.sampled_from([0, 1, 2, 3]),
                  st.just("edit")),
    )


def _json_plans(files: dict[str, Path]) -> st.SearchStrategy[Plan]:
    scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                          max_leaves=6)
    not_objects = st.one_of(scalars, st.lists(values, max_size=3)).map(
        lambda v: json.dumps(v).encode())
    return st.one_of(
        st.tuples(st.just("write"), not_objects | st.sampled_from(
            [b"", b"{", b"{'a': 1}", b"NaN", b'{"a": NaN}', b'{"a": Infinity}',
             b"[" * 5000 + b"]" * 5000, b'{"a": 1} trailing']), st.just(0), st.just("bad")),
        st.tuples(st.just("merge"), st.dictionaries(
            st.sampled_from(["path", "format", "vmId", "extra"]),
            scalars, max_size=2).map(lambda d: json.dumps(d).encode()), st.just(0),
            st.just("edit")),
        _common(files),
    )


# ------------------------------------------------------------------ harness


_domains = driver_domains


class Fuzz:
    """A manager with the fuzz script installed at one point, and what libvirt got."""

    def __init__(self, point: str, hooks: Any, make: Any, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch, storage: bool = False) -> None:
        from virtplane_hook_scripts import runner
        from virtplane_kvm.lifecycle import LifecycleMixin

        monkeypatch.setattr(runner, "MAX_PAYLOAD_BYTES", LIMIT, raising=False)
        self.point = point
        self.plan = tmp_path / "plan.json"
        self.files = {"secret": tmp_path / "secret.txt", "valid": tmp_path / "valid.xml"}
        self.files["secret"].write_text(SECRET)
        self.files["valid"].write_text(f"<domain><name>vm1</name><!-- {SECRET} --></domain>")
        hooks.add(point, SCRIPT, FUZZ_SCRIPT.format(plan=str(self.plan)))
        self.handed: list[str] = []
        original = LifecycleMixin.start

        def spy(conn: Any, name: str, xml: str, flags: int = 0) -> str:
            self.handed.append(xml)
            return original(conn, name, xml, flags)

        monkeypatch.setattr(LifecycleMixin, "start", spy)
        self.m = make()
        self.baseline = _domains()
        disks = [model.DiskSpec(name="disk0", path=str(tmp_path / "disk0.img"),
                                custom_properties={"iothread": "1"})]
        if storage:
            self.m.storage.add("data1", "localfs", "dc1", {"path": str(tmp_path / "sd")})
            dom = self.m.store.find(model.StorageDomain, "data1")
            disks = [model.DiskSpec(name="disk0", size_bytes=1 << 20, domain_id=dom.id)]
        self.m.vms.create(model.VmSpec(
            name="vm1", memory_mib=256, disks=disks,
            nics=[model.NicSpec(name="nic0", custom_properties={"mtu": "9000"})]), "cl1")

    def start(self, plan: Plan) -> VirtplaneError | None:
        """Start vm1 with ``plan``; check what happened; leave it Down again."""
        action, data, rc, _kind = plan
        self.plan.write_text(json.dumps({"action": action, "rc": rc,
                                         "data": base64.b64encode(data).decode()}))
        self.handed.clear()
        events_before = len(self.m.vms.events("vm1"))
        try:
            self.m.vms.start("vm1")
        except VirtplaneError as exc:
            error: VirtplaneError | None = exc
        else:
            error = None
        self.new_events = self.m.vms.events("vm1")[events_before:]
        vm = self.m.vms.get("vm1")
        try:
            if error is None:
                assert vm.status in (model.VmStatus.UP, model.VmStatus.PAUSED), vm.status
                assert _domains() == self.baseline | {"vm1"}
            else:
                assert vm.status == model.VmStatus.DOWN and vm.host_id is None, vm.status
                assert _domains() == self.baseline, "a domain was left in libvirt"
            for xml in self.handed:
                # parse_element refuses a DOCTYPE: none reached libvirt
                root = parse_element(xml, "the XML handed to libvirt")
                assert root.tag == "domain" and root.findtext("name") == "vm1", xml[:300]
                assert SECRET not in xml and "root:x:0" not in xml, xml[:300]
                assert "A" * 640 not in xml  # no entity was expanded
        finally:
            if error is None:  # leave it Down for the next example, whatever failed
                self.m.vms.destroy("vm1")
        assert self.m.vms.get("vm1").status == model.VmStatus.DOWN
        assert _domains() == self.baseline, "a domain was left in libvirt"
        return error

    def check_refused(self, error: VirtplaneError | None, plan: Plan) -> None:
        """A ``before`` point: a refused payload (or a failing script) fails the start
        with an error that names the point or the script."""
        action, _data, rc, kind = plan
        if error is None:
            assert kind == "edit" and rc not in (1, 2), plan
            return
        message = str(error)
        if isinstance(error, HookError | InvalidInput):
            assert self.point in message or SCRIPT in message, message
            assert "Traceback" not in message, message
        else:
            # libvirt refusing a well-formed domain (checked in start) after an edit
            assert isinstance(error, HypervisorError) and kind == "edit", (plan, message)


_settings = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow,
                                            HealthCheck.data_too_large])


@pytest.fixture
def fuzz(hooks, hs_env, tmp_path, monkeypatch):
    def make(point: str, storage: bool = False) -> Fuzz:
        return Fuzz(point, hooks, hs_env, tmp_path, monkeypatch, storage=storage)
    return make


def test_before_vm_start(fuzz) -> None:  # type: ignore[no-untyped-def]
    f = fuzz("before_vm_start")

    @_settings
    @given(plan=_xml_plans("domain", "</devices>", f.files))
    def run(plan: Plan) -> None:
        f.check_refused(f.start(plan), plan)

    run()


def test_before_device_create(fuzz) -> None:  # type: ignore[no-untyped-def]
    f = fuzz("before_device_create")

    @_settings
    @given(plan=st.one_of(_xml_plans("interface", "</interface>", f.files),
                          _xml_plans("disk", "</disk>", f.files)))
    def run(plan: Plan) -> None:
        f.check_refused(f.start(plan), plan)

    run()


def test_after_disk_prepare_json(fuzz) -> None:  # type: ignore[no-untyped-def]
    f = fuzz("after_disk_prepare", storage=True)

    @_settings
    @given(plan=_json_plans(f.files))
    def run(plan: Plan) -> None:
        f.check_refused(f.start(plan), plan)

    run()


def test_before_nic_hotplug(fuzz, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A running VM; each example plugs a NIC. libvirt's test driver cannot attach
    devices, so a payload the plugin accepts ends in the driver's refusal: what is
    checked is the refusal of the rest, the XML handed to the driver, and that the
    VM's spec and status are unchanged."""
    from virtplane_kvm.devices import DevicesMixin

    f = fuzz("before_nic_hotplug")
    f.m.vms.start("vm1")
    attached: list[str] = []

    def attach(conn: Any, name: str, xml: str) -> None:
        attached.append(xml)
        raise HypervisorError("the test driver cannot attach devices")

    monkeypatch.setattr(DevicesMixin, "attach_device", attach)
    nics = [n.name for n in f.m.vms.get("vm1").spec.nics]

    @_settings
    @given(plan=_xml_plans("interface", "</interface>", f.files))
    def run(plan: Plan) -> None:
        action, data, rc, _kind = plan
        f.plan.write_text(json.dumps({"action": action, "rc": rc,
                                      "data": base64.b64encode(data).decode()}))
        attached.clear()
        with pytest.raises(VirtplaneError) as info:
            f.m.devices.hotplug_nic("vm1", model.NicSpec(name="nic9"))
        f.check_refused(info.value, plan)
        for xml in attached:
            root = parse_element(xml, "the XML handed to libvirt")
            assert root.tag == "interface", xml
            alias = root.find("alias")
            assert alias is not None and alias.get("name") == "ua-nic9", xml
            assert SECRET not in xml and "root:x:0" not in xml, xml
        vm = f.m.vms.get("vm1")
        assert vm.status == model.VmStatus.UP and [n.name for n in vm.spec.nics] == nics

    try:
        run()
    finally:
        f.m.vms.destroy("vm1")
    assert _domains() == f.baseline


def test_after_vm_start_is_only_logged(fuzz) -> None:  # type: ignore[no-untyped-def]
    f = fuzz("after_vm_start")

    @_settings
    @given(plan=_xml_plans("domain", "</devices>", f.files))
    def run(plan: Plan) -> None:
        error = f.start(plan)
        assert error is None, error  # an after point never fails the start
        action, _data, rc, kind = plan
        mine = [e for e in f.new_events if e[1] == "error"]
        assert all(f"after_vm_start/{SCRIPT}" in e[2] for e in mine), mine
        if kind == "bad" or rc in (1, 2):
            assert mine, (plan, f.new_events)

    run()
