"""An image's ``intent`` is the engine's own journal: the file storage plugin writes
``"intent": null`` into image.json whatever image it is given, drops any other value
when it reads the file (a writer of the export must not steer ``storage repair``),
and ``storage verify`` does not count the store's pending intent as a difference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from virtplane import model
from virtplane_storage_file.filedomain import read_json, write_json


@pytest.fixture
def m(manager_factory: Any, tmp_path: Path) -> Any:
    m = manager_factory()
    m.datacenters.add("dc")
    m.storage.add("sd", "localfs", "dc", {"path": str(tmp_path / "sd")})
    return m


def _meta(tmp_path: Path, image: model.Image) -> Path:
    return tmp_path / "sd" / image.domain_id / "images" / image.id / "image.json"


def test_an_intent_is_never_written_to_image_json(m: Any, tmp_path: Path) -> None:
    image = m.disks.create("d", "sd", 1 << 20)
    assert read_json(_meta(tmp_path, image))["intent"] is None
    dom = m.store.find(model.StorageDomain, "sd")
    pending = attrs.evolve(image, intent=model.Intent(op="remove"))
    m.context.drivers.storage("localfs").write_image_metadata(dom, pending)
    data = read_json(_meta(tmp_path, image))
    assert data["intent"] is None
    assert data["volumes"] == model.unstructure(image)["volumes"]


def test_an_intent_on_the_storage_is_dropped_when_read(m: Any, tmp_path: Path) -> None:
    image = m.disks.create("d", "sd", 1 << 20)
    meta = _meta(tmp_path, image)
    data = read_json(meta)
    data["intent"] = {"op": "remove"}
    write_json(meta, data)
    dom = m.store.find(model.StorageDomain, "sd")
    drv = m.context.drivers.storage("localfs")
    read = drv.read_image(dom, image.id)
    assert read is not None and read["intent"] is None
    assert [i["intent"] for i in drv.read_images(dom)] == [None]
    # verify reads the same file: a planted intent is no difference either
    assert m.storage.verify("sd") == []


def test_verify_does_not_report_a_pending_intent_as_a_chain_difference(
    m: Any, tmp_path: Path
) -> None:
    image = m.disks.create("d", "sd", 1 << 20)
    dom = m.store.find(model.StorageDomain, "sd")
    pending = attrs.evolve(image, intent=model.Intent(op="extend", size_bytes=2 << 20))
    problems = m.context.drivers.storage("localfs").verify(dom, [pending])
    assert not any("disagree" in p for p in problems), problems
    # a real difference is still reported
    other = attrs.evolve(pending, description="changed elsewhere")
    problems = m.context.drivers.storage("localfs").verify(dom, [other])
    assert any(
        f"image {image.id}: the state store and the storage disagree" in p for p in problems
    ), problems
