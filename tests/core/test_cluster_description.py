"""A cluster's description is in the core model (``model.Cluster.description``), set by
``Clusters.add``/``update`` and ``virtplane cluster add/set --description``.

Before: clusters had no description in the model; only the REST API kept one, as its
own annotation, so the command line and the services could neither set nor show it.
The REST side: tests/api/test_cluster_description.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from virtplane import model
from virtplane.errors import InvalidInput


def test_add_and_update_keep_the_description(manager_factory: Any) -> None:
    m = manager_factory()
    m.datacenters.add("d")
    cl = m.clusters.add("c", "d", description="racks 1-4\n\tsecond floor")
    assert m.clusters.get("c").description == "racks 1-4\n\tsecond floor"
    assert m.clusters.update("c", description="moved").description == "moved"
    assert m.clusters.get(cl.id).description == "moved"
    # None leaves it, another field alone keeps it, "" clears it
    assert m.clusters.update("c", fencing_enabled=False).description == "moved"
    assert m.clusters.update("c", description="").description == ""
    assert m.clusters.add("plain", "d").description == ""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x" * (model.MAX_DESCRIPTION + 1), f"is {model.MAX_DESCRIPTION + 1} characters long"),
        ("bell\a", "contains a control character U+0007"),
        ("esc\x1b[2J", "contains a control character U+001B"),
        ("c1\x9b", "contains a control character U+009B"),
    ],
)
def test_a_bad_description_is_refused_and_nothing_changes(
    manager_factory: Any, text: str, problem: str
) -> None:
    m = manager_factory()
    m.datacenters.add("d")
    m.clusters.add("c", "d", description="kept")
    allowed = "at most 4000 characters, without control characters other than tab and newline"
    with pytest.raises(InvalidInput) as caught:
        m.clusters.update("c", description=text, new_name="renamed")
    assert f"cluster description {problem}" in str(caught.value)
    assert allowed in str(caught.value)
    after = m.clusters.get("c")
    assert (after.name, after.description) == ("c", "kept")
    with pytest.raises(InvalidInput, match=re.escape(problem)):
        m.clusters.add("c2", "d", description=text)
    assert [c.name for c in m.clusters.list()] == ["c"]


def test_data_center_descriptions_follow_the_same_rule(manager_factory: Any) -> None:
    m = manager_factory()
    with pytest.raises(InvalidInput, match="data center description contains a control"):
        m.datacenters.add("d", description="a\x00b")
    m.datacenters.add("d", description="fine")
    with pytest.raises(InvalidInput, match="data center description is 4001 characters"):
        m.datacenters.update("d", description="y" * 4001)
    assert m.datacenters.get("d").description == "fine"


def test_a_row_written_before_descriptions_reads_as_empty(manager_factory: Any) -> None:
    m = manager_factory()
    m.datacenters.add("d")
    cl = m.clusters.add("c", "d", description="new")
    data = model.unstructure(cl)
    data.pop("description")
    data.pop("revision", None)
    m.store._rows(
        "UPDATE objects SET data=:d WHERE id=:id RETURNING id",
        {"d": json.dumps(data), "id": cl.id},
    )
    assert m.clusters.get("c").description == ""


def test_cluster_add_and_set_description_on_the_command_line(
    cli: Any, manager_factory: Any, tmp_path: Path
) -> None:
    state = str(tmp_path / "s.db")
    rc, _out, err = cli("--state", state, "dc", "add", "d")
    assert rc == 0, err
    rc, _out, err = cli(
        "--state", state, "cluster", "add", "c", "--dc", "d", "--description", "first"
    )
    assert rc == 0, err
    rc, out, err = cli("--state", state, "cluster", "list", "--json")
    assert rc == 0, err
    assert [c["description"] for c in json.loads(out)] == ["first"]
    rc, _out, err = cli("--state", state, "cluster", "set", "c", "--description", "second")
    assert rc == 0, err
    assert manager_factory(state_path=state).clusters.get("c").description == "second"
    rc, out, err = cli("--state", state, "cluster", "set", "c", "--description", "x\x1by")
    assert rc == 1 and out == "" and "Traceback" not in err
    assert err.startswith("virtplane: error: cluster description contains a control character")
    rc, _out, err = cli("--state", state, "cluster", "set", "c", "--description", "")
    assert rc == 0, err
    assert manager_factory(state_path=state).clusters.get("c").description == ""


def test_cluster_set_help_names_description(cli: Any) -> None:
    for command in ("add", "set"):
        rc, out, _err = cli("cluster", command, "--help")
        assert rc == 0 and "--description" in out
