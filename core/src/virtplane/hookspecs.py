"""Hook specifications: every hook a plugin may implement, documented here.

Implement a hook with :data:`virtplane.hookimpl` in a module (or object) that
your distribution registers under the ``virtplane.hooks`` entry-point group::

    from virtplane import hookimpl

    VIRTPLANE_PLUGIN_API = ">=2.0,<3"

    @hookimpl
    def before_vm_start(vm, domxml):
        domxml.xml = domxml.xml.replace("<vcpu>", "<vcpu cpuset='0'>")

Conventions, shared by all hooks below:

* Hooks are called with keyword arguments only. An implementation may accept
  *fewer* arguments than the spec names (pluggy's opt-in arguments), never an
  argument the spec does not have: such a plugin is marked failed.
* **Lifecycle hook points** carry VDSM's names and meaning
  (``before_vm_start`` ...). ``before_*`` points run before the operation,
  ``after_*`` points after it succeeded, ``after_*_fail`` after it failed.
* Each spec declares what a failing implementation does (:class:`Policy`):
  ``FAIL`` stops there and fails the operation with the plugin's name (raise
  :class:`virtplane.HookVeto` to veto; any other exception counts too; for
  ``configure_plugin`` the operation is that plugin's activation, so the plugin
  is marked failed and the core goes on);
  ``LOG`` records the failure in the event log of the VM (or host) and never
  undoes the operation (VDSM's ``raiseError=False``: every ``after_*`` point
  but ``after_disk_prepare``, ``before_vm_destroy``, ``before_vm_set_ticket``,
  ``before_vdsm_start``, the ``extend_*`` hooks);
  ``COLLECT`` (validators) gathers every plugin's messages.
* A spec marked *reserved* can be implemented, but nothing in the core fires
  it yet (host network setup, the host device list).
* XML payloads are :class:`virtplane.payloads.XmlPayload`: domain XML for VM
  hooks, the device's XML for device and hotplug hooks. JSON payloads are
  :class:`virtplane.payloads.JsonPayload`. Edits are seen by the next
  implementation and by the hook scripts (see docs/hooks.md for the order).
* ``vm`` is the :class:`virtplane.model.Vm` being operated on; its
  ``spec.custom_properties`` are what VDSM passes to scripts as environment
  variables.

Every hook below has an entry in ``docs/hooks.md`` and a test that calls it
(``tests/core/test_hookspecs.py`` enforces both). A spec's docstring may end
with an ``Example::`` section, which the docs show as code.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FunctionType, MappingProxyType
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

import pluggy

if TYPE_CHECKING:
    from virtplane.model import Cluster, Host, StorageDomain, Vm, VmSpec
    from virtplane.payloads import JsonPayload, XmlPayload
    from virtplane.plugins._context import DaemonContext


# --------------------------------------------------------------------------
# How a spec is declared
# --------------------------------------------------------------------------


@final
class Policy(enum.Enum):
    """What a failing implementation does to the operation its hook belongs to.

    Each spec declares it (``@hookspec(policy=Policy.FAIL)``), as pytest declares
    ``firstresult`` at the spec: the rule is read where the hook is documented,
    and :class:`virtplane.plugins.HookRunner` and the hook-scripts plugin take it
    from there instead of guessing from the hook's name.
    """

    #: The first failure stops the remaining implementations and fails the
    #: operation with :class:`~virtplane.errors.HookError` (VDSM's ``raiseError=True``).
    FAIL = "fail"
    #: A failure goes to the event log of the object the hook is about; the next
    #: implementation runs and the operation stands (VDSM's ``raiseError=False``).
    LOG = "log"
    #: A validator: every implementation runs and returns messages; any message,
    #: or a crash (reported as one), refuses what is validated.
    COLLECT = "collect"

    @property
    def fails_operation(self) -> bool:
        """Whether a raising implementation fails the operation (only FAIL does)."""
        return self is Policy.FAIL

    @property
    def description(self) -> str:
        """What a failure does, in the words the docs use."""
        return _POLICY_WORDS[self]


_POLICY_WORDS: Final = {
    Policy.FAIL: "fails the operation",
    Policy.LOG: "is logged; the operation stands",
    Policy.COLLECT: "is a violation: what is validated is refused",
}

#: Attribute on each spec function holding its :class:`SpecOptions`.
OPTIONS_ATTR: Final = "virtplane_hook"


@final
@dataclass(frozen=True)
class SpecOptions:
    """What a spec declares beyond its signature."""

    policy: Policy
    #: declared for plugins to implement, but nothing in the core fires it yet
    reserved: bool = False


_F = TypeVar("_F", bound=Callable[..., Any])
_pluggy_hookspec = pluggy.HookspecMarker("virtplane")


def hookspec(function: object = None, /, *, policy: Policy | None = None,
             reserved: bool = False) -> Callable[[_F], _F]:
    """Declare a hook spec with its failure policy: ``@hookspec(policy=Policy.LOG)``.

    The result is a real pluggy spec (``virtplane_spec`` is set as pluggy's own
    marker sets it), plus :class:`SpecOptions` under :data:`OPTIONS_ATTR`.
    A spec without a policy is refused when this module is imported, so a new
    hook cannot ship with its failure rule left to a naming convention.

    :param policy: what a failing implementation does (:class:`Policy`).
    :param reserved: True for a hook plugins may implement but the core does not
        fire yet; the docs mark it "reserved: not fired yet".
    """
    if function is not None or not isinstance(policy, Policy):
        name = getattr(function, "__name__", "a hook spec")
        raise TypeError(f"{name}: declare the failure policy, e.g. "
                        "@hookspec(policy=Policy.FAIL); allowed policies: "
                        + ", ".join(p.name for p in Policy))
    options = SpecOptions(policy, reserved)

    def mark(spec: _F) -> _F:
        marked: _F = _pluggy_hookspec(spec)
        setattr(marked, OPTIONS_ATTR, options)
        return marked

    return mark


def specs() -> Mapping[str, Callable[..., Any]]:
    """Every hook spec of this module, name -> function, in declaration order."""
    return _SPECS


def options_of(name: str) -> SpecOptions:
    """The options the spec ``name`` declares; ``KeyError`` names the known hooks' count."""
    spec = _SPECS.get(name)
    if spec is None:
        raise KeyError(f"no hook spec named {name!r} (plugin API has {len(_SPECS)} hooks; "
                       "see docs/hooks.md)")
    options: SpecOptions = getattr(spec, OPTIONS_ATTR)
    return options


