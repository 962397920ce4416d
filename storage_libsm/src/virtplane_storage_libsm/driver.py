"""The ``libsm`` storage driver: a data domain on an array pool, one LUN per volume.

Choice and its limits (the "too many LUNs" concern raised when libStorageMgmt
was proposed for VDSM): every virtplane volume, snapshot layers included, is
its own array LUN named ``vp-<volume uuid>``, masked to the host's access
group and given to QEMU as a block device. That makes array-side clone/copy
offload possible per volume, but a domain holds as many LUNs as volumes: a
VM with 3 disks and 10 snapshots is 33 LUNs, and arrays and hosts limit LUNs
per target, per access group and per host (often 256–4096; Linux scans them
all). Keep snapshot chains short on libsm domains. The alternative (one big
LUN as an LVM volume group, VDSM's block domains) scales to many more
volumes but loses per-volume offload.

The metadata LUN is untrusted input, like metadata on any shared storage: every
id read from it must be a canonical UUID (a volume id of ``md-<uuid>`` would
otherwise name another domain's metadata LUN), and each read-modify-write of
it holds an ``flock`` on the LUN's device for a bounded time and checks that
the generation it read is still the newest before writing the next one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from virtplane.errors import InvalidInput, InvalidState, NotFound, VirtplaneError

if TYPE_CHECKING:
    from virtplane.model import Image, StorageDomain, Volume
    from virtplane_storage_libsm.adapter import Array
    from virtplane_storage_libsm.settings import LibsmSettings

log = logging.getLogger("virtplane.libsm")

MD_PREFIX = "vp-md-"
VOL_PREFIX = "vp-"
#: how long a metadata write waits for another writer on this host (seconds;
#: ``connection.lock_timeout_seconds`` overrides it)
LOCK_TIMEOUT = 30.0


def _uuid(value: Any, field: str, source: Any) -> str:
    from virtplane_storage_file.filedomain import require_uuid

    return require_uuid(value, field, source)


def _vol_name(volume: Volume | str) -> str:
    """The LUN name of a volume; its id must be a UUID (never ``md-...``, which would
    name a domain's metadata LUN)."""
    vid = volume if isinstance(volume, str) else volume.id
    return VOL_PREFIX + _uuid(vid, "volume id", "libsm domain")


def _qemu_img(*args: str) -> str:
    from virtplane_storage_file.filedomain import qemu_img

    return qemu_img(*args)


def _truthy(v: Any) -> bool:
    return str(v).lower() in ("1", "true", "yes", "on")


class LibSm:
    """The ``libsm`` storage driver."""

    VIRTPLANE_PLUGIN_API = ">=2.0,<3"
    VIRTPLANE_SETTINGS = "virtplane_storage_libsm.settings:LibsmSettings"
    name = "libsm"
    #: the connection fields, parsed and checked by the core (unknown keys refused)
    VIRTPLANE_CONNECTION = "virtplane_storage_libsm.connection:LibsmConnection"

    def __init__(self, settings: LibsmSettings | None = None) -> None:
        if settings is None:
            from virtplane_storage_libsm.settings import LibsmSettings

            settings = LibsmSettings()
        self.settings = settings
        self._arrays: dict[str, Array] = {}

    # ------------------------------------------------------------ connection

    def _opt(self, domain: StorageDomain, key: str) -> Any:
        return domain.connection.get(key, getattr(self.settings, key))

    def _require(self, domain: StorageDomain, key: str, what: str) -> str:
        value = domain.connection.get(key)
        if not value:
            raise InvalidInput(f"libsm domain {domain.name!r} needs connection.{key} ({what})")
        return str(value)

    def array(self, domain: StorageDomain) -> Array:
        from virtplane_storage_libsm.adapter import Array

        uri = self._require(domain, "uri", "an lsm URI: sim://, smispy+ssl://user@host, "
                                           "targetd://user@host")
        key = f"{uri}|{domain.connection.get('password_file', '')}"
        if key not in self._arrays:
            self._arrays[key] = Array(
                self.settings.lsm_module, uri, self._password(domain),
                float(self._opt(domain, "timeout_seconds")),
                float(self._opt(domain, "job_timeout_seconds")),
                self.settings.job_poll_seconds)
        return self._arrays[key]

    def _password(self, domain: StorageDomain) -> str | None:
        path = domain.connection.get("password_file")
        if path:
            try:
                with open(path, encoding="utf-8") as f:
                    return f.readline().rstrip("\n")
            except OSError as exc:
                raise InvalidInput(f"libsm domain {domain.name!r}: password_file {path}: "
                                   f"{exc.strerror}") from None
        return os.environ.get(self.settings.password_env)

    def connect(self, domain: StorageDomain) -> None:
        arr = self.array(domain)
        arr.pool(self._require(domain, "pool", "the array pool's id or name"))
        self._group(domain)

    def disconnect(self, domain: StorageDomain) -> None:
        """Array sessions are per call; nothing stays open on the host."""

    def _group(self, domain: StorageDomain) -> Any:
        arr = self.array(domain)
        initiator = self._require(domain, "initiator", "this host's iSCSI IQN or FC WWPN")
        return arr.host_group(arr.system(domain.connection.get("system")), initiator,
                              f"vp-{socket.gethostname()}"[:32])

    def device(self, domain: StorageDomain, lun: Any) -> str:
        """Where a LUN appears on this host; its ids come from the array, so they are
        checked (hex VPD 0x83, a plain id) before they name a path."""
        from virtplane_storage_libsm.adapter import checked_lun

        checked_lun(lun, str(domain.connection.get("uri", domain.name)))
        path = str(self._opt(domain, "device_pattern")).format(vpd83=lun.vpd83, id=lun.id)
        if not path.startswith("/") or "/../" in path or path.endswith("/.."):
            raise InvalidInput(f"libsm domain {domain.name!r}: device path {path!r} is not "
                               "absolute or leaves its directory")
        return path

    def _lun(self, domain: StorageDomain, name: str) -> Any:
        lun = self.array(domain).find(name)
        if lun is None:
            raise NotFound(f"array LUN {name} of domain {domain.name!r} does not exist")
        return lun

    def describe(self, domain: StorageDomain) -> dict[str, Any]:
        """System, pool, capabilities and the offload choice (``storage show``)."""
        arr = self.array(domain)
        system = arr.system(domain.connection.get("system"))
        pool = arr.pool(self._require(domain, "pool", "pool"))
        caps = arr.capabilities(system)
        return {"system": {"id": system.id, "name": system.name},
                "pool": {"id": pool.id, "name": pool.name, "total_bytes": pool.total_space,
                         "free_bytes": pool.free_space},
                "capabilities": caps, "offload": self._offload(domain, caps, "clone")[0]}

    def _offload(self, domain: StorageDomain, caps: dict[str, bool] | None,
                 kind: str) -> tuple[bool, str]:
        if not _truthy(self._opt(domain, "offload")):
            return False, "offload is turned off in config"
        caps = caps if caps is not None else self.array(domain).capabilities(
            self.array(domain).system(domain.connection.get("system")))
        cap = f"VOLUME_REPLICATE_{kind.upper()}"
        if not caps.get(cap):
            return False, f"the array lacks {cap}"
        return True, ""

    def health(self, domain: StorageDomain) -> str | None:
        from virtplane.errors import VirtplaneError

        try:
            self.array(domain).pool(self._require(domain, "pool", "pool"))
            self._md_read(domain)
        except VirtplaneError as exc:
            return str(exc)
        return None

    # ------------------------------------------------------------ metadata

    def _md_device(self, domain: StorageDomain) -> str:
        dom_id = _uuid(domain.id, "id", f"storage domain {domain.name!r}")
        return self.device(domain, self._lun(domain, MD_PREFIX + dom_id))

    def _md_read(self, domain: StorageDomain) -> tuple[int, dict[str, Any]]:
        from virtplane_storage_libsm import mdlun

        device = self._md_device(domain)
        gen, data = mdlun.read(device)
        return gen, _checked_md(data, f"metadata LUN {device}", domain.id)

    def _md_write(self, domain: StorageDomain, gen: int, data: dict[str, Any]) -> None:
        from virtplane_storage_libsm import mdlun

        device = self._md_device(domain)
        now, _data = mdlun.read(device)
        if now != gen:
            raise InvalidState(f"storage domain {domain.name!r}: its metadata changed while "
                               f"it was being updated (generation {gen} read, {now} now); "
                               "another engine wrote it; try again")
        mdlun.write(device, data, gen + 1)

    @contextmanager
    def metadata_lock(self, domain: StorageDomain) -> Iterator[None]:
        """Hold an exclusive ``flock`` on the metadata LUN's device around a
        read-modify-write, waiting at most ``connection.lock_timeout_seconds`` (default
        :data:`LOCK_TIMEOUT`). It orders writers on this host; writers on other hosts
        are caught by the generation check in the write."""
        device = self._md_device(domain)
        timeout = float(domain.connection.get("lock_timeout_seconds") or LOCK_TIMEOUT)
        try:
            fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise InvalidState(f"cannot open metadata LUN {device}: "
                               f"{exc.strerror or exc}") from None
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise InvalidState(
                            f"storage domain {domain.name!r}: another process held the "
                            f"metadata LUN {device} for {timeout:g} s; metadata writes "
                            "wait at most that long (connection.lock_timeout_seconds)"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def create_domain(self, domain: StorageDomain) -> None:
        from virtplane_storage_libsm import mdlun

        arr = self.array(domain)
        name = MD_PREFIX + domain.id
        if arr.find(name) is not None:
            raise InvalidState(f"array already holds {name}; refusing to overwrite a domain")
        pool = arr.pool(self._require(domain, "pool", "pool"))
        lun = arr.create(pool, name, mdlun.SIZE, thin=False)
        try:
            arr.mask(self._group(domain), lun)
            mdlun.write(self.device(domain, lun), {
                "domain": {"version": 1, "uuid": domain.id, "name": domain.name,
                           "class": domain.domain_class.value, "type": "libsm"},
                "images": {}}, 1)
        except BaseException:
            self._drop_lun(domain, lun)
            raise

    def remove_domain(self, domain: StorageDomain) -> None:
        with self.metadata_lock(domain):
            _gen, md = self._md_read(domain)
            if md["images"]:
                raise InvalidState(f"storage domain {domain.name!r} still holds images: "
                                   + ", ".join(sorted(md["images"])))
        self._drop_lun(domain, self._lun(domain, MD_PREFIX
                                         + _uuid(domain.id, "id", f"domain {domain.name!r}")))

    def find_domains(self, domain: StorageDomain) -> list[dict[str, Any]]:
        """Every domain on the array; a metadata LUN's ``uuid`` must be the UUID its
        name carries (the engine names every LUN of the domain from it)."""
        from virtplane_storage_libsm import mdlun

        out = []
        for lun in self.array(domain).volumes():
            if lun.name.startswith(MD_PREFIX):
                device = self.device(domain, lun)
                md = _checked_md(mdlun.read(device)[1], f"metadata LUN {lun.name} ({device})",
                                 lun.name[len(MD_PREFIX):])
                out.append(dict(md["domain"]))
        return out

    def read_images(self, domain: StorageDomain) -> list[dict[str, Any]]:
        return list(self._md_read(domain)[1]["images"].values())

    def write_image_metadata(self, domain: StorageDomain, image: Image) -> None:
        from virtplane import model

        with self.metadata_lock(domain):
            gen, md = self._md_read(domain)
            md["images"][_uuid(image.id, "image id", f"domain {domain.name!r}")] = \
                model.unstructure(image)
            self._md_write(domain, gen, md)

    def verify(self, domain: StorageDomain, images: list[Image]) -> list[str]:
        from virtplane import model

        problems = []
        _gen, md = self._md_read(domain)
        known = {i.id: i for i in images}
        for image_id in sorted(set(known) - set(md["images"])):
            problems.append(f"image {image_id} is in the state store but not on the array")
        for image_id in sorted(set(md["images"]) - set(known)):
            problems.append(f"image {image_id} is on the array but not in the state store")
        for image_id in sorted(set(known) & set(md["images"])):
            if model.unstructure(known[image_id]) != md["images"][image_id]:
                problems.append(f"image {image_id}: the state store and the array disagree")
        names = {VOL_PREFIX + v.id for i in images for v in i.volumes}
        arr = self.array(domain)
        on_array = {lun.name for lun in arr.volumes()
                    if lun.name.startswith(VOL_PREFIX) and not lun.name.startswith(MD_PREFIX)}
        for name in sorted(names - on_array):
            problems.append(f"LUN {name} is missing on the array")
        # LUNs of other domains share the pool: only those named after our volumes count
        ours = {VOL_PREFIX + v["id"] for i in md["images"].values() for v in i["volumes"]}
        for name in sorted((on_array & ours) - names):
            problems.append(f"LUN {name} is on the array but not recorded")
        return problems

    # ------------------------------------------------------------ volumes

    def _new_lun(self, domain: StorageDomain, volume: Volume, size: int, thin: bool) -> Any:
        arr = self.array(domain)
        pool = arr.pool(self._require(domain, "pool", "pool"))
        lun = arr.create(pool, _vol_name(volume), size, thin)
        try:
            arr.mask(self._group(domain), lun)
        except Exception as exc:
            self._undo_lun(domain, lun, exc)
            raise
        return lun

    def _undo_lun(self, domain: StorageDomain, lun: Any, cause: Exception) -> None:
        """Delete a LUN just made whose masking failed; name it if it stays on the array."""
        from virtplane.errors import StorageUnavailable
        from virtplane_storage_libsm.adapter import ArrayError

        try:
            self.array(domain).delete(lun)
        except VirtplaneError as exc:
            lun_id = getattr(lun, "id", "?")
            log.error("orphan LUN %s (%s) left on the array of domain %s: masking failed "
                      "(%s) and deleting it failed (%s)", lun_id, getattr(lun, "name", "?"),
                      domain.name, cause, exc)
            # the class of the delete's failure (an array that stopped answering stays
            # StorageUnavailable, what the CLI and the API report it as)
            kind = StorageUnavailable if isinstance(exc, StorageUnavailable) else ArrayError
            raise kind(
                f"masking the new LUN {getattr(lun, 'name', '?')} failed ({cause}) and "
                f"deleting it failed too ({exc}): LUN id {lun_id} is left on the array of "
                f"domain {domain.name!r}; remove it there by hand") from None

    def _drop_lun(self, domain: StorageDomain, lun: Any) -> None:
        arr = self.array(domain)
        arr.unmask(self._group(domain), lun)
        arr.delete(lun)

    def _vol_device(self, domain: StorageDomain, volume: Volume | str) -> str:
        return self.device(domain, self._lun(domain, _vol_name(volume)))

    def create_volume(self, domain: StorageDomain, image: Image, volume: Volume) -> None:
        from virtplane import model

        thin = volume.allocation == model.Allocation.THIN
        if volume.parent_id is None:
            self._new_lun(domain, volume, volume.size_bytes, thin)
            if volume.format == model.VolumeFormat.QCOW2:
                _qemu_img("create", "-q", "-f", "qcow2", self._vol_device(domain, volume),
                          str(volume.size_bytes))
            volume.created_by = "array LUN"
            return
        parent = next((v for v in image.volumes if v.id == volume.parent_id), None)
        offload, why = self._offload(domain, None, "clone")
        if offload and parent is not None:
            arr = self.array(domain)
            src = self._lun(domain, _vol_name(parent))
            lun = arr.replicate(None, "clone", src, _vol_name(volume))
            arr.mask(self._group(domain), lun)
            volume.format = parent.format
            volume.created_by = "array clone (offloaded)"
            return
        self._new_lun(domain, volume, volume.size_bytes, thin)
        parent_dev = self._vol_device(domain, volume.parent_id)
        fmt = parent.format.value if parent is not None else "raw"
        _qemu_img("create", "-q", "-f", "qcow2", "-b", parent_dev, "-F", fmt,
                  self._vol_device(domain, volume), str(volume.size_bytes))
        volume.format = model.VolumeFormat.QCOW2
        volume.created_by = f"qcow2 layer ({why or 'parent in another image'})"

    def copy_volume(self, domain: StorageDomain, src_image: Image, src: Volume,
                    dst_image: Image, dst: Volume) -> None:
        from virtplane import model

        offload, why = self._offload(domain, None, "copy")
        standalone = all(v.parent_id is None or v.created_by.startswith("array clone")
                         for v in src_image.volumes) and src.format == model.VolumeFormat.RAW
        if offload and standalone:
            arr = self.array(domain)
            lun = arr.replicate(None, "copy", self._lun(domain, _vol_name(src)),
                                _vol_name(dst))
            arr.mask(self._group(domain), lun)
            dst.format = model.VolumeFormat.RAW
            dst.created_by = "array copy (offloaded)"
            return
        self._new_lun(domain, dst, src.size_bytes, thin=True)
        _qemu_img("convert", "-q", "-n", "-O", "raw", self._vol_device(domain, src),
                  self._vol_device(domain, dst))
        dst.format = model.VolumeFormat.RAW
        dst.created_by = "qemu-img convert (" + (
            why or "the source is a qcow2 chain the array cannot copy") + ")"

    def delete_volume(self, domain: StorageDomain, image: Image, volume: Volume) -> None:
        lun = self.array(domain).find(_vol_name(volume))
        if lun is not None:
            self._drop_lun(domain, lun)

    def delete_image(self, domain: StorageDomain, image: Image) -> None:
        for vol in reversed(image.volumes):
            self.delete_volume(domain, image, vol)
        with self.metadata_lock(domain):
            gen, md = self._md_read(domain)
            if md["images"].pop(image.id, None) is not None:
                self._md_write(domain, gen, md)

    def merge_volume(self, domain: StorageDomain, image: Image, child: Volume,
                     parent: Volume) -> None:
        child_dev = self._vol_device(domain, child)
        parent_dev = self._vol_device(domain, parent)
        if child.created_by.startswith("array clone"):
            # a full point-in-time copy: its data replaces the parent's
            _qemu_img("convert", "-q", "-n", "-f", child.format.value, "-O",
                      parent.format.value, child_dev, parent_dev)
        else:
            _qemu_img("commit", "-q", "-d", child_dev)
        for v in image.volumes:
            if v.parent_id == child.id and not v.created_by.startswith("array clone"):
                _qemu_img("rebase", "-q", "-u", "-b", parent_dev, "-F", parent.format.value,
                          self._vol_device(domain, v))

    def resize_volume(self, domain: StorageDomain, image: Image, volume: Volume,
                      size: int) -> None:
        arr = self.array(domain)
        arr.resize(self._lun(domain, _vol_name(volume)), size)
        if volume.format.value == "qcow2":
            _qemu_img("resize", "-q", self._vol_device(domain, volume), str(size))

    def volume_source(self, domain: StorageDomain, image: Image, volume: Volume) -> dict[str, Any]:
        return {"type": "block", "source": {"@dev": self._vol_device(domain, volume)}}


def _checked_md(data: Any, source: str, domain_id: str) -> dict[str, Any]:
    """A metadata LUN's content with every id checked: the domain's ``uuid`` is
    ``domain_id``, each image's key its id, each image's ids UUIDs (see
    :func:`virtplane_storage_file.filedomain.checked_image`)."""
    from virtplane_storage_file.filedomain import StorageError, checked_image

    if not isinstance(data, dict) or not isinstance(data.get("domain"), dict) \
            or not isinstance(data.get("images"), dict):
        raise StorageError(f"{source}: metadata is not {{domain, images}}; refusing it")
    if _uuid(data["domain"].get("uuid"), "domain.uuid", source) != domain_id:
        raise StorageError(f"{source}: domain.uuid {data['domain']['uuid']} is not "
                           f"{domain_id}; refusing this metadata")
    for key, image in data["images"].items():
        _uuid(key, "images key", source)
        checked_image(image, f"{source}: images[{key}]", domain_id, key)
    return dict(data)
