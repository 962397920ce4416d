"""What the core knows about one plugin: :class:`PluginRecord`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, final

from virtplane.plugins._kinds import SETTINGS_ATTR

if TYPE_CHECKING:
    from virtplane.config import Config

#: Status of a plugin whose entry points imported, fit this core and registered.
LOADED: Final = "loaded"
#: Status of a plugin that could not be used; :attr:`PluginRecord.reason` says why.
FAILED: Final = "failed"
#: Status of a plugin the configuration turned off; :attr:`PluginRecord.reason` says where.
DISABLED: Final = "disabled"

PluginStatus = Literal["loaded", "failed", "disabled"]


@final
@dataclass(eq=False)
class PluginRecord:
    """What is known about one plugin (one entry-point name), loaded or not.

    Records are handed out (``Manager.plugin_records()``, ``plugins list``, the
    kit, :class:`virtplane.plugins.DaemonContext`) but owned by the registry that
    built them: once loading is over, assigning an attribute raises
    ``AttributeError``, so a reader cannot turn a failed plugin into a loaded
    one behind the registry's back.
    """

    name: str
    dist: str
    version: str
    #: kind -> entry-point value (``"module:object"``)
    entries: dict[str, str] = field(default_factory=dict)
    status: PluginStatus = LOADED
    reason: str = ""
    #: the plugin-API range the plugin declares (``VIRTPLANE_PLUGIN_API``)
    api: str | None = None
    #: the hooks its implementations are registered for, sorted
    hooks: list[str] = field(default_factory=list)
    #: kind -> loaded object (driver class, hook module); ``hooks_instance`` for a hook class
    objects: dict[str, Any] = field(default_factory=dict)
    settings: Any = None
    settings_ref: Any = None
    builtin: bool = False
    #: parts of the plugin API it uses that the next major removes (they still work):
    #: deprecated hook arguments, and ``plugin API 1.x: ...`` when it is loaded through
    #: the 1.x adapter
    deprecated: list[str] = field(default_factory=list)
    #: ``"1.x"`` when the plugin declares an older major and runs through that major's
    #: adapter (:mod:`virtplane.plugins._compat`); None when it targets this core's major
    adapter: str | None = None
    _sealed: bool = field(default=False, init=False, repr=False)

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_sealed", False):
            raise AttributeError(
                f"plugin record {self.name!r}: {name} is read-only once plugins are "
                "loaded; the plugin registry owns its records")
        object.__setattr__(self, name, value)

    def _seal(self) -> None:
        """Make the record read-only (the registry calls this when loading is done)."""
        object.__setattr__(self, "_sealed", True)

    def _fail_sealed(self, reason: str) -> None:
        """The registry's own verdict once the record is sealed (a plugin whose
        ``configure_plugin`` raised): failed, with ``reason``, its objects dropped."""
        object.__setattr__(self, "_sealed", False)
        try:
            self.fail(reason)
        finally:
            self._seal()
        self.objects.clear()

    def load_settings(self, cfg: Config, *, cache: bool = True) -> Any:
        """The plugin's validated settings (defaults when it has no config table).

        ``VIRTPLANE_SETTINGS`` may be the attrs class or a ``"module:Class"``
        reference, imported only when settings are needed, so that listing
        plugins does not pay for it. With ``cache=False`` the settings are
        worked out from ``cfg`` afresh and not remembered (the kit uses this to
        check the defaults of a plugin the test configured).
        """
        from virtplane.config import plugin_settings
        from virtplane.errors import PluginError

        if cache and (self.settings is not None or self.settings_ref is None):
            return self.settings
        ref = self.settings_ref
        if ref is None:
            return None
        if isinstance(ref, str):
            import importlib

            module, _, attr = ref.partition(":")
            try:
                ref = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise PluginError(
                    f"plugin {self.name!r}: {SETTINGS_ATTR} = {self.settings_ref!r} "
                    f"cannot be loaded: {exc}"
                ) from None
        settings = plugin_settings(cfg, self.name, ref)
        if cache:
            # a cache fill, not a change of what the record says: allowed after sealing
            object.__setattr__(self, "settings", settings)
        return settings

    @property
    def kinds(self) -> list[str]:
        """The plugin's kinds (``architecture``, ``hooks`` ...), sorted."""
        return sorted(self.entries)

    def fail(self, reason: str) -> None:
        """Mark the plugin failed; a second reason is appended to the first."""
        if self.status != FAILED:
            self.status = FAILED
            self.reason = reason
        else:
            self.reason += "; " + reason

    def as_dict(self) -> dict[str, Any]:
        """The record as plain data (``plugins list --json``, ``plugins show --json``)."""
        return {
            "name": self.name,
            "distribution": self.dist,
            "version": self.version,
            "kinds": self.kinds,
            "entry_points": dict(sorted(self.entries.items())),
            "plugin_api": self.api,
            "hooks": sorted(self.hooks),
            "status": self.status,
            "reason": self.reason,
            "builtin": self.builtin,
            "deprecated": list(self.deprecated),
            "adapter": self.adapter,
        }