def policy_of(name: str) -> Policy:
    """The failure policy the spec ``name`` declares."""
    return options_of(name).policy


def example_of(name: str) -> str | None:
    """The code of the spec's ``Example::`` section, dedented; None when it has none."""
    import inspect
    import textwrap

    doc = inspect.getdoc(_SPECS[name]) or ""
    head, marker, body = doc.partition("\nExample::\n")
    if not marker:
        return None
    lines = []
    for line in body.splitlines():
        if line and not line.startswith(" "):
            break  # the next unindented paragraph ends the example
        lines.append(line)
    return textwrap.dedent("\n".join(lines)).strip("\n") or None


# --------------------------------------------------------------------------
# VM lifecycle (VDSM hook points)
# --------------------------------------------------------------------------


@hookspec(policy=Policy.FAIL)
def before_vm_start(vm: Vm, domxml: XmlPayload) -> None:
    """Called before a VM is started, with the domain XML libvirt will get.

    :param vm: the VM being started.
    :param domxml: the domain XML; change ``domxml.xml`` (and
        ``domxml.launch_flags``) to change what is started.

    Raising fails the start: the VM stays Down, nothing is left defined on the
    host, and the error names this hook and the plugin.

    Example::

        @hookimpl
        def before_vm_start(vm, domxml):
            if vm.spec.custom_properties.get("hugepages") == "1":
                domxml.xml = domxml.xml.replace(
                    "</domain>", "<memoryBacking><hugepages/></memoryBacking></domain>")
    """


@hookspec(policy=Policy.LOG)
def after_vm_start(vm: Vm, domxml: XmlPayload) -> None:
    """Called after a VM started, with the XML that was actually started.

    :param vm: the VM, now Powering up or Up.
    :param domxml: the live domain XML (changes are ignored).
    """


@hookspec(policy=Policy.FAIL)
def before_vm_cont(vm: Vm, domxml: XmlPayload) -> None:
    """Called before a paused VM is continued (resumed).

    :param vm: the paused VM.
    :param domxml: the current domain XML (informational).

    Raising fails the operation; the VM stays Paused.
    """


@hookspec(policy=Policy.LOG)
def after_vm_cont(vm: Vm, domxml: XmlPayload) -> None:
    """Called after a VM was continued.

    :param vm: the VM, now Up.
    :param domxml: the current domain XML.
    """


