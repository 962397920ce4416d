"""Exceptions raised by the virtplane core.

Every error a user can cause derives from :class:`VirtplaneError`; the CLI
prints its message (no traceback unless ``--debug``) and exits non-zero.
"""

from __future__ import annotations


class VirtplaneError(Exception):
    """Base class of all virtplane errors."""

    exit_code = 1


class ConfigError(VirtplaneError):
    """A configuration file or setting is invalid.

    The message names the file, the key and what is allowed.
    """

    exit_code = 2


class PluginError(VirtplaneError):
    """A plugin could not be loaded or is not usable."""


class NotFound(VirtplaneError):
    """An object (VM, host, cluster ...) does not exist."""


class AlreadyExists(VirtplaneError):
    """An object with that name already exists."""


class InvalidInput(VirtplaneError):
    """Input violates a rule; the message names the rule and what is allowed."""


class InvalidState(VirtplaneError):
    """The operation is not allowed in the object's current state."""


class NoSpace(VirtplaneError):
    """A storage domain has too little free space for the operation (the message says
    how much was needed and how much is free)."""


class StorageUnavailable(VirtplaneError):
    """A storage domain cannot be reached (unmounted, export gone, server down)."""


class HookError(VirtplaneError):
    """A hook (in-process implementation or script) failed or vetoed an operation."""

    def __init__(self, hook: str, plugin: str, reason: str) -> None:
        super().__init__(f"hook {hook} of plugin {plugin!r} failed: {reason}")
        self.hook = hook
        self.plugin = plugin
        self.reason = reason


class HookVeto(Exception):
    """Raised by a hook implementation to refuse an operation with a reason.

    The core turns it into a :class:`HookError` that names the hook and the plugin.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HypervisorError(VirtplaneError):
    """The hypervisor refused or failed an operation."""


class HostUnreachable(HypervisorError):
    """The host could not be contacted."""


class StateError(VirtplaneError):
    """The state store is unreadable or inconsistent."""


class Conflict(StateError):
    """An object changed in the state store between the time it was read and its update.

    Several writers (the CLI, an engine, a REST API, a libvirt event thread) share one
    store; each update names the version it was read at, and the store refuses it when
    another writer got there first, instead of silently losing that writer's change.
    The cure is always the same: read the object again and redo the change
    (``StateStore.modify`` does that). Exit code 75 is sysexits' EX_TEMPFAIL: running
    the command again is expected to work.
    """

    exit_code = 75

    def __init__(self, kind: str, name: str, read_revision: int, current_revision: int,
                 *, attempts: int = 1) -> None:
        if read_revision == 0:
            what = (f"the {kind} {name!r} was not read from the state store (it has no "
                    f"revision), so an update could overwrite another writer's change")
        else:
            what = (f"the {kind} {name!r} was changed by another writer since it was read "
                    f"(read at revision {read_revision}, now {current_revision})")
        tried = f"; gave up after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{what}{tried}: re-read it and retry the change "
                         "(from the command line: run the command again)")
        self.kind = kind
        self.name = name
        self.read_revision = read_revision
        self.current_revision = current_revision


class StateUnavailable(StateError):
    """The state store's server cannot be reached (down, restarting, network cut).

    Raised quickly (the connection attempt is bounded) instead of hanging, so that an
    engine can stop acting and keep reporting while the database is away; nothing was
    written by the failed call. Exit code 75 (EX_TEMPFAIL): retry once it is back.
    """

    exit_code = 75


class LeaseHeld(StateError):
    """Another holder has a lease that is still valid (see ``StateStore.acquire_lease``)."""

    exit_code = 75

    def __init__(self, resource: str, holder: str, remaining: float) -> None:
        super().__init__(f"lease {resource!r} is held by {holder!r} for another "
                         f"{max(remaining, 0.0):.1f} s")
        self.resource = resource
        self.holder = holder
        self.remaining = remaining


class LeaseLost(StateError):
    """A write carried a lease epoch that is no longer current (a fencing token check).

    The lease expired, was released, or was taken over by another holder since the
    caller acquired it: whatever the caller believed about the resource may be stale,
    so its write is refused and nothing of the transaction lands. The caller must stop
    acting on the resource and acquire the lease again.
    """

    def __init__(self, resource: str, epoch: int, why: str) -> None:
        super().__init__(f"lease {resource!r} at epoch {epoch} is no longer held: {why}; "
                         "the write was refused (acquire the lease again before acting)")
        self.resource = resource
        self.epoch = epoch
        self.why = why
