"""A cluster is never older than its data center: the core's ``Clusters.add`` refuses
one, so the CLI and the Python API get the rule the REST API had alone.

Before: only ``POST /clusters`` refused it (409); ``m.clusters.add(..., compat_version=)``
and ``virtplane cluster add --compat`` stored a 4.5 cluster in a 4.6 data center.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from virtplane.errors import InvalidInput, InvalidState

REFUSAL = ("cluster 'c5' cannot be at compatibility version 4.5: its data center 'd6' is "
           "at 4.6, and a cluster is never older than its data center (whose version is "
           "never lowered); use a version from 4.6 up")


def test_the_service_refuses_a_cluster_older_than_its_data_center(
        manager_factory: Any) -> None:
    m = manager_factory()
    m.datacenters.add("d6", compat_version="4.6")
    with pytest.raises(InvalidState) as caught:
        m.clusters.add("c5", "d6", compat_version="4.5")
    assert str(caught.value) == REFUSAL
    assert m.clusters.list() == []
    # the same version or a newer one is fine
    assert m.clusters.add("c6", "d6", compat_version="4.6").compat_version == "4.6"
    assert m.clusters.add("c8", "d6").compat_version == "4.8"
    # an unknown version is still the architecture's 400, not this refusal
    with pytest.raises(InvalidInput, match="is not one x86_64 knows"):
        m.clusters.add("c1", "d6", compat_version="4.1")


def test_the_cli_refuses_it_too(cli: Any, manager_factory: Any, tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    rc, _out, err = cli("--state", state, "dc", "add", "d6", "--compat", "4.6")
    assert rc == 0, err
    rc, out, err = cli("--state", state, "cluster", "add", "c5", "--dc", "d6",
                       "--compat", "4.5")
    assert (rc, out, err.strip()) == (1, "", f"virtplane: error: {REFUSAL}")
    assert manager_factory(state_path=state).clusters.list() == []
    rc, out, err = cli("--state", state, "cluster", "add", "c7", "--dc", "d6",
                       "--compat", "4.7")
    assert rc == 0 and out.startswith("cluster c7 "), err