@hookspec(policy=Policy.FAIL)
def before_vm_pause(vm: Vm, domxml: XmlPayload) -> None:
    """Called before a running VM is paused.

    :param vm: the running VM.
    :param domxml: the current domain XML.

    Raising fails the operation; the VM keeps running.
    """


@hookspec(policy=Policy.LOG)
def after_vm_pause(vm: Vm, domxml: XmlPayload) -> None:
    """Called after a VM was paused.

    :param vm: the VM, now Paused.
    :param domxml: the current domain XML.
    """


@hookspec(policy=Policy.FAIL)
def before_vm_hibernate(vm: Vm, domxml: XmlPayload) -> None:
    """Called before a VM's memory is saved to storage (hibernate/suspend).

    :param vm: the running VM.
    :param domxml: the current domain XML.

    Raising fails the operation; the VM keeps running.
    """


@hookspec(policy=Policy.LOG)
def after_vm_hibernate(vm: Vm, domxml: XmlPayload) -> None:
    """Called after a VM was hibernated (its memory saved, its process gone).

    :param vm: the VM, now Down with a saved state.
    :param domxml: the domain XML that was saved.
    """


@hookspec(policy=Policy.FAIL)
def before_vm_dehibernate(vm: Vm, domxml: XmlPayload, from_snapshot: bool) -> None:
    """Called before a hibernated VM is restored (or a memory snapshot reverted).

    :param vm: the VM being restored.
    :param domxml: the domain XML the VM is restored with; may be changed.
    :param from_snapshot: True when restoring a snapshot with memory
        (VDSM's ``FROM_SNAPSHOT``), False for a plain dehibernate.

    Raising fails the restore; the saved state is kept.
    """


@hookspec(policy=Policy.LOG)
def after_vm_dehibernate(vm: Vm, domxml: XmlPayload, from_snapshot: bool) -> None:
    """Called after a VM was restored from a saved state.

    :param vm: the VM, now Up.
    :param domxml: the live domain XML.
    :param from_snapshot: as for ``before_vm_dehibernate``.
    """


@hookspec(policy=Policy.FAIL)
def before_vm_migrate_source(vm: Vm, domxml: XmlPayload, destination: str) -> None:
    """Called on the source before a VM is migrated away.

    :param vm: the VM to migrate.
    :param domxml: the domain XML that will be sent to the destination; may be
        changed.
    :param destination: the destination host's URI.

    Raising refuses the migration; the VM keeps running on the source.

    Example::

        @hookimpl
        def before_vm_migrate_source(vm, destination):
            if vm.spec.custom_properties.get("pinned") == "1":
                raise HookVeto(f"{vm.spec.name} is pinned to its host")
    """


@hookspec(policy=Policy.LOG)
def after_vm_migrate_source(vm: Vm, domxml: XmlPayload, destination: str) -> None:
    """Called on the source after a VM migrated away successfully.

    :param vm: the VM (its host is now the destination).
    :param domxml: the XML that was migrated.
    :param destination: the destination host's URI.
    """


@hookspec(policy=Policy.FAIL)
def before_vm_migrate_destination(vm: Vm, domxml: XmlPayload, source: str) -> None:
    """Called for the destination before an incoming migration is accepted.

    :param vm: the VM being migrated in.
    :param domxml: the source host's domain XML; may be changed.
    :param source: the source host's URI.

    Raising refuses the migration ("Destination hook failed").
    """


@hookspec(policy=Policy.LOG)
def after_vm_migrate_destination(vm: Vm, domxml: XmlPayload, source: str) -> None:
    """Called for the destination after a VM arrived.

    :param vm: the VM, now running on the destination.
    :param domxml: the live domain XML on the destination.
    :param source: the source host's URI.
    """


@hookspec(policy=Policy.LOG)
def before_vm_destroy(vm: Vm) -> None:
    """Called before a VM is destroyed (powered off hard or after shutdown).

    :param vm: the VM. VDSM passes no XML here, nor does virtplane.

    Failures are logged only: a destroy is never refused by a hook.
    """


