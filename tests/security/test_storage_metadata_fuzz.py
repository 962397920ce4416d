"""Fuzzed metadata on a file domain: a clear refusal or a sane result, never a traceback.

A real localfs domain is built once through the services (a VM disk with two VM
snapshots, a template made from it and a thin VM on the template, a standalone
disk with a disk snapshot). Each example copies it, next to a sentinel folder
inside the export (a sibling of the domain's folder) and another outside it,
then rewrites one metadata file the way anyone who can write the export could,
checksum recomputed (:func:`write_json`, or the same text written by hand):
wrong types, missing and extra keys, huge and negative numbers, ids that are no
UUIDs (``/``, ``..``, NUL, absolute paths, another image's volumes), cycles and
duplicates in a chain, formats other than raw/qcow2, links, FIFOs and folders
in place of files, enormous files, bytes that are not UTF-8, deep JSON nesting.

Two engines then read it: engine B attached the copy before the change (the
storage changes under it) and runs ``storage verify``, ``refresh``, ``show``,
``repair`` and the disk listing; engine C attaches the changed copy and, when
the attach succeeds, lists, snapshots and merges each disk, makes a VM on the
standalone disk, verifies, repairs and removes the disk. Each call must succeed
or raise a :class:`VirtplaneError` with a one-line message; nothing outside the
domain's folder may change; repair never deletes a file a legal volume (or its
backing chain) still uses.

Derandomized and bounded (``VIRTPLANE_STORAGE_FUZZ_EXAMPLES``, default 80: about 20 s).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.test_storage_metadata import _tree as tree_digest
from virtplane import model
from virtplane.errors import VirtplaneError
from virtplane_storage_file.filedomain import read_json, write_json

EXAMPLES = int(os.environ.get("VIRTPLANE_STORAGE_FUZZ_EXAMPLES", "80"))

ROLES = ("vm", "template", "thin", "disk")


_tree = tree_digest  # the same picture test_storage_metadata takes


def _manager(state: Path) -> Any:
    from virtplane import Manager, config

    return Manager(config.load(), state_path=str(state))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The pristine domain (built once) and what each role's image holds."""
    # on tmpfs when there is one: each example copies the domain and opens two state
    # stores, and fsync on a disk would be most of the run time
    shm = Path("/dev/shm")
    top = Path(tempfile.mkdtemp(prefix="vp-mdfuzz-", dir=shm)) if shm.is_dir() \
        and os.access(shm, os.W_OK) else tmp_path_factory.mktemp("mdfuzz")
    a = _manager(top / "a.db")
    try:
        a.datacenters.add("dc")
        a.clusters.add("cl", "dc")
        a.hosts.add("h", "cl", "test:///default")
        dom = a.storage.add("sd", "localfs", "dc", {"path": str(top / "export")})
        vm = a.vms.create(model.VmSpec(name="v1", memory_mib=256, disks=[
            model.DiskSpec(name="d0", size_bytes=4 << 20, domain_id=dom.id)]), "cl")
        a.snapshots.take("v1", "s1")
        a.snapshots.take("v1", "s2")
        template = a.templates.create("v1", "t1")
        thin = a.templates.create_vm("t1", "thin1", "cl")
        a.disks.create("fd", "sd", 1 << 20)
        a.disks.snapshot("fd")
        images = {
            "vm": a.vms.get(vm.name).spec.disks[0].image_id,
            "template": template.image_ids[0],
            "thin": a.vms.get(thin.name).spec.disks[0].image_id,
            "disk": a.store.find(model.Image, "fd").id,
        }
        volumes = {role: [v.id for v in a.store.get(model.Image, i).volumes]
                   for role, i in images.items()}
        assert [len(volumes[r]) for r in ROLES] == [3, 1, 1, 2]
    finally:
        a.close()
    yield {"top": top, "export": top / "export", "dom": dom.id, "images": images,
           "volumes": volumes}
    shutil.rmtree(top, ignore_errors=True)


# ------------------------------------------------------------------ mutations

_UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"

