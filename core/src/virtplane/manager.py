"""The embedder API: :class:`Manager`, a thin facade over :mod:`virtplane.services`.

One object opens the configuration, loads the plugins, builds the shared
:class:`~virtplane.services.Context` and exposes one service per object kind.
The ``virtplane`` command, the engine and the REST API use the same services.

    >>> from virtplane import Manager, model
    >>> with Manager.open() as m:                                # doctest: +SKIP
    ...     m.datacenters.add("dc1")
    ...     m.clusters.add("c1", "dc1")
    ...     m.hosts.add("h1", "c1", "test:///default")
    ...     m.vms.create(model.VmSpec(name="vm1"), "c1")
    ...     m.vms.start("vm1")

The flat methods of virtplane 0.1 (``m.start_vm(...)``) keep working for one
minor release: each warns with :class:`~virtplane.hookspecs.VirtplaneDeprecationWarning`
and delegates to its service (the table is :data:`DEPRECATED_METHODS`).
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from types import TracebackType
from typing import TYPE_CHECKING, Any

from virtplane import config as _config
from virtplane.hookspecs import VirtplaneDeprecationWarning
from virtplane.plugins import DaemonContext, HookRunner, PluginRecord, PluginRegistry
from virtplane.services.context import Context

if TYPE_CHECKING:
    from virtplane import services
    from virtplane.state import StateStore

_log = logging.getLogger("virtplane")

#: old flat method -> (service attribute, method); removed in the next minor release
DEPRECATED_METHODS: dict[str, tuple[str, str]] = {
    "add_datacenter": ("datacenters", "add"), "add_cluster": ("clusters", "add"),
    "add_host": ("hosts", "add"), "check_host": ("hosts", "check"),
    "setup_host": ("hosts", "setup"), "set_maintenance": ("hosts", "maintenance"),
    "host_capabilities": ("hosts", "capabilities"), "host_stats": ("hosts", "stats"),
    "connection": ("hosts", "connection"),
    "add_storage_domain": ("storage", "add"), "attach_storage_domain": ("storage", "attach"),
    "verify_storage_domain": ("storage", "verify"),
    "repair_storage_domain": ("storage", "repair"),
    "refresh_storage_domain": ("storage", "refresh"),
    "deactivate_storage_domain": ("storage", "deactivate"),
    "activate_storage_domain": ("storage", "activate"),
    "detach_storage_domain": ("storage", "detach"),
    "remove_storage_domain": ("storage", "remove"), "storage_domain_info": ("storage", "info"),
    "sync_image": ("volumes", "sync_image"),
    "create_disk": ("disks", "create"), "import_disk": ("disks", "import_file"),
    "list_disks": ("disks", "list"), "snapshot_disk": ("disks", "snapshot"),
    "merge_disk": ("disks", "merge"), "clone_disk": ("disks", "clone"),
    "extend_disk": ("disks", "extend"), "remove_disk": ("disks", "remove"),
    "upload_iso": ("isos", "upload"), "list_isos": ("isos", "list"),
    "create_template": ("templates", "create"),
    "create_vm_from_template": ("templates", "create_vm"),
    "remove_template": ("templates", "remove"),
    "architectures": ("arch", "list"), "arch_features": ("arch", "features"),
    "os_list": ("arch", "os_list"), "os_info": ("arch", "os_info"),
    "os_name": ("arch", "os_name"), "validate_vm_spec": ("arch", "validate"),
    "create_vm": ("vms", "create"), "get_vm": ("vms", "get"), "list_vms": ("vms", "list"),
    "domain_xml": ("vms", "domain_xml"), "start_vm": ("vms", "start"),
    "destroy_vm": ("vms", "destroy"), "shutdown_vm": ("vms", "shutdown"),
    "pause_vm": ("vms", "pause"), "resume_vm": ("vms", "resume"),
    "reboot_vm": ("vms", "reboot"), "hibernate_vm": ("vms", "hibernate"),
    "restore_vm": ("vms", "restore"), "vm_stats": ("vms", "stats"),
    "all_vm_stats": ("vms", "all_stats"), "remove_vm": ("vms", "remove"),
    "events": ("vms", "events"),
    "snapshot_vm": ("snapshots", "take"), "revert_vm": ("snapshots", "revert"),
    "delete_snapshot": ("snapshots", "delete"), "list_snapshots": ("snapshots", "list"),
    "migrate_vm": ("migrations", "migrate"),
    "hotplug_nic": ("devices", "hotplug_nic"), "hotunplug_nic": ("devices", "hotunplug_nic"),
    "hotplug_disk": ("devices", "hotplug_disk"),
    "hotunplug_disk": ("devices", "hotunplug_disk"),
    "change_cd": ("devices", "change_cd"), "set_ticket": ("devices", "set_ticket"),
    "watch_events": ("monitor", "watch_events"), "refresh_host": ("monitor", "refresh_host"),
    "describe_hooks": ("hook_admin", "describe"), "dry_run_hook": ("hook_admin", "dry_run"),
}


class Manager:
    """virtplane's entry point for embedders: configuration, plugins and the services.

    :param cfg: a loaded :class:`virtplane.config.Config`; by default the
        administrator's configuration is read (see docs/config.md).
    :param state_path: override the state store file.
    """

    def __init__(self, cfg: _config.Config | None = None, *,
                 state_path: str | os.PathLike[str] | None = None) -> None:
        self.config = cfg if cfg is not None else _config.load()
        registry = PluginRegistry(self.config)
        registry.load()
        from virtplane.services._guard import warn_lines

        #: warnings about this installation every user of the Manager should see: a hook
        #: plugin that matters is broken, so VM operations are refused (services/_guard.py);
        #: also logged on ``virtplane`` (without logging set up, Python prints them on
        #: stderr, so every command shows them)
        self.warnings: list[str] = warn_lines(registry)
        for line in self.warnings:
            _log.warning("%s", line)
        from virtplane.state import location_of

        ctx = Context(
            self.config, registry,
            HookRunner(registry.pm, trace=self.config.trace_hooks,
                       event_log=lambda oid, msg, lvl: ctx.event(oid, msg, lvl)),
            state_path if state_path else location_of(self.config), _log)
        #: the state every service shares
        self.context = ctx
        ctx.hooks.fire("before_vdsm_start", on_error=ctx.hook_error_sink(None),
                       context=DaemonContext.of(self.context), manager=self)

    @classmethod
    def open(cls, config_path: str | None = None, **kwargs: Any) -> Manager:
        """Open a manager with the configuration at ``config_path`` (or the default search)."""
        return cls(_config.load(config_path), **kwargs)

    def close(self) -> None:
        """Fire ``after_vdsm_stop``, then close host connections and the store."""
        self.context.hooks.fire("after_vdsm_stop", on_error=self.context.hook_error_sink(None),
                                context=DaemonContext.of(self.context), manager=self)
        self.context.close()

    def __enter__(self) -> Manager:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -------------------------------------------------------------- services
    # Built on first use: ``virtplane plugins list`` must not import what only
    # operations need (the cold-start budget).

    @functools.cached_property
    def arch(self) -> services.Architectures:
        """Architectures, features, OS info and VM spec validation."""
        from virtplane.services import Architectures

        return Architectures(self.context)

    @functools.cached_property
    def datacenters(self) -> services.DataCenters:
        from virtplane.services import DataCenters

        return DataCenters(self.context)

    @functools.cached_property
    def clusters(self) -> services.Clusters:
        from virtplane.services import Clusters

        return Clusters(self.context)

    @functools.cached_property
    def hosts(self) -> services.Hosts:
        from virtplane.services import Hosts

        return Hosts(self.context)

    @functools.cached_property
    def volumes(self) -> services.Volumes:
        """Images and volume chains (the crash-safe volume protocol)."""
        from virtplane.services import Volumes

        return Volumes(self.context)

    @functools.cached_property
    def storage(self) -> services.StorageDomains:
        from virtplane.services import StorageDomains

        return StorageDomains(self.context, self.volumes)

    @functools.cached_property
    def disks(self) -> services.Disks:
        from virtplane.services import Disks

        return Disks(self.context, self.volumes)

    @functools.cached_property
    def isos(self) -> services.Isos:
        from virtplane.services import Isos

        return Isos(self.context, self.volumes)

    @functools.cached_property
    def templates(self) -> services.Templates:
        from virtplane.services import Templates

        return Templates(self.context, self.volumes, self.arch)

    @functools.cached_property
    def vms(self) -> services.Vms:
        from virtplane.services import Vms

        return Vms(self.context, self.arch, self.volumes, self.isos)

    @functools.cached_property
    def devices(self) -> services.Devices:
        from virtplane.services import Devices

        return Devices(self.context, self.vms, self.arch, self.volumes, self.isos)

    @functools.cached_property
    def migrations(self) -> services.Migrations:
        from virtplane.services import Migrations

        return Migrations(self.context, self.vms, self.arch)

    @functools.cached_property
    def snapshots(self) -> services.Snapshots:
        from virtplane.services import Snapshots

        return Snapshots(self.context, self.vms, self.volumes, self.arch)

    @functools.cached_property
    def hook_admin(self) -> services.HookAdmin:
        from virtplane.services import HookAdmin

        return HookAdmin(self.context, self.vms)

    @functools.cached_property
    def monitor(self) -> services.Monitor:
        from virtplane.services import Monitor

        return Monitor(self.context, self.vms)

    # ---------------------------------------------------------- plumbing, public

    @property
    def plugins(self) -> PluginRegistry:
        """The plugin registry (its ``records`` are the public :class:`PluginRecord` s)."""
        return self.context.plugins

    @property
    def hooks(self) -> HookRunner:
        """The hook runner."""
        return self.context.hooks

    @property
    def store(self) -> StateStore:
        """The state store, below every invariant the services keep: read from it, write
        through the services."""
        return self.context.store

    def plugin_records(self) -> list[PluginRecord]:
        """Every known plugin (loaded, failed or disabled), sorted by name."""
        return sorted(self.context.plugins.records.values(), key=lambda r: r.name)

    def plugin(self, name: str) -> PluginRecord:
        """The record of one plugin (loaded, failed or disabled) by its entry-point name.

        :raises NotFound: no plugin has that name; the message lists the installed ones.
        """
        rec = self.context.plugins.records.get(name)
        if rec is None:
            from virtplane.errors import NotFound

            known = ", ".join(sorted(self.context.plugins.records)) or "none"
            raise NotFound(f"no plugin named {name!r} (installed: {known})")
        return rec

    def loaded(self, kind: str) -> list[str]:
        """Names of loaded plugins of a kind (``architecture``, ``storage`` ...)."""
        return self.context.loaded(kind)

    # -------------------------------------------------- 0.1 names, deprecated

    @property
    def osinfo(self) -> Any:
        """Deprecated: ``m.arch.osinfo``."""
        _deprecated("osinfo", "arch.osinfo")
        return self.arch.osinfo

    def driver(self, kind: str, name: str) -> Any:
        """Deprecated: ``m.context.drivers.architecture(name)`` (or ``storage``, ``hypervisor``)."""
        _deprecated("driver", f"context.drivers.{kind}")
        return getattr(self.context.drivers, kind)(name)

    def __getattr__(self, name: str) -> Any:
        target = DEPRECATED_METHODS.get(name)
        if target is None:
            raise AttributeError(f"'Manager' object has no attribute {name!r}")
        service, method = target
        _deprecated(name, f"{service}.{method}")
        return getattr(getattr(self, service), method)


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"Manager.{old} is deprecated; use Manager.{new} (removed in the next "
                  "minor release)", VirtplaneDeprecationWarning, stacklevel=3)