@hookspec(policy=Policy.LOG)
def after_vm_destroy(vm: Vm, reason: str) -> None:
    """Called after a VM went Down: destroyed, shut down, or crashed on its own.

    :param vm: the VM, now Down.
    :param reason: why it went down (``destroyed``, ``shutdown``, ``crashed``,
        ``killed`` ... with the hypervisor's detail).

    Example::

        @hookimpl
        def after_vm_destroy(vm, reason):
            if reason.startswith("crashed"):
                events.record(f"{vm.spec.name} crashed; paging the on-call", "warning")
    """


@hookspec(policy=Policy.LOG)
def before_vm_set_ticket(vm: Vm, domxml: XmlPayload, params: dict[str, Any]) -> None:
    """Called before a console (VNC/SPICE) ticket is set.

    :param vm: the VM.
    :param domxml: the current domain XML.
    :param params: ``{"protocol": ..., "expiry_seconds": ...}``; the password
        itself is never passed to hooks.

    Failures are logged only.
    """


@hookspec(policy=Policy.LOG)
def after_vm_set_ticket(vm: Vm, domxml: XmlPayload, params: dict[str, Any]) -> None:
    """Called after a console ticket was set.

    :param vm: the VM.
    :param domxml: the current domain XML.
    :param params: as for ``before_vm_set_ticket``.
    """


# --------------------------------------------------------------------------
# Devices (VDSM hook points; payload is the device XML)
# --------------------------------------------------------------------------


@hookspec(policy=Policy.FAIL)
def before_device_create(vm: Vm, devxml: XmlPayload) -> None:
    """Called for each device of a VM being started, before the domain is created.

    :param vm: the VM being started.
    :param devxml: this device's XML; changes go into the domain XML.

    Raising fails the start.

    Example::

        @hookimpl
        def before_device_create(devxml):
            if devxml.xml.startswith("<interface"):
                devxml.xml = devxml.xml.replace("</interface>", "<mtu size='9000'/></interface>")
    """


@hookspec(policy=Policy.LOG)
def after_device_create(vm: Vm, devxml: XmlPayload) -> None:
    """Called for each device after the VM started.

    :param vm: the started VM.
    :param devxml: the device's XML as started.
    """


@hookspec(policy=Policy.FAIL)
def before_device_destroy(vm: Vm, devxml: XmlPayload) -> None:
    """Called for each device of a VM being destroyed.

    :param vm: the VM.
    :param devxml: the device's XML.
    """


@hookspec(policy=Policy.LOG)
def after_device_destroy(vm: Vm, devxml: XmlPayload) -> None:
    """Called for each device after its VM was destroyed.

    :param vm: the VM, now Down.
    :param devxml: the device's XML.
    """


@hookspec(policy=Policy.FAIL)
def before_device_migrate_source(vm: Vm, devxml: XmlPayload) -> None:
    """Called on the source for each device before a migration.

    :param vm: the VM to migrate.
    :param devxml: the device's XML.

    Raising refuses the migration.
    """


@hookspec(policy=Policy.LOG)
def after_device_migrate_source(vm: Vm, devxml: XmlPayload) -> None:
    """Called on the source for each device after a successful migration.

    :param vm: the migrated VM.
    :param devxml: the device's XML.
    """


@hookspec(policy=Policy.FAIL)
def before_device_migrate_destination(vm: Vm, devxml: XmlPayload) -> None:
    """Called for the destination, for each device, before an incoming migration.

    :param vm: the VM being migrated in.
    :param devxml: the device's XML.

    Raising refuses the migration.
    """


@hookspec(policy=Policy.LOG)
def after_device_migrate_destination(vm: Vm, devxml: XmlPayload) -> None:
    """Called for the destination, for each device, after the VM arrived.

    :param vm: the migrated VM.
    :param devxml: the device's XML.
    """


@hookspec(policy=Policy.FAIL)
def before_update_device(vm: Vm, devxml: XmlPayload) -> None:
    """Called before a device of a running VM is updated (e.g. change CD, link state).

    :param vm: the VM.
    :param devxml: the device XML that will be applied; may be changed.

    Raising fails the update; the device is unchanged.
    """


@hookspec(policy=Policy.LOG)
def after_update_device(vm: Vm, devxml: XmlPayload) -> None:
    """Called after a device was updated.

    :param vm: the VM.
    :param devxml: the device XML that was applied.
    """


@hookspec(policy=Policy.LOG)
def after_update_device_fail(vm: Vm, devxml: XmlPayload, error: str) -> None:
    """Called after a device update failed.

    :param vm: the VM.
    :param devxml: the device XML that could not be applied.
    :param error: the hypervisor's error message.
    """


