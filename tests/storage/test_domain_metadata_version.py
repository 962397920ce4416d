"""A file domain's ``dom_md/metadata.json`` ``version`` is checked on attach (import).

Was: never read, so a domain written by a newer virtplane (a layout this one may
misread) was attached as if it were version 1, and a missing or malformed version
passed unnoticed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import small_plane
from virtplane import model
from virtplane.errors import VirtplaneError
from virtplane_storage_file.filedomain import read_json, write_json
from virtplane_storage_file.metadata import SUPPORTED_METADATA_VERSIONS


@pytest.fixture
def m(manager_factory: Any, tmp_path: Path) -> Any:
    return small_plane(manager_factory(), tmp_path / "export")


def _md(m: Any, tmp_path: Path) -> Path:
    dom = m.store.find(model.StorageDomain, "sd")
    return tmp_path / "export" / dom.id / "dom_md" / "metadata.json"


def _tamper(path: Path, change: Any) -> None:
    data = read_json(path)
    change(data)
    write_json(path, data)


def _attach_elsewhere(manager_factory: Any, tmp_path: Path) -> Any:
    other = manager_factory(state_path=tmp_path / "other.db")
    other.datacenters.add("dc2")
    other.storage.attach("sd", "localfs", {"path": str(tmp_path / "export")}, "dc2")
    return other


def _refused(manager_factory: Any, tmp_path: Path, pattern: str) -> str:
    other = manager_factory(state_path=tmp_path / "other.db")
    other.datacenters.add("dc2")
    with pytest.raises(VirtplaneError, match=pattern) as caught:
        other.storage.attach("sd", "localfs", {"path": str(tmp_path / "export")}, "dc2")
    text = str(caught.value)
    assert "\n" not in text and "Traceback" not in text
    # nothing of the refused domain is left in the other engine's store
    assert not other.store.list(model.StorageDomain) and not other.store.list(model.Image)
    return text


def test_the_written_version_is_one_this_virtplane_reads(m, tmp_path):
    assert read_json(_md(m, tmp_path))["version"] in SUPPORTED_METADATA_VERSIONS


def test_a_supported_version_attaches(m, manager_factory, tmp_path):
    other = _attach_elsewhere(manager_factory, tmp_path)
    assert [d.name for d in other.store.list(model.StorageDomain)] == ["sd"]


def test_a_newer_version_is_refused_naming_found_and_supported(m, manager_factory,
                                                              tmp_path):
    md = _md(m, tmp_path)
    _tamper(md, lambda d: d.update(version=max(SUPPORTED_METADATA_VERSIONS) + 1))
    text = _refused(manager_factory, tmp_path, rf"{md}: metadata version 2 ")
    assert "newer virtplane" in text
    assert "this virtplane reads version 1" in text


@pytest.mark.parametrize("value, shown", [
    ("1", "'1'"), (1.0, "1.0"), (True, "True"), (None, "NoneType"), ([1], "list"),
])
def test_a_version_that_is_no_integer_is_refused(m, manager_factory, tmp_path, value,
                                                 shown):
    md = _md(m, tmp_path)
    _tamper(md, lambda d: d.update(version=value))
    text = _refused(manager_factory, tmp_path, rf"{md}: version ")
    assert f"version {shown} is not an integer (supported: 1)" in text


def test_a_missing_version_is_refused(m, manager_factory, tmp_path):
    md = _md(m, tmp_path)
    _tamper(md, lambda d: d.pop("version"))
    text = _refused(manager_factory, tmp_path, rf"{md}: version is missing")
    assert "(supported: 1)" in text


def test_an_older_unknown_version_is_refused(m, manager_factory, tmp_path):
    md = _md(m, tmp_path)
    _tamper(md, lambda d: d.update(version=0))
    text = _refused(manager_factory, tmp_path, r"metadata version 0 is not supported")
    assert "newer" not in text
