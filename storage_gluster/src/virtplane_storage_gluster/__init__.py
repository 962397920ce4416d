"""GlusterFS storage domains for virtplane (driver ``glusterfs``).

``connection = {"server": "gl1.example", "volume": "gv0", "backup_servers":
["gl2.example"], "transport": "tcp", "disk_access": "gfapi"}``.

- The domain's metadata and images live on the Gluster volume, which the host
  mounts with the FUSE client (as VDSM does for Gluster domains), under
  ``mnt/<domain uuid>`` in virtplane's runtime folder (``/run/virtplane`` for
  root, see :mod:`virtplane.paths`) with ``backup-volfile-servers``.
- Metadata on the volume is untrusted input (anyone with access to the
  volume can write it): ids are checked and paths confined by the file
  driver this one builds on; the libgfapi names below are made from the same
  checked paths.
- Volume information comes from ``gluster volume info <vol> --xml`` asked of
  the server (then of each backup server if it does not answer).
- Disks reach QEMU through **libgfapi** as network disks
  (``<source protocol='gluster' name='VOL/path'>`` with the volfile server
  first, then the other brick hosts), or, with ``disk_access = "fuse"``, as
  files on the FUSE mount: the fallback the administrator can choose.
- New volumes are written through the FUSE mount unless ``create_via =
  "gfapi"`` (each libgfapi session takes ~10 s to close with Gluster 10).
- ``connect`` checks what QEMU needs and names the exact commands when a
  setting is wrong: the volume is started, ``server.allow-insecure on`` for
  libgfapi, and ``storage.owner-uid``/``owner-gid`` set to QEMU's user when
  QEMU does not run as root.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtplane.errors import InvalidInput
from virtplane_storage_file.filedomain import (
    StorageInputError,
    StorageNotReady,
    StorageUnreachable,
    require,
)
from virtplane_storage_file.posixfs import PosixFs

if TYPE_CHECKING:
    from virtplane.model import Image, StorageDomain, Volume

GLUSTERD_PORT = "24007"
TRANSPORTS = ("tcp", "rdma", "unix")
ACCESS = ("gfapi", "fuse")


def qemu_user(conf: Path = Path("/etc/libvirt/qemu.conf")) -> tuple[int, int, str]:
    """The uid, gid and name QEMU runs as (libvirt's qemu.conf ``user``; Debian's default)."""
    import pwd
    import re

    name = "libvirt-qemu"
    try:
        text = conf.read_text()
    except OSError:
        text = ""  # no readable qemu.conf here: Debian's default user applies
    for line in text.splitlines():
        m = re.match(r'\s*user\s*=\s*"([^"]+)"', line)
        if m:
            name = m.group(1)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return 64055, 64055, name
    return entry.pw_uid, entry.pw_gid, name


class GlusterFs(PosixFs):
    """The ``glusterfs`` storage driver."""

    name = "glusterfs"
    #: the connection fields, parsed and checked by the core (unknown keys refused)
    VIRTPLANE_CONNECTION = "virtplane_storage_gluster.connection:GlusterConnection"

    # ------------------------------------------------------------ settings

    def _conn(self, domain: StorageDomain) -> tuple[str, str, list[str], str, str]:
        server = require(domain, "server", "the Gluster volfile server")
        volume = require(domain, "volume", "the Gluster volume name")
        backups = [str(b) for b in domain.connection.get("backup_servers") or []]
        transport = str(domain.connection.get("transport") or "tcp")
        if transport not in TRANSPORTS:
            raise InvalidInput(f"transport {transport!r} is not allowed; allowed: "
                               f"{', '.join(TRANSPORTS)}")
        access = str(domain.connection.get("disk_access") or "gfapi")
        if access not in ACCESS:
            raise InvalidInput(f"disk_access {access!r} is not allowed; allowed: "
                               f"{', '.join(ACCESS)}")
        return server, volume, backups, transport, access

    # -------------------------------------------------------- volume info

    def volume_info(self, domain: StorageDomain) -> dict[str, Any]:
        """``gluster volume info --xml``: status, bricks' hosts, options."""
        import subprocess

        import xmltodict

        server, volume, backups, _t, _a = self._conn(domain)
        errors = []
        missing = []  # the servers that answered that the volume does not exist
        for host in [server, *backups]:
            cmd = ["gluster", "--mode=script", f"--remote-host={host}", "volume", "info",
                   volume, "--xml"]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            except FileNotFoundError:
                raise StorageNotReady(f"storage domain {domain.name!r}: the gluster command "
                                      "is not installed on this host; install it (Debian "
                                      "package glusterfs-cli or glusterfs-server)") from None
            except subprocess.TimeoutExpired:
                errors.append(f"{host}: no answer within 30 s")
                continue
            try:
                doc = xmltodict.parse(proc.stdout, force_list=("volume", "brick", "option"))
            except Exception:  # noqa: BLE001 - not XML: the CLI printed an error instead
                errors.append(f"{host}: {(proc.stderr or proc.stdout).strip() or 'no answer'}")
                continue
            out = doc.get("cliOutput", {})
            if str(out.get("opRet")) != "0":
                why = str(out.get("opErrstr") or "gluster refused")
                errors.append(f"{host}: {why}")
                if "does not exist" in why:
                    missing.append(host)
                continue
            vols = ((out.get("volInfo") or {}).get("volumes") or {}).get("volume", [])
            if not vols:
                errors.append(f"{host}: volume {volume!r} does not exist")
                missing.append(host)
                continue
            vol = vols[0]
            bricks = [b["name"] if isinstance(b, dict) else str(b)
                      for b in (vol.get("bricks") or {}).get("brick", [])]
            options = {o["name"]: o["value"] for o in (vol.get("options") or {}).get("option", [])}
            return {"name": vol["name"], "status": vol.get("statusStr"),
                    "type": vol.get("typeStr"), "bricks": bricks,
                    "hosts": list(dict.fromkeys(b.split(":")[0] for b in bricks)),
                    "options": options, "asked": host}
        what = (f"storage domain {domain.name!r}: cannot read Gluster volume {volume!r}: "
                + "; ".join(errors))
        if missing:  # a server answered: the name is wrong, not the network
            raise StorageInputError(f"{what}; give the name of a volume that exists (gluster "
                                    f"volume list, on {missing[0]})")
        raise StorageUnreachable(f"{what}; check that glusterd runs on "
                                 f"{' or '.join([server, *backups])} and answers this host "
                                 f"(port {GLUSTERD_PORT}), then try again")

    def check(self, domain: StorageDomain, info: dict[str, Any]) -> list[str]:
        """What QEMU needs from the volume that is not set, with the command to set it."""
        _s, volume, _b, _t, access = self._conn(domain)
        problems = []
        if info["status"] != "Started":
            problems.append(f"volume {volume} is {info['status']}: gluster volume start {volume}")
        opts = info["options"]
        if access == "gfapi" and opts.get("server.allow-insecure") not in ("on", "true", "yes"):
            problems.append(f"libgfapi clients (QEMU) connect from unprivileged ports: "
                            f"gluster volume set {volume} server.allow-insecure on")
        uid, gid, user = qemu_user()
        if uid != 0:
            for key, want in (("storage.owner-uid", uid), ("storage.owner-gid", gid)):
                if opts.get(key) != str(want):
                    problems.append(f"QEMU runs as {user} ({key.split('-')[1]} {want}): "
                                    f"gluster volume set {volume} {key} {want}")
        return problems

    # --------------------------------------------------------- connecting

    def mount_command(self, domain: StorageDomain, target: Path) -> list[str]:
        server, volume, backups, transport, _a = self._conn(domain)
        opts = [f"transport={transport}"] if transport != "tcp" else []
        if backups:
            opts.append("backup-volfile-servers=" + ":".join(backups))
        cmd = ["mount", "-t", "glusterfs"]
        if opts:
            cmd += ["-o", ",".join(opts)]
        return [*cmd, f"{server}:/{volume}", str(target)]

    def connect(self, domain: StorageDomain) -> None:
        info = self.volume_info(domain)
        problems = self.check(domain, info)
        if problems:
            raise StorageNotReady(f"storage domain {domain.name!r}: Gluster volume "
                                  f"{info['name']} is not ready for QEMU: "
                                  + "; ".join(problems))
        self._hosts = info["hosts"]
        super().connect(domain)

    # ------------------------------------------------------------- disks

    def create_target(self, domain: StorageDomain, image: Image, volume: Volume) -> str:
        """Where qemu-img writes new volumes: the FUSE mount (default), or through
        libgfapi with ``connection.create_via = "gfapi"``. Each gfapi session of
        Gluster 10's client library takes about 10 s to close, so the FUSE path
        is the default for image work; QEMU still reads the disks through gfapi."""
        server, vol, _b, transport, _access = self._conn(domain)
        if domain.connection.get("create_via", "fuse") != "gfapi":
            return super().create_target(domain, image, volume)
        # the image folder exists through the FUSE mount; the file is written by gfapi
        self.image_dir(domain, image.id).mkdir(parents=True, exist_ok=True)
        scheme = "gluster" if transport == "tcp" else f"gluster+{transport}"
        return f"{scheme}://{server}/{vol}/{self._volume_name(domain, image, volume)}"

    def _volume_name(self, domain: StorageDomain, image: Image, volume: Volume) -> str:
        """``<domain uuid>/images/<image uuid>/<volume uuid>`` inside the Gluster volume:
        made from the checked, confined FUSE path (UUID ids, no link on the way), so a
        network disk never names a file a checked path would not."""
        path = self.volume_path(domain, image, volume)
        return str(path.relative_to(self.mount_point(domain)))

    def volume_source(self, domain: StorageDomain, image: Image, volume: Volume) -> dict[str, Any]:
        server, vol, backups, transport, access = self._conn(domain)
        if access == "fuse":
            return super().volume_source(domain, image, volume)
        hosts = list(dict.fromkeys([server, *backups, *getattr(self, "_hosts", [])]))
        host_elems = []
        for host in hosts:
            elem = {"@name": host, "@transport": transport}
            if transport != "unix":
                elem["@port"] = GLUSTERD_PORT
            host_elems.append(elem)
        return {"type": "network", "source": {
            "@protocol": "gluster",
            "@name": f"{vol}/{self._volume_name(domain, image, volume)}",
            "host": host_elems}}