# --------------------------------------------------------------------------
# Hotplug (VDSM hook points, plus virtplane's _fail forms for disk/memory)
# --------------------------------------------------------------------------


@hookspec(policy=Policy.FAIL)
def before_nic_hotplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called before a NIC is plugged into a running VM.

    :param vm: the VM.
    :param devxml: the ``<interface>`` XML; may be changed.

    Raising fails the hotplug.
    """


@hookspec(policy=Policy.LOG)
def after_nic_hotplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called after a NIC was plugged.

    :param vm: the VM.
    :param devxml: the plugged ``<interface>`` XML.
    """


@hookspec(policy=Policy.LOG)
def after_nic_hotplug_fail(vm: Vm, devxml: XmlPayload, error: str) -> None:
    """Called after plugging a NIC failed.

    :param vm: the VM.
    :param devxml: the ``<interface>`` XML that failed.
    :param error: the hypervisor's error message.
    """


@hookspec(policy=Policy.FAIL)
def before_nic_hotunplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called before a NIC is unplugged from a running VM.

    :param vm: the VM.
    :param devxml: the ``<interface>`` XML.

    Raising fails the unplug; the NIC stays.
    """


@hookspec(policy=Policy.LOG)
def after_nic_hotunplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called after a NIC was unplugged.

    :param vm: the VM.
    :param devxml: the removed ``<interface>`` XML.
    """


@hookspec(policy=Policy.LOG)
def after_nic_hotunplug_fail(vm: Vm, devxml: XmlPayload, error: str) -> None:
    """Called after unplugging a NIC failed.

    :param vm: the VM.
    :param devxml: the ``<interface>`` XML.
    :param error: the hypervisor's error message.
    """


@hookspec(policy=Policy.FAIL)
def before_disk_hotplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called before a disk is plugged into a running VM.

    :param vm: the VM.
    :param devxml: the ``<disk>`` XML; may be changed.

    Raising fails the hotplug.
    """


@hookspec(policy=Policy.LOG)
def after_disk_hotplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called after a disk was plugged.

    :param vm: the VM.
    :param devxml: the plugged ``<disk>`` XML.
    """


@hookspec(policy=Policy.LOG)
def after_disk_hotplug_fail(vm: Vm, devxml: XmlPayload, error: str) -> None:
    """Called after plugging a disk failed (virtplane extension; VDSM has none).

    :param vm: the VM.
    :param devxml: the ``<disk>`` XML.
    :param error: the hypervisor's error message.
    """


@hookspec(policy=Policy.FAIL)
def before_disk_hotunplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called before a disk is unplugged from a running VM.

    :param vm: the VM.
    :param devxml: the ``<disk>`` XML.

    Raising fails the unplug.
    """


@hookspec(policy=Policy.LOG)
def after_disk_hotunplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called after a disk was unplugged.

    :param vm: the VM.
    :param devxml: the removed ``<disk>`` XML.
    """


@hookspec(policy=Policy.LOG)
def after_disk_hotunplug_fail(vm: Vm, devxml: XmlPayload, error: str) -> None:
    """Called after unplugging a disk failed (virtplane extension).

    :param vm: the VM.
    :param devxml: the ``<disk>`` XML.
    :param error: the hypervisor's error message.
    """


@hookspec(policy=Policy.FAIL)
def before_memory_hotplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called before a memory module (DIMM) is plugged into a running VM.

    :param vm: the VM.
    :param devxml: the ``<memory model='dimm'>`` XML; may be changed.

    Raising fails the hotplug.
    """


@hookspec(policy=Policy.LOG)
def after_memory_hotplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called after a memory module was plugged.

    :param vm: the VM.
    :param devxml: the plugged ``<memory>`` XML.
    """


@hookspec(policy=Policy.LOG)
def after_memory_hotplug_fail(vm: Vm, devxml: XmlPayload, error: str) -> None:
    """Called after plugging memory failed (virtplane extension).

    :param vm: the VM.
    :param devxml: the ``<memory>`` XML.
    :param error: the hypervisor's error message.
    """


@hookspec(policy=Policy.FAIL)
def before_memory_hotunplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called before a memory module is unplugged (virtplane extension).

    :param vm: the VM.
    :param devxml: the ``<memory>`` XML.

    Raising fails the unplug.
    """


@hookspec(policy=Policy.LOG)
def after_memory_hotunplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called after a memory module was unplugged (virtplane extension).

    :param vm: the VM.
    :param devxml: the removed ``<memory>`` XML.
    """


