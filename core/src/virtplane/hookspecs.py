"""Hook specifications: every hook a plugin may implement, documented here.

Implement a hook with :data:`virtplane.hookimpl` in a module (or object) that
your distribution registers under the ``virtplane.hooks`` entry-point group::

    from virtplane import hookimpl

    VIRTPLANE_PLUGIN_API = ">=1.0,<2"

    @hookimpl
    def before_vm_start(vm, domxml):
        domxml.xml = domxml.xml.replace("<vcpu>", "<vcpu cpuset='0'>")

Conventions, shared by all hooks below:

* Hooks are called with keyword arguments only. An implementation may accept
  *fewer* arguments than the spec names (pluggy's opt-in arguments), never an
  argument the spec does not have: such a plugin is marked failed.
* **Lifecycle hook points** carry VDSM's names and meaning
  (``before_vm_start`` ...). ``before_*`` points run before the operation and
  may veto it by raising :class:`virtplane.HookVeto` (any other exception also
  fails the operation, reported with the plugin's name). ``after_*`` points run
  after the operation succeeded; ``after_*_fail`` after it failed. Failures in
  ``after_*`` points, ``before_vm_destroy``, ``before/after_vm_set_ticket``,
  ``before_vdsm_start`` and ``after_vdsm_stop`` are logged to the VM's event
  log and never undo the operation (VDSM's ``raiseError=False``).
* XML payloads are :class:`virtplane.payloads.XmlPayload`: domain XML for VM
  hooks, the device's XML for device and hotplug hooks. JSON payloads are
  :class:`virtplane.payloads.JsonPayload`. Edits are seen by the next
  implementation and by the hook scripts (see docs/hooks.md for the order).
* ``vm`` is the :class:`virtplane.model.Vm` being operated on; its
  ``spec.custom_properties`` are what VDSM passes to scripts as environment
  variables.

Every hook below has an entry in ``docs/hooks.md`` and a test that calls it
(``tests/core/test_hookspecs.py`` enforces both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from virtplane.model import Cluster, Host, StorageDomain, Vm, VmSpec
    from virtplane.payloads import JsonPayload, XmlPayload

hookspec = pluggy.HookspecMarker("virtplane")


# --------------------------------------------------------------------------
# VM lifecycle (VDSM hook points)
# --------------------------------------------------------------------------


@hookspec
def before_vm_start(vm: Vm, domxml: XmlPayload) -> None:
    """Called before a VM is started, with the domain XML libvirt will get.

    :param vm: the VM being started.
    :param domxml: the domain XML; change ``domxml.xml`` (and
        ``domxml.launch_flags``) to change what is started.

    Raising fails the start: the VM stays Down, nothing is left defined on the
    host, and the error names this hook and the plugin.
    """


@hookspec
def after_vm_start(vm: Vm, domxml: XmlPayload) -> None:
    """Called after a VM started, with the XML that was actually started.

    :param vm: the VM, now Powering up or Up.
    :param domxml: the live domain XML (changes are ignored).
    """


@hookspec
def before_vm_cont(vm: Vm, domxml: XmlPayload) -> None:
    """Called before a paused VM is continued (resumed).

    :param vm: the paused VM.
    :param domxml: the current domain XML (informational).

    Raising fails the operation; the VM stays Paused.
    """


@hookspec
def after_vm_cont(vm: Vm, domxml: XmlPayload) -> None:
    """Called after a VM was continued.

    :param vm: the VM, now Up.
    :param domxml: the current domain XML.
    """


@hookspec
def before_vm_pause(vm: Vm, domxml: XmlPayload) -> None:
    """Called before a running VM is paused.

    :param vm: the running VM.
    :param domxml: the current domain XML.

    Raising fails the operation; the VM keeps running.
    """


@hookspec
def after_vm_pause(vm: Vm, domxml: XmlPayload) -> None:
    """Called after a VM was paused.

    :param vm: the VM, now Paused.
    :param domxml: the current domain XML.
    """


@hookspec
def before_vm_hibernate(vm: Vm, domxml: XmlPayload) -> None:
    """Called before a VM's memory is saved to storage (hibernate/suspend).

    :param vm: the running VM.
    :param domxml: the current domain XML.

    Raising fails the operation; the VM keeps running.
    """


@hookspec
def after_vm_hibernate(vm: Vm, domxml: XmlPayload) -> None:
    """Called after a VM was hibernated (its memory saved, its process gone).

    :param vm: the VM, now Down with a saved state.
    :param domxml: the domain XML that was saved.
    """


@hookspec
def before_vm_dehibernate(vm: Vm, domxml: XmlPayload, from_snapshot: bool) -> None:
    """Called before a hibernated VM is restored (or a memory snapshot reverted).

    :param vm: the VM being restored.
    :param domxml: the domain XML the VM is restored with; may be changed.
    :param from_snapshot: True when restoring a snapshot with memory
        (VDSM's ``FROM_SNAPSHOT``), False for a plain dehibernate.

    Raising fails the restore; the saved state is kept.
    """


@hookspec
def after_vm_dehibernate(vm: Vm, domxml: XmlPayload, from_snapshot: bool) -> None:
    """Called after a VM was restored from a saved state.

    :param vm: the VM, now Up.
    :param domxml: the live domain XML.
    :param from_snapshot: as for ``before_vm_dehibernate``.
    """


@hookspec
def before_vm_migrate_source(vm: Vm, domxml: XmlPayload, destination: str) -> None:
    """Called on the source before a VM is migrated away.

    :param vm: the VM to migrate.
    :param domxml: the domain XML that will be sent to the destination; may be
        changed.
    :param destination: the destination host's URI.

    Raising refuses the migration; the VM keeps running on the source.
    """


@hookspec
def after_vm_migrate_source(vm: Vm, domxml: XmlPayload, destination: str) -> None:
    """Called on the source after a VM migrated away successfully.

    :param vm: the VM (its host is now the destination).
    :param domxml: the XML that was migrated.
    :param destination: the destination host's URI.
    """


@hookspec
def before_vm_migrate_destination(vm: Vm, domxml: XmlPayload, source: str) -> None:
    """Called for the destination before an incoming migration is accepted.

    :param vm: the VM being migrated in.
    :param domxml: the source host's domain XML; may be changed.
    :param source: the source host's URI.

    Raising refuses the migration ("Destination hook failed").
    """


@hookspec
def after_vm_migrate_destination(vm: Vm, domxml: XmlPayload, source: str) -> None:
    """Called for the destination after a VM arrived.

    :param vm: the VM, now running on the destination.
    :param domxml: the live domain XML on the destination.
    :param source: the source host's URI.
    """


@hookspec
def before_vm_destroy(vm: Vm) -> None:
    """Called before a VM is destroyed (powered off hard or after shutdown).

    :param vm: the VM. VDSM passes no XML here, nor does virtplane.

    Failures are logged only: a destroy is never refused by a hook.
    """


@hookspec
def after_vm_destroy(vm: Vm, reason: str) -> None:
    """Called after a VM went Down: destroyed, shut down, or crashed on its own.

    :param vm: the VM, now Down.
    :param reason: why it went down (``destroyed``, ``shutdown``, ``crashed``,
        ``killed`` ... with the hypervisor's detail).
    """


@hookspec
def before_vm_set_ticket(vm: Vm, domxml: XmlPayload, params: dict[str, Any]) -> None:
    """Called before a console (VNC/SPICE) ticket is set.

    :param vm: the VM.
    :param domxml: the current domain XML.
    :param params: ``{"protocol": ..., "expiry_seconds": ...}``; the password
        itself is never passed to hooks.

    Failures are logged only.
    """


@hookspec
def after_vm_set_ticket(vm: Vm, domxml: XmlPayload, params: dict[str, Any]) -> None:
    """Called after a console ticket was set.

    :param vm: the VM.
    :param domxml: the current domain XML.
    :param params: as for ``before_vm_set_ticket``.
    """


# --------------------------------------------------------------------------
# Devices (VDSM hook points; payload is the device XML)
# --------------------------------------------------------------------------


@hookspec
def before_device_create(vm: Vm, devxml: XmlPayload) -> None:
    """Called for each device of a VM being started, before the domain is created.

    :param vm: the VM being started.
    :param devxml: this device's XML; changes go into the domain XML.

    Raising fails the start.
    """


@hookspec
def after_device_create(vm: Vm, devxml: XmlPayload) -> None:
    """Called for each device after the VM started.

    :param vm: the started VM.
    :param devxml: the device's XML as started.
    """


@hookspec
def before_device_destroy(vm: Vm, devxml: XmlPayload) -> None:
    """Called for each device of a VM being destroyed.

    :param vm: the VM.
    :param devxml: the device's XML.
    """


@hookspec
def after_device_destroy(vm: Vm, devxml: XmlPayload) -> None:
    """Called for each device after its VM was destroyed.

    :param vm: the VM, now Down.
    :param devxml: the device's XML.
    """


@hookspec
def before_device_migrate_source(vm: Vm, devxml: XmlPayload) -> None:
    """Called on the source for each device before a migration.

    :param vm: the VM to migrate.
    :param devxml: the device's XML.

    Raising refuses the migration.
    """


@hookspec
def after_device_migrate_source(vm: Vm, devxml: XmlPayload) -> None:
    """Called on the source for each device after a successful migration.

    :param vm: the migrated VM.
    :param devxml: the device's XML.
    """


@hookspec
def before_device_migrate_destination(vm: Vm, devxml: XmlPayload) -> None:
    """Called for the destination, for each device, before an incoming migration.

    :param vm: the VM being migrated in.
    :param devxml: the device's XML.

    Raising refuses the migration.
    """


@hookspec
def after_device_migrate_destination(vm: Vm, devxml: XmlPayload) -> None:
    """Called for the destination, for each device, after the VM arrived.

    :param vm: the migrated VM.
    :param devxml: the device's XML.
    """


@hookspec
def before_update_device(vm: Vm, devxml: XmlPayload) -> None:
    """Called before a device of a running VM is updated (e.g. change CD, link state).

    :param vm: the VM.
    :param devxml: the device XML that will be applied; may be changed.

    Raising fails the update; the device is unchanged.
    """


@hookspec
def after_update_device(vm: Vm, devxml: XmlPayload) -> None:
    """Called after a device was updated.

    :param vm: the VM.
    :param devxml: the device XML that was applied.
    """


@hookspec
def after_update_device_fail(vm: Vm, devxml: XmlPayload, error: str) -> None:
    """Called after a device update failed.

    :param vm: the VM.
    :param devxml: the device XML that could not be applied.
    :param error: the hypervisor's error message.
    """


# --------------------------------------------------------------------------
# Hotplug (VDSM hook points, plus virtplane's _fail forms for disk/memory)
# --------------------------------------------------------------------------


@hookspec
def before_nic_hotplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called before a NIC is plugged into a running VM.

    :param vm: the VM.
    :param devxml: the ``<interface>`` XML; may be changed.

    Raising fails the hotplug.
    """


@hookspec
def after_nic_hotplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called after a NIC was plugged.

    :param vm: the VM.
    :param devxml: the plugged ``<interface>`` XML.
    """


@hookspec
def after_nic_hotplug_fail(vm: Vm, devxml: XmlPayload, error: str) -> None:
    """Called after plugging a NIC failed.

    :param vm: the VM.
    :param devxml: the ``<interface>`` XML that failed.
    :param error: the hypervisor's error message.
    """


@hookspec
def before_nic_hotunplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called before a NIC is unplugged from a running VM.

    :param vm: the VM.
    :param devxml: the ``<interface>`` XML.

    Raising fails the unplug; the NIC stays.
    """


@hookspec
def after_nic_hotunplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called after a NIC was unplugged.

    :param vm: the VM.
    :param devxml: the removed ``<interface>`` XML.
    """


@hookspec
def after_nic_hotunplug_fail(vm: Vm, devxml: XmlPayload, error: str) -> None:
    """Called after unplugging a NIC failed.

    :param vm: the VM.
    :param devxml: the ``<interface>`` XML.
    :param error: the hypervisor's error message.
    """


@hookspec
def before_disk_hotplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called before a disk is plugged into a running VM.

    :param vm: the VM.
    :param devxml: the ``<disk>`` XML; may be changed.

    Raising fails the hotplug.
    """


@hookspec
def after_disk_hotplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called after a disk was plugged.

    :param vm: the VM.
    :param devxml: the plugged ``<disk>`` XML.
    """


@hookspec
def after_disk_hotplug_fail(vm: Vm, devxml: XmlPayload, error: str) -> None:
    """Called after plugging a disk failed (virtplane extension; VDSM has none).

    :param vm: the VM.
    :param devxml: the ``<disk>`` XML.
    :param error: the hypervisor's error message.
    """


@hookspec
def before_disk_hotunplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called before a disk is unplugged from a running VM.

    :param vm: the VM.
    :param devxml: the ``<disk>`` XML.

    Raising fails the unplug.
    """


@hookspec
def after_disk_hotunplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called after a disk was unplugged.

    :param vm: the VM.
    :param devxml: the removed ``<disk>`` XML.
    """


@hookspec
def after_disk_hotunplug_fail(vm: Vm, devxml: XmlPayload, error: str) -> None:
    """Called after unplugging a disk failed (virtplane extension).

    :param vm: the VM.
    :param devxml: the ``<disk>`` XML.
    :param error: the hypervisor's error message.
    """


@hookspec
def before_memory_hotplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called before a memory module (DIMM) is plugged into a running VM.

    :param vm: the VM.
    :param devxml: the ``<memory model='dimm'>`` XML; may be changed.

    Raising fails the hotplug.
    """


@hookspec
def after_memory_hotplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called after a memory module was plugged.

    :param vm: the VM.
    :param devxml: the plugged ``<memory>`` XML.
    """


@hookspec
def after_memory_hotplug_fail(vm: Vm, devxml: XmlPayload, error: str) -> None:
    """Called after plugging memory failed (virtplane extension).

    :param vm: the VM.
    :param devxml: the ``<memory>`` XML.
    :param error: the hypervisor's error message.
    """


@hookspec
def before_memory_hotunplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called before a memory module is unplugged (virtplane extension).

    :param vm: the VM.
    :param devxml: the ``<memory>`` XML.

    Raising fails the unplug.
    """


@hookspec
def after_memory_hotunplug(vm: Vm, devxml: XmlPayload) -> None:
    """Called after a memory module was unplugged (virtplane extension).

    :param vm: the VM.
    :param devxml: the removed ``<memory>`` XML.
    """


@hookspec
def after_memory_hotunplug_fail(vm: Vm, devxml: XmlPayload, error: str) -> None:
    """Called after unplugging memory failed (virtplane extension).

    :param vm: the VM.
    :param devxml: the ``<memory>`` XML.
    :param error: the hypervisor's error message.
    """


@hookspec
def before_set_num_of_cpus(vm: Vm, domxml: XmlPayload, vcpus: int) -> None:
    """Called before the number of vCPUs of a running VM is changed.

    :param vm: the VM.
    :param domxml: the current domain XML.
    :param vcpus: the requested number of vCPUs.

    Raising fails the change.
    """


@hookspec
def after_set_num_of_cpus(vm: Vm, domxml: XmlPayload, vcpus: int) -> None:
    """Called after the number of vCPUs was changed.

    :param vm: the VM.
    :param domxml: the domain XML after the change.
    :param vcpus: the new number of vCPUs.
    """


# --------------------------------------------------------------------------
# Disk, daemon, network (VDSM JSON hook points)
# --------------------------------------------------------------------------


@hookspec
def after_disk_prepare(payload: JsonPayload) -> None:
    """Called after a volume was prepared for a VM, with its description as JSON.

    :param payload: ``{"domain": ..., "image": ..., "volume": ..., "path": ...,
        "format": ...}``; a hook may replace the path the VM will use (as
        VDSM's ``localdisk`` hook does).

    Raising fails the preparation (and so the start).
    """


@hookspec
def before_vdsm_start(manager: Any) -> None:
    """Called once when a :class:`virtplane.Manager` is opened (VDSM: daemon start).

    :param manager: the manager being opened.

    Failures are logged only.
    """


@hookspec
def after_vdsm_stop(manager: Any) -> None:
    """Called once when a :class:`virtplane.Manager` is closed (VDSM: daemon stop).

    :param manager: the manager being closed.

    Failures are logged only.
    """


@hookspec
def before_network_setup(payload: JsonPayload) -> None:
    """Called before host networks are set up.

    :param payload: ``{"request": {"networks": ..., "bondings": ..., "options": ...}}``;
        may be changed.

    Raising fails the setup.
    """


@hookspec
def after_network_setup(payload: JsonPayload) -> None:
    """Called after host networks were set up.

    :param payload: the request that was applied.
    """


@hookspec
def after_network_setup_fail(payload: JsonPayload, error: str) -> None:
    """Called after a host network setup failed.

    :param payload: the request that failed.
    :param error: the error message.
    """


# --------------------------------------------------------------------------
# Stats and capabilities (VDSM JSON hook points)
# --------------------------------------------------------------------------


@hookspec
def before_get_vm_stats(vm: Vm, payload: JsonPayload) -> None:
    """Called before the stats of one VM are collected.

    :param vm: the VM.
    :param payload: the request (``{"vm": id}``).

    Raising fails the request.
    """


@hookspec
def after_get_vm_stats(vm: Vm, payload: JsonPayload) -> None:
    """Called with the stats of one VM before they are returned.

    :param vm: the VM.
    :param payload: the stats dict; may be changed.
    """


@hookspec
def before_get_all_vm_stats(host: Host, payload: JsonPayload) -> None:
    """Called before the bulk stats of all VMs on a host are collected.

    :param host: the host.
    :param payload: the request (``{"host": id}``).

    Raising fails the request.
    """


@hookspec
def after_get_all_vm_stats(host: Host, payload: JsonPayload) -> None:
    """Called with the bulk stats of all VMs on a host (a list of dicts).

    :param host: the host.
    :param payload: the list of per-VM stats; may be changed (VDSM's
        ``fakevmstats`` hook lives here).
    """


@hookspec
def before_get_caps(host: Host, payload: JsonPayload) -> None:
    """Called before a host's capabilities are collected.

    :param host: the host.
    :param payload: the request.

    Raising fails the request.
    """


@hookspec
def after_get_caps(host: Host, payload: JsonPayload) -> None:
    """Called with a host's capabilities before they are returned.

    :param host: the host.
    :param payload: the capabilities dict; may be changed.
    """


@hookspec
def before_get_stats(host: Host, payload: JsonPayload) -> None:
    """Called before a host's stats are collected.

    :param host: the host.
    :param payload: the request.

    Raising fails the request.
    """


@hookspec
def after_get_stats(host: Host, payload: JsonPayload) -> None:
    """Called with a host's stats before they are returned.

    :param host: the host.
    :param payload: the stats dict; may be changed.
    """


@hookspec
def after_hostdev_list_by_caps(host: Host, payload: JsonPayload) -> None:
    """Called with the host's device list (PCI, USB, SCSI ...) before it is returned.

    :param host: the host.
    :param payload: the device dict; may be changed.
    """


# --------------------------------------------------------------------------
# Contribution hooks (architectures, storage, hypervisors)
# --------------------------------------------------------------------------


@hookspec
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
    """


@hookspec
def adjust_domain_xml(vm: Vm, domxml: XmlPayload, host: Host) -> None:
    """Adjust the domain XML built from a VmSpec, before ``before_vm_start``.

    The core builds the XML, the architecture driver and storage drivers
    contribute their parts, then this hook runs; it is meant for plugins that
    add something a named driver cannot (e.g. a NUMA policy, a vendor device).

    :param vm: the VM being started.
    :param domxml: the domain XML; change ``domxml.xml``.
    :param host: the host it will start on.

    Raising fails the start.
    """


@hookspec
def extend_host_capabilities(host: Host, caps: dict[str, Any]) -> None:
    """Add to a host's capabilities after the hypervisor driver reported them.

    :param host: the host.
    :param caps: the capabilities dict; add keys under your plugin's name.
    """


@hookspec
def extend_architecture_features(
    arch: str, compat_version: str, features: dict[str, bool]
) -> None:
    """Change what an architecture supports at a compatibility version.

    :param arch: the architecture name (``x86_64``, ``ppc64`` ...).
    :param compat_version: the cluster compatibility version (``4.8`` ...).
    :param features: feature name -> supported, as the architecture driver
        reported it; set a feature False to forbid it on this installation.
    """


@hookspec
def validate_storage_domain(domain: StorageDomain) -> list[str] | None:
    """Check a storage domain definition before it is created or attached.

    :param domain: the storage domain.
    :return: a list of messages naming the rule and what is allowed, or
        None/empty. Any message refuses the domain.
    """


# --------------------------------------------------------------------------
# Deprecations (docs/versioning.md)
# --------------------------------------------------------------------------


class VirtplaneDeprecationWarning(DeprecationWarning):
    """A plugin uses part of the plugin API that the next major version removes."""


#: Hook arguments on their way out: hook name -> argument -> what to use instead and
#: the plugin-API version that removes it. pluggy warns (``warn_on_impl_args``) when a
#: plugin implementing the hook takes such an argument, ``virtplane plugins doctor``
#: lists it, and the plugin author kit fails on it. Plugin API 1.0 deprecates nothing.
DEPRECATED_ARGUMENTS: dict[str, dict[str, str]] = {}
