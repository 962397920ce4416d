"""What the set-up, start-up and shut-down hooks get: :class:`DaemonContext`.

In plugin API 1.x ``before_vdsm_start`` and ``after_vdsm_stop`` received the
whole Manager, which made every Manager method (and its private ones) de facto
plugin API. 2.0 hands them this small, read-only object instead, in the spirit
of tox's ``State``: what a start-up hook needs to decide something, and nothing
it could use to change the core behind its back. ``configure_plugin`` (plugin API
2.1) gets the same object, made by the plugin registry when it activates the plugins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, final

if TYPE_CHECKING:
    from virtplane.config import Config
    from virtplane.plugins._record import PluginRecord


class _Registry(Protocol):
    @property
    def records(self) -> Mapping[str, PluginRecord]: ...


class _ManagerLike(Protocol):
    """The two things a context is built from (a Manager, or the services' Context)."""

    @property
    def config(self) -> Config: ...

    @property
    def plugins(self) -> _Registry: ...


@final
@dataclass(frozen=True)
class DaemonContext:
    """The read-only view ``configure_plugin(context)``, ``before_vdsm_start(context)``
    and ``after_vdsm_stop(context)`` get."""

    #: the effective configuration (``virtplane config show`` prints the same)
    config: Config
    #: every known plugin, loaded or not, by name (a read-only mapping of sealed records)
    plugins: Mapping[str, PluginRecord]
    #: the version of the ``virtplane`` distribution
    core_version: str
    #: the plugin API this core offers (``major.minor``)
    plugin_api: str

    @classmethod
    def of(cls, owner: _ManagerLike) -> DaemonContext:
        """The context of a Manager (or anything with ``config`` and ``plugins.records``)."""
        return cls.of_parts(owner.config, owner.plugins.records)

    @classmethod
    def of_parts(cls, config: Config, records: Mapping[str, PluginRecord]) -> DaemonContext:
        """The context of a configuration and the plugin records loaded for it (what the
        plugin registry hands ``configure_plugin``, before any Manager exists)."""
        from virtplane._version import PLUGIN_API_VERSION, __version__

        return cls(config=config, plugins=MappingProxyType(dict(records)),
                   core_version=__version__, plugin_api=PLUGIN_API_VERSION)