@hookspec(policy=Policy.LOG)
def after_memory_hotunplug_fail(vm: Vm, devxml: XmlPayload, error: str) -> None:
    """Called after unplugging memory failed (virtplane extension).

    :param vm: the VM.
    :param devxml: the ``<memory>`` XML.
    :param error: the hypervisor's error message.
    """


@hookspec(policy=Policy.FAIL)
def before_set_num_of_cpus(vm: Vm, domxml: XmlPayload, vcpus: int) -> None:
    """Called before the number of vCPUs of a running VM is changed.

    :param vm: the VM.
    :param domxml: the current domain XML.
    :param vcpus: the requested number of vCPUs.

    Raising fails the change.
    """


@hookspec(policy=Policy.LOG)
def after_set_num_of_cpus(vm: Vm, domxml: XmlPayload, vcpus: int) -> None:
    """Called after the number of vCPUs was changed.

    :param vm: the VM.
    :param domxml: the domain XML after the change.
    :param vcpus: the new number of vCPUs.
    """


# --------------------------------------------------------------------------
# Disk, daemon, network (VDSM JSON hook points)
# --------------------------------------------------------------------------


@hookspec(policy=Policy.FAIL)
def after_disk_prepare(payload: JsonPayload) -> None:
    """Called after a volume was prepared for a VM, with its description as JSON.

    :param payload: ``{"domain": ..., "image": ..., "volume": ..., "path": ...,
        "format": ...}``; a hook may replace the path the VM will use (as
        VDSM's ``localdisk`` hook does).

    Raising fails the preparation (and so the start).

    Example::

        @hookimpl
        def after_disk_prepare(payload):
            if payload.data["format"] == "raw":
                payload.data["path"] = "/dev/shm/scratch/" + payload.data["volume"]
    """


@hookspec(policy=Policy.LOG)
def before_vdsm_start(context: DaemonContext, manager: Any) -> None:
    """Called once when a :class:`virtplane.Manager` is opened (VDSM: daemon start).

    :param context: what a start-up hook may read: the effective ``config``, a
        read-only view of the ``plugins`` (name -> record) and the core and
        plugin-API versions (:class:`virtplane.plugins.DaemonContext`).
    :param manager: deprecated since plugin API 2.0 (removed in 3.0): the whole
        manager. Take ``context`` instead; an implementation that takes
        ``manager`` still gets it, with a ``VirtplaneDeprecationWarning``.

    Failures are logged only.

    Example::

        @hookimpl
        def before_vdsm_start(context):
            if context.plugins.get("kvm") is None:
                logging.getLogger("myplugin").warning("no kvm driver is installed")
    """


@hookspec(policy=Policy.LOG)
def after_vdsm_stop(context: DaemonContext, manager: Any) -> None:
    """Called once when a :class:`virtplane.Manager` is closed (VDSM: daemon stop).

    :param context: as for ``before_vdsm_start``.
    :param manager: deprecated since plugin API 2.0 (removed in 3.0), as for
        ``before_vdsm_start``.

    Failures are logged only.
    """


@hookspec(policy=Policy.FAIL, reserved=True)
def before_network_setup(payload: JsonPayload) -> None:
    """Called before host networks are set up.

    :param payload: ``{"request": {"networks": ..., "bondings": ..., "options": ...}}``;
        may be changed.

    Raising fails the setup.
    """


@hookspec(policy=Policy.LOG, reserved=True)
def after_network_setup(payload: JsonPayload) -> None:
    """Called after host networks were set up.

    :param payload: the request that was applied.
    """


@hookspec(policy=Policy.LOG, reserved=True)
def after_network_setup_fail(payload: JsonPayload, error: str) -> None:
    """Called after a host network setup failed.

    :param payload: the request that failed.
    :param error: the error message.
    """


# --------------------------------------------------------------------------
# Stats and capabilities (VDSM JSON hook points)
# --------------------------------------------------------------------------


@hookspec(policy=Policy.FAIL)
def before_get_vm_stats(vm: Vm, payload: JsonPayload) -> None:
    """Called before the stats of one VM are collected.

    :param vm: the VM.
    :param payload: the request (``{"vm": id}``).

    Raising fails the request.
    """