#: plain JSON values of every kind a field could wrongly hold
VALUES = st.sampled_from([
    None, True, False, 0, -1, -(1 << 20), 1 << 70, 10 ** 300, 1.5, float("nan"),
    "", "x", "../../victim", "../../../outside/precious", "/etc/passwd", "a/b", "\0",
    "x\0y", "..", ".", "line\nbreak", _UUID.upper(), _UUID, "é" * 3, "\ud800",
    "z" * 5000, [], [1], {}, {"a": 1}, [[[[[[[[[[[]]]]]]]]]]], "vmdk", "raw", "qcow2",
    "preallocated", "vm:../../x", "template:", "template:" + _UUID, "vm:" + _UUID,
])

#: references resolved against the domain when a mutation is applied
REFS = st.sampled_from(["@self", "@other_image", "@other_volume", "@own_volume",
                        "@parent_of_other", "@template_volume"])

IMAGE_KEYS = ["domain_id", "description", "volumes", "alias", "id", "owner", "shareable",
              "intent"]
VOLUME_KEYS = ["image_id", "format", "allocation", "size_bytes", "parent_id",
               "base_image_id", "legal", "created_by", "id"]
DOMAIN_KEYS = ["uuid", "name", "class", "type", "version"]

CHAIN_OPS = ["cycle", "self_parent", "dup_volume", "dup_legal", "reverse", "drop_first",
             "drop_middle", "empty", "foreign_parent", "foreign_base", "base_self",
             "illegal_middle", "illegal_leaf", "illegal_all", "steal_volume", "format_raw",
             "parent_gone", "two_bases", "shared_id_across_images"]

FILE_OPS = ["symlink_meta", "symlink_folder", "symlink_volume", "symlink_base_volume",
            "fifo_meta", "dir_meta", "huge_meta", "non_utf8", "deep_nesting", "truncated",
            "not_json", "missing_meta", "extra_file", "volume_dir", "volume_gone",
            "image_folder_not_uuid", "image_folder_is_file", "checksum_only", "huge_number",
            "data_not_object"]

DOMAIN_FILE_OPS = ["symlink_meta", "fifo_meta", "huge_meta", "non_utf8", "deep_nesting",
                   "images_symlink", "dom_md_symlink", "data_not_object", "dir_meta",
                   "missing_meta", "images_is_file"]

image_mutation = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(IMAGE_KEYS), st.one_of(VALUES, REFS)),
    st.tuples(st.just("del"), st.sampled_from(IMAGE_KEYS), st.none()),
    st.tuples(st.just("extra"), st.sampled_from(["x", "revision", "data", ""]), VALUES),
    st.tuples(st.just("vset"), st.tuples(st.integers(0, 3), st.sampled_from(VOLUME_KEYS)),
              st.one_of(VALUES, REFS)),
    st.tuples(st.just("vdel"), st.tuples(st.integers(0, 3), st.sampled_from(VOLUME_KEYS)),
              st.none()),
    st.tuples(st.just("vextra"), st.integers(0, 3), VALUES),
    st.tuples(st.just("chain"), st.sampled_from(CHAIN_OPS), st.none()),
    st.tuples(st.just("file"), st.sampled_from(FILE_OPS), st.none()),
)
domain_mutation = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(DOMAIN_KEYS), VALUES),
    st.tuples(st.just("del"), st.sampled_from(DOMAIN_KEYS), st.none()),
    st.tuples(st.just("extra"), st.sampled_from(["x", "images"]), VALUES),
    st.tuples(st.just("file"), st.sampled_from(DOMAIN_FILE_OPS), st.none()),
)
MUTATION = st.one_of(
    st.tuples(st.sampled_from(ROLES), image_mutation),
    st.tuples(st.just("domain"), domain_mutation),
)


def _deep(depth: int) -> tuple[str, Any]:
    """JSON text nested ``depth`` lists deep (what json.dumps would write), and a marker."""
    return "[" * depth + "]" * depth, None


