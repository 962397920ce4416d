"""Checks every plugin gets, whatever its kind."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

if TYPE_CHECKING:
    from virtplane.manager import Manager
    from virtplane.plugins import PluginRecord


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"plugin_settings values must be str, int, float, bool or lists of them; "
                    f"got {type(value).__name__}")


class PluginContract:
    """Base of every contract: set :attr:`plugin` to the entry-point name under test.

    :attr:`plugin_settings` becomes the ``[plugin.<name>]`` table of the test's
    ``virtplane.toml`` (flat values only).
    """

    #: The plugin's entry-point name (what an administrator enables).
    plugin: ClassVar[str] = ""
    #: Plugin kind this contract checks; set by the kind's contract class.
    kind: ClassVar[str] = ""
    #: The ``[plugin.<name>]`` table to write into the test configuration.
    plugin_settings: ClassVar[dict[str, Any]] = {}

    @pytest.fixture
    def manager(self, virtplane_home: Path,
                virtplane_manager: Callable[..., Manager]) -> Manager:
        """A Manager on a private home, with :attr:`plugin_settings` configured."""
        if not self.plugin:
            pytest.fail(f"{type(self).__name__} does not name the plugin under test: set "
                        "the class attribute `plugin` to its entry-point name")
        if self.plugin_settings:
            lines = [f"[plugin.{self.plugin}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in self.plugin_settings.items()]
            (virtplane_home / "virtplane.toml").write_text("\n".join(lines) + "\n")
        return virtplane_manager()

    def record(self, manager: Manager) -> PluginRecord:
        """The plugin's record; fails the test when it is not installed as this kind."""
        rec = manager.plugins.records.get(self.plugin)
        if rec is None:
            found = ", ".join(sorted(n for n, r in manager.plugins.records.items()
                                     if not r.builtin)) or "none"
            pytest.fail(f"no plugin named {self.plugin!r} is installed (entry points found: "
                        f"{found}); is the distribution installed in this environment?")
        if self.kind not in rec.entries:
            pytest.fail(f"plugin {self.plugin!r} has no {self.kind} entry point (it has: "
                        f"{', '.join(rec.kinds)}); check [project.entry-points] in pyproject")
        return rec

    # ------------------------------------------------------------ the tests

    def test_plugin_loads(self, manager: Manager) -> None:
        """The entry point imports and the plugin is not failed or disabled."""
        rec = self.record(manager)
        assert rec.status == "loaded", f"plugin {self.plugin!r} is {rec.status}: {rec.reason}"

    def test_declares_a_plugin_api_range_that_fits(self, manager: Manager) -> None:
        from packaging.specifiers import SpecifierSet

        from virtplane import PLUGIN_API_VERSION

        rec = self.record(manager)
        assert rec.api, f"{self.plugin!r} declares no VIRTPLANE_PLUGIN_API"
        major = int(PLUGIN_API_VERSION.split(".")[0])
        assert rec.adapter is None, (
            f"{self.plugin!r} declares {rec.api}, so this core runs it through the "
            f"{rec.adapter} adapter, which plugin API {major + 1}.0 removes: port it and "
            f"declare '>={major}.0,<{major + 1}' (docs/versioning.md, 'What changed in 2.0')")
        spec = SpecifierSet(rec.api)
        assert spec.contains(PLUGIN_API_VERSION), (
            f"{self.plugin!r} declares {rec.api}, excluding this core's {PLUGIN_API_VERSION}")
        assert not spec.contains(f"{major + 1}.0"), (
            f"{self.plugin!r} declares {rec.api}, which admits plugin API {major + 1}.0: "
            f"bound the range below the next major (e.g. '>=1.0,<{major + 1}') since a "
            "major version may remove what the plugin uses (docs/versioning.md)")

    def test_settings_have_defaults(self, manager: Manager) -> None:
        """With no ``[plugin.<name>]`` table the plugin still gets a settings object."""
        from virtplane import config

        rec = self.record(manager)
        empty = config.Config()
        if rec.settings_ref is None:
            assert rec.load_settings(empty, cache=False) is None
            return
        settings = rec.load_settings(empty, cache=False)
        assert settings is not None, f"{self.plugin!r}: settings class gave None"

    def test_distribution_fits_the_installed_core(self, manager: Manager) -> None:
        from virtplane.plugins import _compat

        rec = self.record(manager)
        assert _compat.requirement_problems(rec.dist) == []
        assert rec.version, f"distribution {rec.dist!r} has no version"