@hookspec(policy=Policy.LOG)
def after_get_vm_stats(vm: Vm, payload: JsonPayload) -> None:
    """Called with the stats of one VM before they are returned.

    :param vm: the VM.
    :param payload: the stats dict; may be changed.
    """


@hookspec(policy=Policy.FAIL)
def before_get_all_vm_stats(host: Host, payload: JsonPayload) -> None:
    """Called before the bulk stats of all VMs on a host are collected.

    :param host: the host.
    :param payload: the request (``{"host": id}``).

    Raising fails the request.
    """


@hookspec(policy=Policy.LOG)
def after_get_all_vm_stats(host: Host, payload: JsonPayload) -> None:
    """Called with the bulk stats of all VMs on a host (a list of dicts).

    :param host: the host.
    :param payload: the list of per-VM stats; may be changed (VDSM's
        ``fakevmstats`` hook lives here).

    Example::

        @hookimpl
        def after_get_all_vm_stats(payload):
            for stats in payload.data:
                stats["site"] = "lab-2"
    """


@hookspec(policy=Policy.FAIL)
def before_get_caps(host: Host, payload: JsonPayload) -> None:
    """Called before a host's capabilities are collected.

    :param host: the host.
    :param payload: the request.

    Raising fails the request.
    """


@hookspec(policy=Policy.LOG)
def after_get_caps(host: Host, payload: JsonPayload) -> None:
    """Called with a host's capabilities before they are returned.

    :param host: the host.
    :param payload: the capabilities dict; may be changed.
    """


@hookspec(policy=Policy.FAIL)
def before_get_stats(host: Host, payload: JsonPayload) -> None:
    """Called before a host's stats are collected.

    :param host: the host.
    :param payload: the request.

    Raising fails the request.
    """


@hookspec(policy=Policy.LOG)
def after_get_stats(host: Host, payload: JsonPayload) -> None:
    """Called with a host's stats before they are returned.

    :param host: the host.
    :param payload: the stats dict; may be changed.
    """


@hookspec(policy=Policy.LOG, reserved=True)
def after_hostdev_list_by_caps(host: Host, payload: JsonPayload) -> None:
    """Called with the host's device list (PCI, USB, SCSI ...) before it is returned.

    :param host: the host.
    :param payload: the device dict; may be changed.
    """


# --------------------------------------------------------------------------
# Contribution hooks (architectures, storage, hypervisors)
# --------------------------------------------------------------------------


@hookspec(policy=Policy.COLLECT)
def validate_vm_spec(spec: VmSpec, cluster: Cluster) -> list[str] | None:
    """Check a VM spec before anything touches a host; return violations.

    Called after the cluster's architecture driver validated the spec, when a
    VM is created or changed.

    :param spec: the VM spec.
    :param cluster: the cluster the VM belongs to (architecture,
        compatibility version).
    :return: a list of messages, each naming the rule and what is allowed,
        or None/empty when the spec is fine. All plugins' messages are
        collected; any message refuses the spec.

    Example::

        @hookimpl
        def validate_vm_spec(spec):
            if spec.memory_mib > 65536:
                return [f"memory_mib {spec.memory_mib} is above this site's limit; "
                        "allowed: up to 65536"]
            return []
    """


@hookspec(policy=Policy.FAIL)
def adjust_domain_xml(vm: Vm, domxml: XmlPayload, host: Host) -> None:
    """Adjust the domain XML built from a VmSpec, before ``before_vm_start``.

    The core builds the XML, the architecture driver and storage drivers
    contribute their parts, then this hook runs; it is meant for plugins that
    add something a named driver cannot (e.g. a NUMA policy, a vendor device).

    :param vm: the VM being started.
    :param domxml: the domain XML; change ``domxml.xml``.
    :param host: the host it will start on.

    Raising fails the start.

    Example::

        @hookimpl
        def adjust_domain_xml(domxml, host):
            if host.name.startswith("numa-"):
                domxml.xml = domxml.xml.replace(
                    "</domain>", "<numatune><memory mode='strict' nodeset='0'/></numatune>"
                    "</domain>")
    """


@hookspec(policy=Policy.LOG)
def extend_host_capabilities(host: Host, caps: dict[str, Any]) -> None:
    """Add to a host's capabilities after the hypervisor driver reported them.

    :param host: the host.
    :param caps: the capabilities dict; add keys under your plugin's name.

    Example::

        @hookimpl
        def extend_host_capabilities(caps):
            caps["myplugin"] = {"version": "1.2", "gpu": False}
    """