def _write_text(path: Path, text: str) -> None:
    """``{"data": <text>, "sha256": ...}`` with a valid checksum, written by hand (for
    documents json.dumps cannot make, or that would take it too long)."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    path.unlink(missing_ok=True)
    path.write_bytes(f'{{"data": {text}, "sha256": "{digest}"}}'.encode("utf-8",
                                                                         "surrogatepass"))


class Domain:
    """One example's copy of the world."""

    def __init__(self, world: dict[str, Any], root: Path) -> None:
        self.world = world
        self.export = root / "export"
        self.dom = self.export / world["dom"]
        self.images = world["images"]
        self.volumes = world["volumes"]

    def folder(self, role: str) -> Path:
        return self.dom / "images" / self.images[role]

    def meta(self, role: str) -> Path:
        return self.dom / "dom_md" / "metadata.json" if role == "domain" else \
            self.folder(role) / "image.json"

    def ref(self, role: str, token: Any) -> Any:
        other = "disk" if role != "disk" else "vm"
        return {
            "@self": self.images.get(role, self.world["dom"]),
            "@other_image": self.images[other],
            "@other_volume": self.volumes[other][-1],
            "@own_volume": self.volumes.get(role, [_UUID])[-1],
            "@parent_of_other": self.volumes[other][0],
            "@template_volume": self.volumes["template"][0],
        }.get(token, token) if isinstance(token, str) else token

    def victim_file(self) -> Path:
        return self.export / "victim" / "precious"

    # ------------------------------------------------------------ applying

    def apply(self, role: str, mutation: tuple[str, Any, Any]) -> None:
        kind, what, value = mutation
        if kind == "file":
            self.file_op(role, what)
            return
        path = self.meta(role)
        data = read_json(path)
        vols = data.get("volumes", [])
        if kind == "set":
            data[what] = self.ref(role, value)
        elif kind == "del":
            data.pop(what, None)
        elif kind == "extra":
            data[what] = value
        elif kind in ("vset", "vdel"):
            n, key = what
            if n < len(vols):
                if kind == "vset":
                    vols[n][key] = self.ref(role, value)
                else:
                    vols[n].pop(key, None)
        elif kind == "vextra":
            if what < len(vols):
                vols[what]["x"] = value
        elif kind == "chain":
            self.chain_op(role, data, what)
        write_json(path, data)

    def chain_op(self, role: str, data: dict[str, Any], op: str) -> None:
        vols: list[dict[str, Any]] = data["volumes"]
        other = "disk" if role != "disk" else "vm"
        if op == "cycle":
            vols[0]["parent_id"] = vols[-1]["id"]
        elif op == "self_parent":
            vols[-1]["parent_id"] = vols[-1]["id"]
        elif op == "dup_volume":
            vols.append({**vols[0], "legal": False, "parent_id": vols[-1]["id"]})
        elif op == "dup_legal":
            vols.append(dict(vols[-1]))
        elif op == "reverse":
            vols.reverse()
        elif op == "drop_first":
            del vols[0]
        elif op == "drop_middle":
            del vols[len(vols) // 2]
        elif op == "empty":
            vols.clear()
        elif op == "foreign_parent":
            vols[-1]["parent_id"] = self.volumes[other][-1]
        elif op == "foreign_base":
            vols[0]["parent_id"] = self.volumes[other][-1]
            vols[0]["base_image_id"] = self.images[other]
        elif op == "base_self":
            vols[0]["parent_id"] = vols[-1]["id"]
            vols[0]["base_image_id"] = data["id"]
        elif op == "illegal_middle":
            vols[len(vols) // 2]["legal"] = False
        elif op == "illegal_leaf":
            vols[-1]["legal"] = False
        elif op == "illegal_all":
            for v in vols:
                v["legal"] = False
        elif op == "steal_volume":
            vols[-1]["id"] = self.volumes[other][-1]
        elif op == "format_raw":
            for v in vols:
                v["format"] = "raw"
        elif op == "parent_gone":
            vols[-1]["parent_id"] = _UUID
        elif op == "two_bases":
            vols[-1]["parent_id"] = None
        elif op == "shared_id_across_images":
            # this image's leaf claims the id of another image's (still used) leaf, illegal
            vols[-1]["id"] = self.volumes[other][-1]
            vols[-1]["legal"] = False

    def file_op(self, role: str, op: str) -> None:
        path = self.meta(role)
        victim = self.victim_file()
        if op == "symlink_meta":
            path.unlink()
            path.symlink_to(victim)
        elif op == "symlink_folder":
            folder = self.folder(role)
            shutil.rmtree(folder)
            folder.symlink_to(victim.parent)
        elif op in ("symlink_volume", "symlink_base_volume"):
            vol = self.folder(role) / self.volumes[role][-1 if op == "symlink_volume" else 0]
            vol.unlink()
            vol.symlink_to(victim)
        elif op == "fifo_meta":
            path.unlink()
            os.mkfifo(path)
        elif op == "dir_meta":
            path.unlink()
            path.mkdir()
        elif op == "huge_meta":
            data = read_json(path)
            key = "description" if role != "domain" else "name"
            _write_text(path, json.dumps({**data, key: "h" * (24 << 20)}, sort_keys=True))
        elif op == "huge_number":
            data = read_json(path)
            text = json.dumps(data, sort_keys=True).replace('"size_bytes": ',
                                                            '"size_bytes": ' + "9" * 4000, 1)
            _write_text(path, text)
        elif op == "non_utf8":
            path.unlink()
            path.write_bytes(b'{"data": {"id": "\xff\xfe"}, "sha256": "00"}')
        elif op == "deep_nesting":
            _write_text(path, _deep(200_000)[0])
        elif op == "truncated":
            text = path.read_bytes()
            path.unlink()
            path.write_bytes(text[: len(text) // 2])
        elif op == "not_json":
            path.unlink()
            path.write_bytes(b"\x00\x01 not json at all")
        elif op == "missing_meta":
            path.unlink()
        elif op == "extra_file":
            (self.folder(role) / "stray").write_bytes(b"x")
        elif op == "volume_dir":
            vol = self.folder(role) / self.volumes[role][-1]
            vol.unlink()
            vol.mkdir()
            (vol / "inside").write_bytes(b"x")
        elif op == "volume_gone":
            (self.folder(role) / self.volumes[role][-1]).unlink()
        elif op == "image_folder_not_uuid":
            os.rename(self.folder(role), self.dom / "images" / "not-a-uuid")
        elif op == "image_folder_is_file":
            folder = self.folder(role)
            shutil.rmtree(folder)
            folder.write_bytes(b"x")
        elif op == "checksum_only":
            doc = json.loads(path.read_text())
            doc["sha256"] = 5
            path.unlink()
            path.write_text(json.dumps(doc))
        elif op == "data_not_object":
            write_json(path, ["not", "an", "object"])
        elif op == "images_symlink":
            images = self.dom / "images"
            os.rename(images, self.export / "moved-images")
            images.symlink_to(victim.parent)
        elif op == "dom_md_symlink":
            md = self.dom / "dom_md"
            os.rename(md, self.export / "moved-dom_md")
            md.symlink_to(victim.parent)
        elif op == "images_is_file":
            images = self.dom / "images"
            os.rename(images, self.export / "moved-images")
            images.write_bytes(b"x")


# ------------------------------------------------------------------- checking


class Failed:
    """What :func:`_call` returns for a refused call."""

    def __init__(self, message: str) -> None:
        self.message = message


def _call(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``; a VirtplaneError is a fine answer (one line, with its reason), any
    other exception fails the test (it propagates, with the call named)."""
    try:
        return fn(*args)
    except VirtplaneError as exc:
        message = str(exc)
        assert message.strip(), f"{what}: {type(exc).__name__} without a message"
        assert "\n" not in message, f"{what}: a message of several lines: {message!r}"
        assert len(message) < 4000, f"{what}: a message of {len(message)} characters"
        return Failed(message)
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc!r}"[:2000]) from exc


def _used(engine: Any, dom: model.StorageDomain, root: Path) -> set[Path]:
    """The files the legal volumes of the engine's images are, and their backing files:
    what a repair must never delete."""
    used: set[Path] = set()
    for image in engine.volumes.images_of(dom):
        for vol in image.volumes:
            if not vol.legal:
                continue
            used.add(root / "images" / image.id / vol.id)
            if vol.parent_id:
                used.add(root / "images" / (vol.base_image_id or image.id) / vol.parent_id)
    return {p for p in used if os.path.lexists(p)}


def _repair(what: str, engine: Any, name: str, root: Path) -> None:
    dom = engine.store.find(model.StorageDomain, name)
    before = _used(engine, dom, root)
    result = _call(what, engine.storage.repair, name)
    gone = sorted(str(p) for p in before if not os.path.lexists(p))
    assert not gone, f"{what} deleted files legal volumes use: {gone} ({result})"


def _engine(work: Path, name: str, host: bool = False) -> Any:
    e = _manager(work / f"{name}.db")
    e.datacenters.add("dc2")
    if host:
        e.clusters.add("cl2", "dc2")
        e.hosts.add("h2", "cl2", "test:///default")
    return e


def _sane(image: model.Image) -> None:
    """An attached image is one chain of raw/qcow2 volumes with sizes in range."""
    ids = [v.id for v in image.volumes]
    assert ids and len(set(ids)) == len(ids), image
    for n, vol in enumerate(image.volumes):
        assert isinstance(vol.size_bytes, int) and 0 <= vol.size_bytes <= 1 << 60, vol
        assert isinstance(vol.legal, bool) and vol.format.value in ("raw", "qcow2"), vol
        if n:
            assert vol.parent_id == ids[n - 1] and vol.base_image_id is None, image
        else:
            assert (vol.parent_id is None) == (vol.base_image_id is None), image


def _exercise(c: Any, path: Path, root: Path, ids: list[str]) -> None:
    """Engine C attaches the changed domain and uses it, when the attach succeeds."""
    dom = _call("attach", c.storage.attach, "sd", "localfs", {"path": str(path)}, "dc2")
    if isinstance(dom, Failed):
        # says where: the file or folder, the domain or the image
        assert str(path) in dom.message or "'sd'" in dom.message or any(
            i in dom.message for i in ids), dom.message
        assert not c.store.list(model.Image) and not c.store.list(model.StorageDomain)
        return
    for image in c.volumes.images_of(dom):
        _sane(image)
    listing = _call("disk list", c.disks.list)
    assert isinstance(listing, (list, Failed))
    problems = _call("verify", c.storage.verify, "sd")
    assert isinstance(problems, (list, Failed))
    _call("refresh", c.storage.refresh, "sd")
    _call("show", c.storage.info, "sd")
    for image in sorted(c.volumes.images_of(dom), key=lambda i: i.id):
        name = image.alias or image.id
        _call(f"snapshot {name}", c.disks.snapshot, name)
        _call(f"merge {name}", c.disks.merge, name)
    fd = next((i for i in c.store.list(model.Image) if i.alias == "fd"), None)
    if fd is not None:
        _call("vm with the disk", c.vms.create, model.VmSpec(
            name="w", memory_mib=256, disks=[model.DiskSpec(
                name="d", image_id=fd.id, domain_id=fd.domain_id)]), "cl2")
        if c.store.has(model.Vm, "w") or any(v.name == "w" for v in c.store.list(model.Vm)):
            _call("vm remove", c.vms.remove, "w")
    _call("verify", c.storage.verify, "sd")
    _repair("repair (engine C)", c, "sd", root)
    if fd is not None and c.store.has(model.Image, fd.id):
        _call("disk remove", c.disks.remove, "fd")
    _call("verify", c.storage.verify, "sd")


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutation=MUTATION)
def test_fuzzed_metadata_is_refused_or_used_safely(world: dict[str, Any],
                                                   mutation: tuple[str, Any]) -> None:
    role, change = mutation
    work = Path(tempfile.mkdtemp(dir=world["top"]))
    engines: list[Any] = []
    try:
        shutil.copytree(world["export"], work / "export", symlinks=True)
        d = Domain(world, work)
        (work / "export" / "victim").mkdir()
        d.victim_file().write_text("do not touch\n")
        (work / "outside").mkdir()
        (work / "outside" / "precious").write_text("nor this\n")
        b = _engine(work, "b")
        engines.append(b)
        b.storage.attach("sd", "localfs", {"path": str(d.export)}, "dc2")
        d.apply(role, change)
        siblings = {p.name: _tree(p) if p.is_dir() else p.read_bytes()
                    for p in d.export.iterdir() if p != d.dom}
        outside = _tree(work / "outside")

        # engine B had the domain when its storage changed
        _call("verify (engine B)", b.storage.verify, "sd")
        _call("refresh (engine B)", b.storage.refresh, "sd")
        _call("show (engine B)", b.storage.info, "sd")
        _call("disk list (engine B)", b.disks.list)
        _repair("repair (engine B)", b, "sd", d.dom)
        _call("verify (engine B)", b.storage.verify, "sd")

        # engine C attaches it as it is now
        c = _engine(work, "c", host=True)
        engines.append(c)
        _exercise(c, d.export, d.dom, list(d.images.values()))

        assert {p.name: _tree(p) if p.is_dir() else p.read_bytes()
                for p in d.export.iterdir() if p != d.dom} == siblings
        assert _tree(work / "outside") == outside
    finally:
        for e in engines:
            e.close()
        shutil.rmtree(work, ignore_errors=True)
