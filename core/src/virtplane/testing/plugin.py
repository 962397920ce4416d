"""pytest plugin of the kit (entry point ``pytest11: virtplane``): fixtures.

* ``virtplane_home`` — a private XDG home (config, data, cache) for the test,
  with every ``VIRTPLANE_*`` variable removed; returns the config folder
  (``$XDG_CONFIG_HOME/virtplane``).
* ``virtplane_manager`` — a factory of :class:`virtplane.Manager` objects on a
  per-test SQLite state file; each is closed at teardown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from virtplane.manager import Manager


@pytest.fixture
def virtplane_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private XDG home; returns the folder where ``virtplane.toml`` is read."""
    for var, sub in [("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
                     ("XDG_CACHE_HOME", "cache"), ("XDG_CONFIG_DIRS", "sysconfig")]:
        folder = tmp_path / "virtplane-home" / sub
        folder.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(folder))
    for var in list(os.environ):
        if var.startswith("VIRTPLANE_"):
            monkeypatch.delenv(var)
    conf = tmp_path / "virtplane-home" / "config" / "virtplane"
    conf.mkdir(exist_ok=True)
    return conf


@pytest.fixture
def virtplane_manager(virtplane_home: Path, tmp_path: Path) -> Iterator[Callable[..., Manager]]:
    """``virtplane_manager(**kwargs)`` opens a Manager on ``tmp_path/state.db``."""
    from virtplane import config
    from virtplane.manager import Manager

    made: list[Manager] = []

    def make(**kwargs: Any) -> Manager:
        kwargs.setdefault("state_path", tmp_path / "state.db")
        m = Manager(config.load(), **kwargs)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()