@hookspec(policy=Policy.LOG)
def extend_architecture_features(
    arch: str, compat_version: str, features: dict[str, bool]
) -> None:
    """Change what an architecture supports at a compatibility version.

    :param arch: the architecture name (``x86_64``, ``ppc64`` ...).
    :param compat_version: the cluster compatibility version (``4.8`` ...).
    :param features: feature name -> supported, as the architecture driver
        reported it; set a feature False to forbid it on this installation.

    Example::

        @hookimpl
        def extend_architecture_features(features):
            features["tpm"] = False  # this site has no vTPM support
    """


@hookspec(policy=Policy.COLLECT)
def validate_storage_domain(domain: StorageDomain) -> list[str] | None:
    """Check a storage domain definition before it is created or attached.

    :param domain: the storage domain.
    :return: a list of messages naming the rule and what is allowed, or
        None/empty. Any message refuses the domain.
    """


# --------------------------------------------------------------------------
# Plugin set-up
# --------------------------------------------------------------------------


@hookspec(policy=Policy.FAIL)
def configure_plugin(context: DaemonContext) -> None:
    """Called once for each plugin when it is activated, with virtplane's configuration.

    Added in plugin API 2.1. Where a plugin reads what it needs from the
    configuration, as pytest's ``pytest_configure`` and tox's
    ``tox_add_core_config`` are (like every hook, it is implemented by what the
    plugin's ``virtplane.hooks`` entry point registers; a driver gets its own
    settings in its constructor). The plugin registry calls it when it loads the
    plugins (a :class:`virtplane.Manager` being opened, or an embedder's
    :meth:`virtplane.plugins.PluginRegistry.load`), once every plugin is loaded
    and checked, so before any other hook of the plugin runs (``before_vdsm_start``
    included) and whether or not anything fires ``before_vdsm_start`` at all.
    Plugins are configured in call order (``tryfirst`` first, the last loaded
    first, ``trylast`` last). A plugin added to the loaded registry later
    (:meth:`virtplane.plugins.PluginRegistry.register`, ``Manager.plugins.register``)
    is configured as it is added; one put straight on the pluggy manager
    (``pm.register``) bypasses the registry and is not.

    :param context: the effective ``config`` (``context.config.values`` by section,
        ``context.config.plugin_tables`` for the ``[plugin.<name>]`` tables), a
        read-only view of the ``plugins`` (name -> record, statuses as loading
        left them) and the core and plugin-API versions
        (:class:`virtplane.plugins.DaemonContext`, as ``before_vdsm_start`` gets).

    Raising fails the plugin's activation, not the core: the plugin is marked
    failed with ``hook configure_plugin of plugin '<name>' failed: <error>`` as
    its reason (``virtplane plugins list``), which is also logged, its hooks are
    unregistered, and every other plugin keeps working (a failed hook plugin that
    matters refuses VM operations: docs/security.md, "Hooks fail closed"). For a
    plugin added later, ``register`` unregisters it again and raises
    :class:`~virtplane.errors.HookError` with that message. A plugin that should
    also load on a 2.0 core marks its implementation ``optionalhook=True``.

    Example::

        @hookimpl
        def configure_plugin(context):
            global VM_INTERVAL
            VM_INTERVAL = context.config.values["engine"]["vm_interval"]
    """


# --------------------------------------------------------------------------
# Deprecations (docs/versioning.md)
# --------------------------------------------------------------------------


class VirtplaneDeprecationWarning(DeprecationWarning):
    """A plugin uses part of the plugin API that the next major version removes."""


#: Hook arguments on their way out: hook name -> argument -> what to use instead and
#: the plugin-API version that removes it. pluggy warns (``warn_on_impl_args``) when a
#: plugin implementing the hook takes such an argument, ``virtplane plugins doctor``
#: lists it, and the plugin author kit fails on it.
DEPRECATED_ARGUMENTS: dict[str, dict[str, str]] = {
    point: {"manager": "take `context` (config, plugins, versions: "
                       "virtplane.plugins.DaemonContext); removed in plugin API 3.0"}
    for point in ("before_vdsm_start", "after_vdsm_stop")
}


_SPECS: Final[Mapping[str, Callable[..., Any]]] = MappingProxyType({
    name: value for name, value in list(globals().items())
    if isinstance(value, FunctionType) and hasattr(value, OPTIONS_ATTR)
})
