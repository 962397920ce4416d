"""No answer of an array, however malformed or hostile, ends in a traceback or in a
disk recorded without its LUN.

A property-based test (hypothesis) makes the simulated array (tests/libsm/fakelsm.py,
protocol-faithful to lsm.Client, not a real array) answer one call the libsm driver
makes with something else: a volume whose VPD 0x83 id or id is a path traversal,
whose name is another's or not a string, a duplicate volume, job_status of the
wrong shape, percent or status, an LsmError with an odd code and a multi-line
message, access groups whose initiators are a string. It drives disk create,
storage show and verify through the Manager and asserts: success, or a
VirtplaneError with a one-line message; and afterwards every legal volume of a
disk has its LUN on the array. Derandomized and bounded (a few seconds).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.libsm import fakelsm
from virtplane import model
from virtplane.errors import VirtplaneError

EXAMPLES = int(os.environ.get("VIRTPLANE_FUZZ_EXAMPLES", "40"))
IQN = "iqn.1994-05.com.example:host1"

_junk = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63),
                  st.sampled_from(["../../etc/passwd", "", "a\nb", "x" * 500, "-1", "vp-md-x",
                                   "600deadbeef"]), st.text(max_size=8))
_FIELDS = ["id", "name", "vpd83", "block_size", "num_of_blocks"]


@st.composite
def _plan(draw: Any) -> tuple[str, Any]:
    call = draw(st.sampled_from(["volumes", "job_status", "access_groups", "error",
                                 "volume_create"]))
    return call, (draw(st.sampled_from(_FIELDS)), draw(_junk), draw(st.integers(0, 3)))


def _hostile(monkeypatch: Any, call: str, what: Any) -> None:
    field, junk, n = what
    C = fakelsm.Client
    if call == "volumes":
        real = C.volumes

        def volumes(self: Any, *a: Any, **k: Any) -> Any:
            out = real(self, *a, **k)
            if out and n == 0:
                return [*out, out[-1]]
            if out:
                v = out[n % len(out)]
                setattr(v, field, junk)
            return out
        monkeypatch.setattr(C, "volumes", volumes)
    elif call == "job_status":
        real_js = C.job_status
        shapes = [lambda r: junk, lambda r: (r[0], junk, r[2]), lambda r: (junk, 100, r[2]),
                  lambda r: r[:2]]
        monkeypatch.setattr(C, "job_status", lambda self, j, flags=0: shapes[n](
            real_js(self, j)))
    elif call == "access_groups":
        real_ag = C.access_groups

        def groups(self: Any, *a: Any, **k: Any) -> Any:
            out = real_ag(self, *a, **k)
            for g in out:
                g.init_ids = junk if n else IQN + "x"
            return out
        monkeypatch.setattr(C, "access_groups", groups)
    elif call == "error":
        def fail(self: Any, *a: Any, **k: Any) -> Any:
            raise fakelsm.LsmError(junk, f"line1\nline2 {junk!r}")
        monkeypatch.setattr(C, "pools", fail)
    else:
        real_vc = C.volume_create

        def create(self: Any, pool: Any, name: str, size: int, prov: int, flags: int = 0
                   ) -> Any:
            job, _ = real_vc(self, pool, name, size, prov)
            vol = fakelsm.Volume(id="VOL_X", name=name, vpd83="600abc", block_size=512,
                                 num_of_blocks=1, admin_state=1, system_id="sim-01",
                                 pool_id="POOL_ID_00001", plugin_data=None)
            setattr(vol, field, junk)
            return None, vol
        monkeypatch.setattr(C, "volume_create", create)


@pytest.fixture
def world(tmp_path, xdg, manager_factory):
    state = tmp_path / "array.json"
    fakelsm.edit(state, jobtime=0.0)
    folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "virtplane.toml").write_text(
        "[plugin.libsm]\nlsm_module = 'tests.libsm.fakelsm'\n"
        f"device_pattern = '{state}.luns/{{vpd83}}'\njob_poll_seconds = 0.01\n")
    m = manager_factory()
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.storage.add("arr", "libsm", "dc", {"uri": f"sim://?statefile={state}",
                                         "pool": "Pool 1", "initiator": IQN})
    return m, state


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=_plan(), op=st.sampled_from(["create", "show", "verify"]))
def test_no_array_answer_escapes_or_half_makes(world: Any, plan: Any, op: str) -> None:
    m, state = world
    with pytest.MonkeyPatch.context() as mp:
        _hostile(mp, *plan)
        try:
            if op == "create":
                m.disks.create("d", "arr", 1 << 20, "raw")
            elif op == "show":
                m.storage.info("arr")
            else:
                m.storage.verify("arr")
        except VirtplaneError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg and len(msg) < 2000, msg
    names = {v["name"] for v in fakelsm.json.loads(state.read_text())["volumes"].values()}
    for d in m.disks.list():
        image = m.store.find(model.Image, d["name"])
        for v in image.volumes:
            if d["legal"]:
                assert f"vp-{v.id}" in names, "a legal volume without its LUN"
    for d in m.disks.list():
        if not d["legal"]:
            m.storage.repair("arr")
            break
    for d in m.disks.list():
        m.disks.remove(d["name"])
