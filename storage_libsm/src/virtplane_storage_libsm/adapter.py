"""A narrow adapter over libStorageMgmt's ``lsm.Client``: the calls the libsm driver
makes, asynchronous jobs followed to the end, and ``LsmError`` mapped to virtplane
errors.

With the real binding importable (``lsm_module = "lsm"``, the default) it is
used; the tests load a simulated array with the same surface instead. The
password goes to ``lsm.Client(plain_text_password=...)`` and nowhere else.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from typing import Any

from virtplane.errors import (
    InvalidInput,
    NoSpace,
    NotFound,
    StorageUnavailable,
    VirtplaneError,
)

log = logging.getLogger("virtplane.libsm")


class ArrayError(VirtplaneError):
    """The array refused or failed an operation (the message names it and the lsm code)."""


class NotSupported(ArrayError):
    """The array lacks the capability (``NO_SUPPORT``)."""


#: the capabilities virtplane looks at, by the name ``storage show`` prints
CAPABILITIES = ["VOLUMES", "VOLUME_CREATE", "VOLUME_RESIZE", "VOLUME_REPLICATE",
                "VOLUME_REPLICATE_CLONE", "VOLUME_REPLICATE_COPY", "VOLUME_DELETE",
                "VOLUME_MASK", "VOLUME_UNMASK", "ACCESS_GROUPS", "ACCESS_GROUP_CREATE_WWPN",
                "ACCESS_GROUP_CREATE_ISCSI_IQN", "VOLUME_THIN"]


def load(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise StorageUnavailable(
            f"the libStorageMgmt Python binding ({module}) cannot be imported: {exc}; install "
            "python3-libstoragemgmt (it is not on PyPI)") from None


_VPD83 = re.compile(r"[0-9a-fA-F]{8,64}")
_ID = re.compile(r"[A-Za-z0-9_.:@+-]{1,255}")


def _one_line(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:4 * limit])
    return text if len(text) <= limit else text[:limit] + "..."


def checked_lun(lun: Any, where: str) -> Any:
    """A volume the array answered: string id and name, a hex VPD 0x83 id (they name a
    device path on this host), a positive block size; else ArrayError."""
    vid, name, vpd = (getattr(lun, k, None) for k in ("id", "name", "vpd83"))
    if not (isinstance(vid, str) and _ID.fullmatch(vid) and ".." not in vid):
        raise ArrayError(f"array {where}: a volume id {_one_line(vid, 80)} is not a plain id")
    if not (isinstance(name, str) and 0 < len(name) <= 255 and name.isprintable()):
        raise ArrayError(f"array {where}: volume {vid} has name {_one_line(name, 80)}")
    if not (isinstance(vpd, str) and _VPD83.fullmatch(vpd)):
        raise ArrayError(f"array {where}: volume {name} has VPD 0x83 id {_one_line(vpd, 80)}, "
                         "not 8-64 hex digits")
    return lun


def map_error(lsm: Any, exc: Exception, what: str) -> VirtplaneError:
    """An ``LsmError`` as the virtplane error a user understands."""
    code = getattr(exc, "code", None)
    if isinstance(code, bool) or not isinstance(code, int):
        code = None
    msg = _one_line(getattr(exc, "msg", str(exc)))
    e = lsm.ErrorNumber
    text = f"array: {what} failed: {msg} (lsm error {code})"
    if code is None:
        return ArrayError(text)
    if 200 <= code <= 209:
        return NotFound(text)
    if code == getattr(e, "NOT_ENOUGH_SPACE", 350):
        return NoSpace(text)
    if code == getattr(e, "NO_SUPPORT", 153):
        return NotSupported(text)
    if code in (getattr(e, "INVALID_ARGUMENT", 101), 402):
        return InvalidInput(text)
    if code in (getattr(e, "PLUGIN_AUTH_FAILED", 300), getattr(e, "PERMISSION_DENIED", 13)):
        return StorageUnavailable(f"array: authentication refused during {what} ({msg}); check "
                                  "the array password (lsm error {code})".replace("{code}",
                                                                                 str(code)))
    if code in (getattr(e, "TIMEOUT", 11), 140, 141, 142, 12, 301, 311, 400):
        return StorageUnavailable(text)
    return ArrayError(text)


class Array:
    """One array connection: ``Array(lsm_module, uri, password, timeout_s)``."""

    def __init__(self, module: str, uri: str, password: str | None, timeout_s: float,
                 job_timeout_s: float = 600.0, poll_s: float = 0.2) -> None:
        self.lsm = load(module)
        self.uri = uri
        self.job_timeout_s = job_timeout_s
        self.poll_s = poll_s
        self.client = self.call(f"connecting to {uri}", self.lsm.Client, uri,
                                plain_text_password=password, timeout_ms=int(timeout_s * 1000))

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self.lsm.LsmError as exc:
            raise map_error(self.lsm, exc, what) from None

    def close(self) -> None:
        self.call("closing", self.client.close)

    # ------------------------------------------------------------ discovery

    def system(self, system_id: str | None = None) -> Any:
        systems = self.call("listing systems", self.client.systems)
        for s in systems:
            if system_id in (None, s.id, s.name):
                return s
        raise NotFound(f"array {self.uri} has no system {system_id!r} (has: "
                       + ", ".join(s.id for s in systems) + ")")

    def pool(self, name_or_id: str) -> Any:
        pools = self.call("listing pools", self.client.pools)
        for p in pools:
            if name_or_id in (p.id, p.name):
                return p
        raise NotFound(f"array {self.uri} has no pool {name_or_id!r} (has: "
                       + ", ".join(f"{p.id} ({p.name})" for p in pools) + ")")

    def capabilities(self, system: Any) -> dict[str, bool]:
        caps = self.call("reading capabilities", self.client.capabilities, system)
        out = {}
        for name in CAPABILITIES:
            value = getattr(self.lsm.Capabilities, name, None)
            out[name] = bool(value is not None and caps.supported(value))
        return out

    def volumes(self) -> list[Any]:
        """Every volume, each checked (:func:`checked_lun`), no id or name twice."""
        vols = self.call("listing volumes", self.client.volumes)
        if not isinstance(vols, list | tuple):
            raise ArrayError(f"array {self.uri}: the volume list is {type(vols).__name__}")
        ids: set[str] = set()
        names: set[str] = set()
        for v in vols:
            checked_lun(v, self.uri)
            if v.id in ids or v.name in names:
                raise ArrayError(f"array {self.uri} lists volume {v.name} ({v.id}) twice")
            ids.add(v.id)
            names.add(v.name)
        return list(vols)

    def find(self, name: str) -> Any | None:
        for v in self.volumes():
            if v.name == name:
                return v
        return None

    # ------------------------------------------------------------ jobs

    def wait(self, job_and_result: Any, what: str, progress: Any = None) -> Any:
        """Follow an async job to completion (progress reported), free it always; a
        job still running at ``job_timeout_s`` is freed (lsm has no cancel) and
        reported as a timeout, so the caller can remove what it may have made."""
        job, result = (job_and_result if isinstance(job_and_result, tuple)
                       else (job_and_result, None))
        if job is None:
            return result
        deadline = time.monotonic() + self.job_timeout_s
        try:
            while True:
                answer = self.call(f"{what} (job {job})", self.client.job_status, job)
                if not (isinstance(answer, tuple | list) and len(answer) == 3):
                    raise ArrayError(f"array {self.uri}: job {job} status is "
                                     f"{_one_line(answer, 80)}, not (status, percent, data)")
                status, pct, data = answer
                if isinstance(pct, bool) or not isinstance(pct, int) or not 0 <= pct <= 100:
                    raise ArrayError(f"array {self.uri}: job {job} is {_one_line(pct, 40)} "
                                     "percent done")
                if status not in (self.lsm.JobStatus.COMPLETE, self.lsm.JobStatus.ERROR,
                                  self.lsm.JobStatus.INPROGRESS):
                    raise ArrayError(f"array {self.uri}: job {job} has status "
                                     f"{_one_line(status, 40)}")
                if progress is not None:
                    progress(pct)
                if status == self.lsm.JobStatus.COMPLETE:
                    return data
                if status == self.lsm.JobStatus.ERROR:
                    raise ArrayError(f"array: {what} failed: job {job} ended in error")
                if time.monotonic() > deadline:
                    raise StorageUnavailable(f"array: {what} did not finish within "
                                             f"{self.job_timeout_s:g} s (job {job}, {pct}%)")
                time.sleep(self.poll_s)
        finally:
            try:
                self.client.job_free(job)
            except self.lsm.LsmError as exc:
                log.debug("job %s was already freed: %s", job, exc)

    # ------------------------------------------------------------ volumes

    def create(self, pool: Any, name: str, size: int, thin: bool) -> Any:
        V = self.lsm.Volume
        prov = V.PROVISION_THIN if thin else V.PROVISION_FULL
        return self.made(self.wait(self.call(f"creating volume {name}",
                                             self.client.volume_create, pool, name, size,
                                             prov), f"creating volume {name}"), name)

    def made(self, lun: Any, name: str) -> Any:
        """The volume a job made: the one named ``name`` (looked up when the job gave
        none), checked; another volume in its place is refused."""
        if lun is None:
            lun = self.find(name)
            if lun is None:
                raise ArrayError(f"array {self.uri}: volume {name} is missing after its job")
        checked_lun(lun, self.uri)
        if lun.name != name:
            raise ArrayError(f"array {self.uri}: the job for volume {name} answered volume "
                             f"{_one_line(lun.name, 80)}")
        return lun

    def resize(self, volume: Any, size: int) -> Any:
        return self.wait(self.call(f"resizing {volume.name}", self.client.volume_resize,
                                   volume, size), f"resizing {volume.name}")

    def replicate(self, pool: Any, kind: str, src: Any, name: str) -> Any:
        rep = {"clone": self.lsm.Volume.REPLICATE_CLONE,
               "copy": self.lsm.Volume.REPLICATE_COPY}[kind]
        what = f"{kind} of {src.name} to {name}"
        return self.made(self.wait(self.call(what, self.client.volume_replicate, pool, rep,
                                             src, name), what), name)

    def delete(self, volume: Any) -> None:
        self.wait(self.call(f"deleting {volume.name}", self.client.volume_delete, volume),
                  f"deleting {volume.name}")

    # ------------------------------------------------------------ masking

    def host_group(self, system: Any, initiator: str, name: str) -> Any:
        """The access group holding this host's initiator (created when missing)."""
        groups = self.call("listing access groups", self.client.access_groups)
        for g in groups if isinstance(groups, list | tuple) else [None]:
            inits = getattr(g, "init_ids", None)
            if not (isinstance(inits, list | tuple) and all(isinstance(i, str) for i in inits)
                    and isinstance(getattr(g, "id", None), str)):
                raise ArrayError(f"array {self.uri}: an access group is "
                                 f"{_one_line(inits, 80)}, not a list of initiators")
            if initiator in inits:
                return g
        kind = (self.lsm.AccessGroup.INIT_TYPE_ISCSI_IQN if initiator.startswith("iqn.")
                else self.lsm.AccessGroup.INIT_TYPE_WWPN)
        try:
            return self.client.access_group_create(name, initiator, kind, system)
        except self.lsm.LsmError as exc:
            if exc.code == self.lsm.ErrorNumber.INVALID_ARGUMENT:
                raise InvalidInput(f"initiator {initiator!r} is not an iSCSI IQN (iqn.…) or an "
                                   f"FC WWPN (aa:bb:cc:dd:ee:ff:00:11): {exc.msg}") from None
            raise map_error(self.lsm, exc, f"creating access group {name}") from None

    def mask(self, group: Any, volume: Any) -> None:
        self.call(f"masking {volume.name} to {group.name}", self.client.volume_mask, group,
                  volume)

    def unmask(self, group: Any, volume: Any) -> None:
        try:
            self.client.volume_unmask(group, volume)
        except self.lsm.LsmError as exc:
            if exc.code != self.lsm.ErrorNumber.NO_STATE_CHANGE:
                raise map_error(self.lsm, exc, f"unmasking {volume.name}") from None
