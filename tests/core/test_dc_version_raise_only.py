"""A data center's compatibility version can only be raised, as in oVirt.

Before: ``DataCenters.check_new_version`` (what the REST API's ``PUT /datacenters``
calls) let a data center move to any older supported version. Now lowering is an
InvalidState naming both versions and the versions allowed; raising keeps its rules
(a supported version, never newer than the oldest cluster). REST: in
tests/api/test_dc_version_raise_only.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import small_plane
from virtplane.errors import InvalidInput, InvalidState


@pytest.fixture
def m(manager_factory: Any, tmp_path: Path) -> Any:
    return small_plane(manager_factory(), tmp_path / "sd")


def test_lowering_a_data_center_is_refused(m: Any) -> None:
    dc = m.datacenters.add("d6", compat_version="4.6")
    for lower in ("4.5", "4.2"):
        with pytest.raises(InvalidState) as caught:
            m.datacenters.check_new_version(dc, lower)
        assert str(caught.value) == (
            f"data center 'd6' cannot move to compatibility version {lower}: it is at 4.6, "
            "and a data center's version can only be raised, never lowered; "
            "allowed: 4.6, 4.7, 4.8")
    assert m.datacenters.get("d6").compat_version == "4.6"


def test_the_allowed_versions_stop_at_the_oldest_cluster(m: Any) -> None:
    dc = m.datacenters.add("d5", compat_version="4.5")
    m.clusters.add("c6", "d5", compat_version="4.6")
    with pytest.raises(InvalidState, match=r"never lowered; allowed: 4\.5, 4\.6$"):
        m.datacenters.check_new_version(dc, "4.4")


def test_raising_and_staying_are_still_allowed(m: Any) -> None:
    dc = m.datacenters.add("d5", compat_version="4.5")
    for version in ("4.5", "4.6", "4.8"):
        m.datacenters.check_new_version(dc, version)
    m.clusters.add("c7", "d5", compat_version="4.7")
    with pytest.raises(InvalidState, match="newer than its clusters"):
        m.datacenters.check_new_version(dc, "4.8")
    with pytest.raises(InvalidInput, match=r"'3\.6' is not supported; supported: 4\.2"):
        m.datacenters.check_new_version(dc, "3.6")  # unknown: named as such, not "lower"


def test_a_cluster_refusal_no_longer_advises_lowering_the_data_center(m: Any) -> None:
    dc = m.datacenters.add("d6", compat_version="4.6")
    with pytest.raises(InvalidState) as caught:
        m.datacenters.check_cluster_version(dc, "c5", "4.5")
    assert "lower the data center" not in str(caught.value)
    assert str(caught.value).endswith("use a version from 4.6 up")
