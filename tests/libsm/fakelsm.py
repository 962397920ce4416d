"""A simulated array with the surface of libStorageMgmt's Python binding (``lsm``).

libStorageMgmt cannot be installed on these machines (not in Debian 12, not on
PyPI, its binding needs a compiled part), so the libsm driver's tests load this
module in its place (``[plugin.libsm] lsm_module``). It follows the documented
behaviour of ``lsm.Client`` and the ``sim://`` plugin
(../shared/reference/ovm3_lsm.md part B): the ``plain_text_password`` keyword,
volume create/resize/replicate/delete always asynchronous (``(job_id, None)``,
done after ``LSM_SIM_TIME`` seconds, ``job_status`` -> ``(status, percent,
data)``, ``job_free``), capabilities per system, initiator ids validated on the
client side, ``LsmError`` with the documented error numbers, and state kept in
a file (``sim://?statefile=PATH``) so it outlives client objects. Each volume
is backed by a sparse file named by its VPD 0x83 id in ``<statefile>.luns/``,
so qemu-img can work on the "LUNs". Tests switch capabilities off, shrink pool
space, set a password, or make jobs fail to reach the error paths;
``fail_mask`` / ``fail_delete`` (state keys) make ``volume_mask`` /
``volume_delete`` raise ``LsmError(TIMEOUT)``, as an array that stops answering
mid-operation does.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


class ErrorNumber:
    OK = 0
    TIMEOUT = 11
    PERMISSION_DENIED = 13
    NAME_CONFLICT = 50
    INVALID_ARGUMENT = 101
    NO_STATE_CHANGE = 125
    NETWORK_CONNREFUSED = 140
    NO_SUPPORT = 153
    IS_MASKED = 160
    NOT_FOUND_ACCESS_GROUP = 200
    NOT_FOUND_JOB = 202
    NOT_FOUND_POOL = 203
    NOT_FOUND_VOLUME = 205
    NOT_FOUND_SYSTEM = 208
    PLUGIN_AUTH_FAILED = 300
    NOT_ENOUGH_SPACE = 350


class LsmError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.msg, self.data = code, message, data


class JobStatus:
    INPROGRESS = 1
    COMPLETE = 2
    ERROR = 3


class Capabilities:
    VOLUMES = 20
    VOLUME_CREATE = 21
    VOLUME_RESIZE = 22
    VOLUME_REPLICATE = 23
    VOLUME_REPLICATE_CLONE = 24
    VOLUME_REPLICATE_COPY = 25
    VOLUME_DELETE = 33
    VOLUME_MASK = 36
    VOLUME_UNMASK = 37
    ACCESS_GROUPS = 38
    ACCESS_GROUP_CREATE_WWPN = 39
    ACCESS_GROUP_CREATE_ISCSI_IQN = 47
    VOLUME_THIN = 55
    SUPPORTED = 1
    UNSUPPORTED = 0

    def __init__(self, caps: dict[int, bool]) -> None:
        self._caps = caps

    def supported(self, cap: int) -> bool:
        return self._caps.get(cap, False)

    def get(self, cap: int) -> int:
        return self.SUPPORTED if self.supported(cap) else self.UNSUPPORTED


class _Obj:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


class System(_Obj):
    pass


class Pool(_Obj):
    pass


class AccessGroup(_Obj):
    INIT_TYPE_UNKNOWN = 0
    INIT_TYPE_WWPN = 2
    INIT_TYPE_ISCSI_IQN = 5


class Volume(_Obj):
    PROVISION_THIN = 1
    PROVISION_FULL = 2
    PROVISION_DEFAULT = 3
    REPLICATE_CLONE = 2
    REPLICATE_COPY = 3

    @property
    def size_bytes(self) -> int:
        return int(self.block_size * self.num_of_blocks)


ALL_CAPS = [20, 21, 22, 23, 24, 25, 33, 36, 37, 38, 39, 47, 55]
_WWPN = re.compile(r"^(0x|0X)?([0-9A-Fa-f]{2}[:-]?){7}[0-9A-Fa-f]{2}$")


def default_state(pool_bytes: int = 1 << 30) -> dict[str, Any]:
    return {"password": None, "caps": ALL_CAPS, "jobtime": 0.2, "fail_jobs": False,
            "fail_mask": False, "fail_delete": False,
            "pools": {"POOL_ID_00001": {"name": "Pool 1", "total": pool_bytes,
                                        "free": pool_bytes}},
            "volumes": {}, "groups": {}, "masks": [], "jobs": {}, "next": 1}


class Client:
    """The part of ``lsm.Client`` the libsm driver uses, with its signatures."""

    def __init__(self, uri: str, plain_text_password: str | None = None,
                 timeout_ms: int = 30000, flags: int = 0) -> None:
        parts = urlsplit(uri)
        if parts.scheme != "sim":
            raise LsmError(311, f"plugin for {parts.scheme}:// does not exist (simulator only)")
        q = parse_qs(parts.query)
        self.path = Path(q.get("statefile", ["/tmp/lsm_sim_data"])[0])
        if not self.path.exists():
            self.path.write_text(json.dumps(default_state()))
        self.luns = Path(str(self.path) + ".luns")
        self.luns.mkdir(exist_ok=True)
        self.timeout_ms = timeout_ms
        with self._state() as s:
            if s["password"] is not None and s["password"] != plain_text_password:
                raise LsmError(ErrorNumber.PLUGIN_AUTH_FAILED, "authentication failed")

    @contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        with open(str(self.path) + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            s = json.loads(self.path.read_text())
            yield s
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(s))
            os.replace(tmp, self.path)

    def close(self, flags: int = 0) -> None:
        pass

    # -------------------------------------------------------------- queries

    def systems(self, flags: int = 0) -> list[System]:
        return [System(id="sim-01", name="LSM simulated storage plug-in", status=1,
                       status_info="", plugin_data=None, fw_version="", mode=-1,
                       read_cache_pct=10)]

    def capabilities(self, system: System, flags: int = 0) -> Capabilities:
        with self._state() as s:
            return Capabilities({c: True for c in s["caps"]})

    def pools(self, search_key: str | None = None, search_value: str | None = None,
              flags: int = 0) -> list[Pool]:
        with self._state() as s:
            out = [Pool(id=k, name=p["name"], element_type=0, unsupported_actions=0,
                        total_space=p["total"], free_space=p["free"], status=2,
                        status_info="", system_id="sim-01", plugin_data=None)
                   for k, p in s["pools"].items()]
        return [p for p in out if search_key is None or getattr(p, search_key) == search_value]

    def _volume(self, vid: str, v: dict[str, Any]) -> Volume:
        return Volume(id=vid, name=v["name"], vpd83=v["vpd83"], block_size=512,
                      num_of_blocks=v["size"] // 512, admin_state=1, system_id="sim-01",
                      pool_id=v["pool"], plugin_data=None)

    def volumes(self, search_key: str | None = None, search_value: str | None = None,
                flags: int = 0) -> list[Volume]:
        with self._state() as s:
            out = [self._volume(k, v) for k, v in s["volumes"].items()]
        return [v for v in out if search_key is None or getattr(v, search_key) == search_value]

    def access_groups(self, search_key: str | None = None, search_value: str | None = None,
                      flags: int = 0) -> list[AccessGroup]:
        with self._state() as s:
            return [AccessGroup(id=k, name=g["name"], init_ids=g["inits"],
                                init_type=g["type"], system_id="sim-01", plugin_data=None)
                    for k, g in s["groups"].items()]

    # -------------------------------------------------------------- volumes

    def _need(self, s: dict[str, Any], cap: int, what: str) -> None:
        if cap not in s["caps"]:
            raise LsmError(ErrorNumber.NO_SUPPORT, f"{what} is not supported")

    def _job(self, s: dict[str, Any], result: str | None) -> str:
        jid = f"JOB_ID_{s['next']:05d}"
        s["next"] += 1
        s["jobs"][jid] = {"start": time.time(), "result": result,
                          "error": "simulated job failure" if s["fail_jobs"] else None}
        return jid

    def _new(self, s: dict[str, Any], pool_id: str, name: str, size: int,
             full: bool) -> str:
        if pool_id not in s["pools"]:
            raise LsmError(ErrorNumber.NOT_FOUND_POOL, f"pool {pool_id} not found")
        if any(v["name"] == name for v in s["volumes"].values()):
            raise LsmError(ErrorNumber.NAME_CONFLICT, f"volume name {name} in use")
        pool = s["pools"][pool_id]
        if size > pool["free"]:
            raise LsmError(ErrorNumber.NOT_ENOUGH_SPACE, "insufficient space in pool")
        pool["free"] -= size
        vid = f"VOL_ID_{s['next']:05d}"
        vpd = f"600{s['next']:029x}"
        s["next"] += 1
        s["volumes"][vid] = {"name": name, "size": size, "pool": pool_id, "vpd83": vpd}
        with open(self.luns / vpd, "wb") as f:
            f.truncate(size)
            if full:
                os.posix_fallocate(f.fileno(), 0, size)
        return vid

    def volume_create(self, pool: Pool, volume_name: str, size_bytes: int,
                      provisioning: int, flags: int = 0) -> tuple[str | None, Volume | None]:
        with self._state() as s:
            self._need(s, Capabilities.VOLUME_CREATE, "volume create")
            if provisioning == Volume.PROVISION_THIN:
                self._need(s, Capabilities.VOLUME_THIN, "thin provisioning")
            vid = self._new(s, pool.id, volume_name, int(size_bytes),
                            provisioning == Volume.PROVISION_FULL)
            return self._job(s, vid), None

    def volume_resize(self, volume: Volume, new_size_bytes: int,
                      flags: int = 0) -> tuple[str | None, Volume | None]:
        with self._state() as s:
            self._need(s, Capabilities.VOLUME_RESIZE, "volume resize")
            v = s["volumes"].get(volume.id)
            if v is None:
                raise LsmError(ErrorNumber.NOT_FOUND_VOLUME, f"volume {volume.id} not found")
            grow = int(new_size_bytes) - v["size"]
            if grow > s["pools"][v["pool"]]["free"]:
                raise LsmError(ErrorNumber.NOT_ENOUGH_SPACE, "insufficient space in pool")
            s["pools"][v["pool"]]["free"] -= grow
            v["size"] = int(new_size_bytes)
            os.truncate(self.luns / v["vpd83"], v["size"])
            return self._job(s, volume.id), None

    def volume_replicate(self, pool: Pool | None, rep_type: int, volume_src: Volume, name: str,
                         flags: int = 0) -> tuple[str | None, Volume | None]:
        with self._state() as s:
            self._need(s, Capabilities.VOLUME_REPLICATE, "volume replicate")
            self._need(s, Capabilities.VOLUME_REPLICATE_CLONE if rep_type ==
                       Volume.REPLICATE_CLONE else Capabilities.VOLUME_REPLICATE_COPY,
                       "clone" if rep_type == Volume.REPLICATE_CLONE else "copy")
            src = s["volumes"].get(volume_src.id)
            if src is None:
                raise LsmError(ErrorNumber.NOT_FOUND_VOLUME, f"volume {volume_src.id} not found")
            vid = self._new(s, pool.id if pool else src["pool"], name, src["size"], False)
            shutil.copyfile(self.luns / src["vpd83"], self.luns / s["volumes"][vid]["vpd83"])
            return self._job(s, vid), None

    def volume_delete(self, volume: Volume, flags: int = 0) -> str | None:
        with self._state() as s:
            self._need(s, Capabilities.VOLUME_DELETE, "volume delete")
            if s.get("fail_delete"):
                raise LsmError(ErrorNumber.TIMEOUT, "simulated timeout deleting the volume")
            v = s["volumes"].get(volume.id)
            if v is None:
                raise LsmError(ErrorNumber.NOT_FOUND_VOLUME, f"volume {volume.id} not found")
            if any(m[1] == volume.id for m in s["masks"]):
                raise LsmError(ErrorNumber.IS_MASKED, "volume is masked to an access group")
            s["pools"][v["pool"]]["free"] += v["size"]
            (self.luns / v["vpd83"]).unlink(missing_ok=True)
            del s["volumes"][volume.id]
            return self._job(s, None)

    # -------------------------------------------------------------- jobs

    def job_status(self, job_id: str, flags: int = 0) -> tuple[int, int, Any]:
        with self._state() as s:
            job = s["jobs"].get(job_id)
            if job is None:
                raise LsmError(ErrorNumber.NOT_FOUND_JOB, f"job {job_id} not found")
            elapsed = time.time() - job["start"]
            if elapsed < s["jobtime"]:
                return JobStatus.INPROGRESS, int(100 * elapsed / s["jobtime"]), None
            if job["error"]:
                return JobStatus.ERROR, 100, None
            vid = job["result"]
            vol = self._volume(vid, s["volumes"][vid]) if vid in s["volumes"] else None
            return JobStatus.COMPLETE, 100, vol

    def job_free(self, job_id: str, flags: int = 0) -> None:
        with self._state() as s:
            if s["jobs"].pop(job_id, None) is None:
                raise LsmError(ErrorNumber.NOT_FOUND_JOB, f"job {job_id} not found")

    # -------------------------------------------------------------- masking

    def access_group_create(self, name: str, init_id: str, init_type: int, system: System,
                            flags: int = 0) -> AccessGroup:
        if init_id.startswith(("iqn.", "eui.", "naa.")):
            init_type = AccessGroup.INIT_TYPE_ISCSI_IQN
        elif _WWPN.match(init_id):
            init_type = AccessGroup.INIT_TYPE_WWPN
        else:
            raise LsmError(ErrorNumber.INVALID_ARGUMENT,
                           f"invalid initiator id {init_id!r}: not an iSCSI IQN or WWPN")
        with self._state() as s:
            cap = (Capabilities.ACCESS_GROUP_CREATE_ISCSI_IQN
                   if init_type == AccessGroup.INIT_TYPE_ISCSI_IQN
                   else Capabilities.ACCESS_GROUP_CREATE_WWPN)
            self._need(s, cap, "access group create")
            if any(init_id in g["inits"] for g in s["groups"].values()):
                raise LsmError(52, f"initiator {init_id} is already in an access group")
            gid = f"AG_ID_{s['next']:05d}"
            s["next"] += 1
            s["groups"][gid] = {"name": name, "inits": [init_id], "type": init_type}
            return AccessGroup(id=gid, name=name, init_ids=[init_id], init_type=init_type,
                               system_id="sim-01", plugin_data=None)

    def volume_mask(self, access_group: AccessGroup, volume: Volume, flags: int = 0) -> None:
        with self._state() as s:
            self._need(s, Capabilities.VOLUME_MASK, "volume mask")
            if s.get("fail_mask"):
                raise LsmError(ErrorNumber.TIMEOUT, "simulated timeout masking the volume")
            pair = [access_group.id, volume.id]
            if pair in s["masks"]:
                raise LsmError(ErrorNumber.NO_STATE_CHANGE, "volume already masked")
            s["masks"].append(pair)

    def volume_unmask(self, access_group: AccessGroup, volume: Volume, flags: int = 0) -> None:
        with self._state() as s:
            pair = [access_group.id, volume.id]
            if pair not in s["masks"]:
                raise LsmError(ErrorNumber.NO_STATE_CHANGE, "volume is not masked")
            s["masks"].remove(pair)

    def volumes_accessible_by_access_group(self, access_group: AccessGroup,
                                           flags: int = 0) -> list[Volume]:
        with self._state() as s:
            ids = [v for g, v in s["masks"] if g == access_group.id]
        return [v for v in self.volumes() if v.id in ids]


def edit(statefile: str | Path, **changes: Any) -> None:
    """Change the simulated array's state from a test (caps, jobtime, password ...)."""
    path = Path(statefile)
    s = json.loads(path.read_text()) if path.exists() else default_state()
    for k, v in changes.items():
        if k == "pool_bytes":
            s["pools"]["POOL_ID_00001"].update(total=v, free=v)
        else:
            s[k] = v
    path.write_text(json.dumps(s))
