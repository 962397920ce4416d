"""State locations: which backend a path or URL selects, validation of ``[state] url``,
clear errors for a missing backend, and no password in any message."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from virtplane import model
from virtplane.errors import ConfigError, StateError
from virtplane.state import StateStore, location_of, redact, scheme_of, validate
from virtplane.state import _location as location_mod


@pytest.mark.parametrize(("location", "scheme"), [
    ("/var/lib/virtplane/state.db", "sqlite"),
    ("relative/state.db", "sqlite"),
    (Path("/x/state.db"), "sqlite"),
    ("sqlite:////x/state.db", "sqlite"),
    ("postgresql://u@h/db", "postgresql"),
    ("PostgreSQL+psycopg://u@h/db", "postgresql"),
    ("postgres://u@h/db", "postgres"),
])
def test_scheme_of(location, scheme):
    assert scheme_of(location) == scheme


def test_redact_hides_only_the_password():
    assert redact("postgresql://vp:s3cret@db:5432/vp?sslmode=require") == (
        "postgresql://vp:***@db:5432/vp?sslmode=require")
    assert redact("postgresql://vp@db/vp") == "postgresql://vp@db/vp"
    assert redact("/path/with:colon@at") == "/path/with:colon@at"


def test_an_sqlite_url_opens_the_file(tmp_path):
    s = StateStore(f"sqlite://{tmp_path}/s.db")  # sqlite:///tmp/...
    s.add(model.DataCenter(name="dc1"))
    assert s.backend == "sqlite" and s.path == tmp_path / "s.db"
    assert StateStore(tmp_path / "s.db").find(model.DataCenter, "dc1").name == "dc1"
    assert StateStore(f"sqlite:///{tmp_path}/s.db").path == tmp_path / "s.db"  # SQLAlchemy's
    with pytest.raises(StateError, match=r"state URL 'sqlite://host/x.db' is not valid: use "
                                         r"sqlite:///absolute/path"):
        StateStore("sqlite://host/x.db")


def test_a_url_folded_by_a_path_is_refused_not_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StateError, match=r"state location 'postgresql:/\.\.\.' is a "
                                         r"postgresql:// URL whose '//' was folded"):
        StateStore(Path("postgresql://vp:secret@db/vp"))
    assert not (tmp_path / "postgresql:").exists()


def test_an_unknown_scheme_names_the_known_ones(monkeypatch):
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [])
    with pytest.raises(StateError, match=r"no state backend for mysql:// URLs "
                                         r"\(mysql://u:\*\*\*@h/db\): known schemes: sqlite"):
        StateStore("mysql://u:pw@h/db")
    with pytest.raises(StateError, match=r"no state backend for postgresql:// URLs .*: install "
                                         "virtplane-state-postgresql"):
        StateStore("postgresql://u@h/db")


def test_a_backend_that_does_not_load_is_a_clear_error(monkeypatch):
    class Broken:
        name = "postgresql"
        value = "nowhere:Store"

        def load(self):
            raise ImportError("No module named 'nowhere'")

    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [Broken()])
    with pytest.raises(StateError, match=r"state backend 'postgresql' \(virtplane.state entry "
                                         r"point nowhere:Store\) failed to load: ImportError"):
        location_mod.backend_class("postgresql://u@h/db")


@pytest.mark.parametrize("value", ["/var/lib/vp/state.db", "sqlite:////var/lib/vp/s.db",
                                   "postgresql://vp@127.0.0.1:5432/vp",
                                   "postgresql:///vp?host=/run/postgresql"])
def test_valid_urls(value):
    assert validate(value, "f.toml") == value


@pytest.mark.parametrize(("value", "message"), [
    ("", "state.url = '' is not allowed; it must be a path, sqlite:///path"),
    (5, "state.url = 5 is not allowed"),
    ("sqlite:///relative/../x", None),
    ("sqlite://host/x.db", "is not valid: use sqlite:///absolute/path"),
    ("postgresql://", "names no server and no database"),
    ("postgresql://vp:pw@h:port/vp", "has an invalid port"),
    ("http:/x", "is not a URL virtplane reads"),
    ("/x\n", "contains a control character"),
])
def test_invalid_urls_name_the_source_and_what_is_allowed(value, message):
    if message is None:
        assert validate(value, "f.toml") == value
        return
    with pytest.raises(ConfigError) as info:
        validate(value, "/etc/xdg/virtplane/virtplane.toml")
    assert str(info.value).startswith("/etc/xdg/virtplane/virtplane.toml: ")
    assert message in str(info.value) and "pw" not in str(info.value)


def test_location_of_a_config_prefers_the_url_and_keeps_it_a_string():
    cfg = SimpleNamespace(values={"state": {"path": "/a/state.db"}})
    assert location_of(cfg) == "/a/state.db"
    cfg.values["state"]["url"] = "postgresql://vp@db/vp"
    assert location_of(cfg) == "postgresql://vp@db/vp"
    cfg = SimpleNamespace(values={"state": {"path": "postgresql://vp@db/vp"}})  # VIRTPLANE_STATE
    assert location_of(cfg) == "postgresql://vp@db/vp"
