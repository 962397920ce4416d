"""Shared fixtures: isolated XDG folders, throw-away plugin distributions, CLI runner."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: the state backend tests run on: ``sqlite`` (the default) or ``postgresql`` (each
#: test's stores in fresh schemas of the test database; ``make unit-postgresql``).
#: Read at import: the autouse ``xdg`` fixture clears VIRTPLANE_* variables.
STATE_BACKEND = os.environ.get("VIRTPLANE_TEST_STATE_BACKEND", "sqlite")


def need(condition: bool, reason: str) -> None:
    """Skip locally when a real component is missing; fail in CI (never silently skipped)."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every test gets its own XDG folders and no VIRTPLANE_* variables."""
    dirs = {}
    for var, sub in [("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
                     ("XDG_CACHE_HOME", "cache"), ("XDG_CONFIG_DIRS", "sysconfig")]:
        d = tmp_path / "xdg" / sub
        d.mkdir(parents=True)
        monkeypatch.setenv(var, str(d))
        dirs[var] = d
    for var in list(os.environ):
        if var.startswith("VIRTPLANE_"):
            monkeypatch.delenv(var)
    return dirs


class StateBackend:
    """Where a test's stores live: the state file paths it names, as they are
    (SQLite), or each mapped to a fresh PostgreSQL schema (the same path always to
    the same schema, so two Managers and the CLI of one test share a store)."""

    def __init__(self, name: str, tmp: Path) -> None:
        self.name = name
        self.tmp = tmp
        self._urls: dict[str, str] = {}
        self._schemas: Any = None

    @property
    def default(self) -> Path:
        """The file tests mean when they name none (``manager_factory``)."""
        return self.tmp / "state.db"

    def location(self, path: str | os.PathLike[str]) -> str:
        """The store a test naming ``path`` gets."""
        if self.name == "sqlite" or "://" in os.fspath(path):
            return os.fspath(path)
        key = str(Path(path).absolute())
        if key not in self._urls:
            from tests.state.conftest import PgSchemas, postgres_problem

            if self._schemas is None:
                problem = postgres_problem()
                need(problem is None, problem or "")
                self._schemas = PgSchemas()
            url = self._schemas.new()
            self._urls[key] = url
            # what the test reads back as the store's path (``context.paths.state``)
            from virtplane.state import local_anchor

            self._urls[str(local_anchor(url))] = url
        return self._urls[key]

    def close(self) -> None:
        if self._schemas is not None:
            self._schemas.drop_all()


@pytest.fixture(autouse=True)
def state_backend(xdg: dict[str, Path], tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[StateBackend]:
    """The test's state backend (:data:`STATE_BACKEND`). On PostgreSQL the
    configuration's default store (``VIRTPLANE_STATE``: the CLI, Managers built from
    the configuration) is a fresh schema too."""
    backend = StateBackend(STATE_BACKEND, tmp_path)
    if backend.name != "sqlite":
        monkeypatch.setenv("VIRTPLANE_STATE",
                           backend.location(xdg["XDG_DATA_HOME"] / "virtplane" / "state.db"))
    yield backend
    backend.close()


class PluginSite:
    """Writes importable packages plus ``*.dist-info`` metadata into a folder on sys.path."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def add(self, dist: str, modules: dict[str, str], entry_points: dict[str, dict[str, str]],
            version: str = "1.0", requires: tuple[str, ...] = ()) -> None:
        for relpath, code in modules.items():
            path = self.root / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(code))
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
            + "".join(f"Requires-Dist: {r}\n" for r in requires))
        lines = []
        for group, eps in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{k} = {v}" for k, v in eps.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginSite]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield PluginSite(root)
    for name in set(sys.modules) - before:
        mod = sys.modules.get(name)
        if mod is not None and str(getattr(mod, "__file__", "") or "").startswith(str(root)):
            del sys.modules[name]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str],
        state_backend: StateBackend) -> Callable[..., tuple[int, str, str]]:
    """Run the virtplane CLI in-process: ``rc, out, err = cli("plugins", "list")``
    (a ``--state FILE`` is the test's store of that name on its backend)."""
    from virtplane.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        args = tuple(state_backend.location(a) if i and args[i - 1] == "--state" else a
                     for i, a in enumerate(args))
        capsys.readouterr()
        try:
            rc = main(list(args))
        except SystemExit as exc:
            rc = int(exc.code or 0)
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def small_plane(m: Any, storage_path: Path) -> Any:
    """Give manager ``m`` what most tests start from: data center ``dc``, cluster ``cl``,
    host ``h`` on libvirt's test driver and a localfs storage domain ``sd`` at
    ``storage_path``; returns ``m``."""
    m.datacenters.add("dc")
    m.clusters.add("cl", "dc")
    m.hosts.add("h", "cl", "test:///default")
    m.storage.add("sd", "localfs", "dc", {"path": str(storage_path)})
    return m


@pytest.fixture
def manager_factory(state_backend: StateBackend) -> Iterator[Callable[..., Any]]:
    """Build Managers on a per-test state store (a file, or a PostgreSQL schema: see
    :class:`StateBackend`); closes them afterwards."""
    from virtplane import Manager, config

    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        path = kwargs.pop("state_path", state_backend.default)
        m = Manager(config.load(), state_path=state_backend.location(path), **kwargs)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


class Hooks:
    def __init__(self, root: Path) -> None:
        self.root = root

    def add(self, point: str, name: str, body: str, python: bool = True) -> Path:
        folder = self.root / point
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        shebang = f"#!{sys.executable}\n" if python else "#!/bin/sh\n"
        path.write_text(shebang + textwrap.dedent(body))
        path.chmod(0o755)
        return path


@pytest.fixture
def hooks(xdg) -> Hooks:
    return Hooks(xdg["XDG_CONFIG_HOME"] / "virtplane" / "hooks")


@pytest.fixture
def plugin_config(xdg):
    def write(text: str) -> None:
        folder = xdg["XDG_CONFIG_HOME"] / "virtplane"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "virtplane.toml").write_text("[plugin.hook_scripts]\n" + text)
    return write
